# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Loop detection and verification: from a new keyframe to a verified `LoopConstraint`, or a counted rejection.

After each merged window (`ReconstructionSession.close_loops`, on the worker thread, outside the world lock):

1. **Remember.** Every keyframe the window added is stored in the place index (`vggt_ros.world.place_recognition`)
   with its descriptor (from the session's cached DINOv2 tokens: no network call) and a compact copy: its model
   image as JPEG and ``keyframe_pixels`` of its alignment samples, as camera-frame points in the units of the
   window that added it (times the keyframe's current ``depth_scale`` in the world's trajectory = world units, so
   a later change of the world's unit, or of its pose, carries over). About 20 KB per keyframe at VGGT's 518 x 392
   (`LoopKeyframe.nbytes`; the bound is `LoopVerificationConfig.max_keyframe_bytes`).
2. **Detect.** Each new keyframe q queries the index (excluding the frames the world still aligns to); the best
   candidate c, if any, is verified: at most one verification per new keyframe.
3. **Verify.** One network pass on the loop window [c's neighbour, c, q's neighbour, q] (at most 4 frames; a
   neighbour is the adjacent stored keyframe of the same camera within ``neighbour_max_gap_s``). c's side is
   re-encoded from its compact image, q's side comes from the token cache. Each half is aligned to the world on
   its own with the window merging's robust Sim(3) and gates (`vggt_ros.world.overlap.align` with the world's
   `WorldConfig`: correspondences, inlier ratio, residual, camera consistency), against copies of the halves'
   stored samples placed at their current world poses: the world is only read, never changed.
4. **Judge.** Whether the correction the loop implies is plausible for the distance travelled since c is the
   world's decision (`World.close_loop`, against the pose graph, which knows the loops already closed): one check,
   where the corrected poses are.
5. **Constraint.** The measured relative pose of q in c (`LoopConstraint.match_from_query`): in the loop window
   q's camera is at wfq and c's at wfc (window units); W_c's scale s_c converts window to c-side world units,
   W_q's s_q to q-side ones, so match_from_query = S(s_c) wfc^-1 wfq S(1 / s_q), S(s) = diag(s, s, s, 1):
   [[(s_c / s_q) R, s_c t], [0, 1]]. It maps a point in q's camera frame, in q-side world units, into c's camera
   frame in c-side units; its scale s_c / s_q is 1 in a world without scale drift (and in a metric one).

Rejection causes (counted in `VerificationCounters.rejections`): ``match_<cause>`` / ``query_<cause>`` (that half failed
the alignment; <cause> as in window merging: ``few_correspondences``, ``inliers``, ``residual``,
``camera_mismatch``, ...), ``unusable_output`` (the network's cameras could not be decoded), ``forgotten`` (c
left the world's trajectory), ``image_size`` (c's image has another model size).
"""

from __future__ import annotations

import io
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Optional, Union

import numpy as np
import torch
from PIL import Image

from vggt_ros.geometry import apply_transform, decompose_similarity, invert_pose
from vggt_ros.numeric import percentile
from vggt_ros.preprocess import to_unit_float
from vggt_ros.products import decode_window
from vggt_ros.world.config import WindowResult, WindowStatus, WorldConfig
from vggt_ros.world.keyframes import FrameSamples, SampleStore, Trajectory
from vggt_ros.world.loop_constraint import LoopConstraint
from vggt_ros.world.overlap import AlignmentFailure, align
from vggt_ros.world.place_recognition import (
    PlaceCandidate,
    PlaceDescriptor,
    PlaceIndex,
    PlaceRecognitionConfig,
    PlaceSearch,
)

LOOP_OUTPUTS = ("pose_enc", "depth", "depth_conf")
LOOP_WINDOW_MAX_FRAMES = 4
_SAMPLE_BYTES = 4 + 3 * 2 + 2  # a stored sample: int32 pixel, float16 point, float16 confidence


@dataclass(frozen=True)
class LoopVerificationConfig:
    """Loop detection and verification (the alignment gates are the world's own, `WorldConfig`).

    Attributes:
        place: the descriptor and the search.
        jpeg_quality: quality (1..95) of each keyframe's compact image (model resolution).
        keyframe_pixels: alignment samples kept per keyframe (camera-frame points, float16).
        max_keyframe_bytes: documented bound on a keyframe's compact copy (image + samples + descriptor); a
            keyframe over it (e.g. a huge model resolution) is stored with fewer samples, never more.
        neighbour_max_gap_s: a stored keyframe within this time of c is its neighbour in the loop window.
        cooldown_keyframes: after a loop closes, this many new keyframes are stored but not searched: a route
            driven again would otherwise close a loop at every keyframe, each one a graph solve and a map rebuild.
        seed: the alignments' robust-estimator seed.
    """

    place: PlaceRecognitionConfig = field(default_factory=PlaceRecognitionConfig)
    jpeg_quality: int = 80
    keyframe_pixels: int = 600
    max_keyframe_bytes: int = 50_000
    neighbour_max_gap_s: float = 2.0
    cooldown_keyframes: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if (
            isinstance(self.jpeg_quality, bool)
            or not isinstance(self.jpeg_quality, int)
            or not 1 <= self.jpeg_quality <= 95
        ):
            raise ValueError(
                f"LoopVerificationConfig.jpeg_quality must be an int in [1, 95], got {self.jpeg_quality!r}"
            )
        for name in ("keyframe_pixels", "max_keyframe_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 3:
                raise ValueError(f"LoopVerificationConfig.{name} must be an int >= 3, got {value!r}")
        if isinstance(self.cooldown_keyframes, bool) or not isinstance(self.cooldown_keyframes, int):
            raise ValueError(
                f"LoopVerificationConfig.cooldown_keyframes must be an int, got {self.cooldown_keyframes!r}"
            )
        if self.cooldown_keyframes < 0:
            raise ValueError(f"LoopVerificationConfig.cooldown_keyframes must be >= 0, got {self.cooldown_keyframes}")
        if not (math.isfinite(self.neighbour_max_gap_s) and self.neighbour_max_gap_s >= 0):
            raise ValueError(
                f"LoopVerificationConfig.neighbour_max_gap_s must be a number >= 0, got {self.neighbour_max_gap_s!r}"
            )


@dataclass(frozen=True)
class LoopKeyframe:
    """A keyframe's compact copy for the loop pass.

    image_jpeg: its ``image_hw`` (H, W) model image, JPEG; image_box: the model pixels that show the camera image,
    (top, bottom, left, right) half-open (`vggt_ros.preprocess.PixelMap.image_box`; the rest is padding);
    pixel_index: ``(P,)`` int32 flat model pixels of its samples; points: ``(P, 3)`` float16 camera-frame points in
    the units of the window that added it; confidence: ``(P,)`` float16.
    """

    image_jpeg: bytes
    image_hw: tuple[int, int]
    image_box: tuple[int, int, int, int]
    pixel_index: np.ndarray
    points: np.ndarray
    confidence: np.ndarray

    @property
    def nbytes(self) -> int:
        return len(self.image_jpeg) + self.pixel_index.nbytes + self.points.nbytes + self.confidence.nbytes

    def image(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB."""
        with Image.open(io.BytesIO(self.image_jpeg)) as image:
            return np.asarray(image.convert("RGB"))


@dataclass(frozen=True)
class LoopRejection:
    """A candidate that did not become a constraint: ``cause`` (a short key, see the module docstring) and
    ``reason`` (a sentence for the log)."""

    query: Hashable
    match: Hashable
    score: float
    cause: str
    reason: str


@dataclass
class VerificationCounters:
    """Running totals: keyframes stored, queries, candidates proposed, verifications run, loops accepted,
    rejections by cause, and the last rejection's reason ("" before any)."""

    keyframes: int = 0
    queries: int = 0
    candidates: int = 0
    verified: int = 0
    accepted: int = 0
    rejections: Counter = field(default_factory=Counter)
    last_rejection: str = ""


@dataclass(frozen=True)
class LoopReport:
    """What `LoopVerifier.after_window` did for one window: each new keyframe's search (candidates with their
    scores), the verified constraints, the rejections, and host seconds per step (``describe``, ``search``,
    ``verify``)."""

    searches: tuple[PlaceSearch, ...] = ()
    constraints: tuple[LoopConstraint, ...] = ()
    rejections: tuple[LoopRejection, ...] = ()
    seconds: Mapping[str, float] = field(default_factory=dict)

    def messages(self) -> list[str]:
        """One sentence per candidate, verified loop and rejection, for the log."""
        lines = [
            f"loop candidate: keyframe {search.query} looks like keyframe {candidate.match} "
            f"(score {candidate.score:.3f}, rank {rank})"
            for search in self.searches
            for rank, candidate in enumerate(search.candidates, 1)
        ]
        lines += [
            f"loop verified: keyframe {c.query} -> {c.match} (score {c.score:.3f}, residual "
            f"{100 * c.residual_ratio:.1f} % of the scene depth)"
            for c in self.constraints
        ]
        lines += [f"loop rejected ({r.cause}): keyframe {r.query} -> {r.match}: {r.reason}" for r in self.rejections]
        return lines


@dataclass(frozen=True)
class NewKeyframe:
    """A keyframe a window just added, as the session hands it over: id, capture time (s), its cached patch
    tokens ``(h*w, C)``, model image ``(H, W, 3)`` uint8 (any device) and the model pixels that show the camera
    image (`LoopKeyframe.image_box`)."""

    frame_id: Hashable
    timestamp: float
    tokens: torch.Tensor
    colors: torch.Tensor
    image_box: tuple[int, int, int, int]


class LoopVerifier:
    """The place index, the compact keyframes and the verification (see the module docstring). One thread."""

    def __init__(self, config: LoopVerificationConfig, world_config: WorldConfig) -> None:
        self.config = config
        self.world_config = world_config
        self.describe = PlaceDescriptor(config.place.descriptor_dim, config.place.projection_seed)
        self.index = PlaceIndex(config.place)
        self.counters = VerificationCounters()
        self._cooldown = 0  # new keyframes still to store without searching (`loop_closed`)

    def reset(self) -> None:
        """Forget every keyframe (the world started over); the counters keep running."""
        self.index.reset()
        self._cooldown = 0

    def after_window(
        self,
        result: Optional[WindowResult],
        frames: Mapping[Hashable, NewKeyframe],
        world,
        pipeline,
        cameras: int = 1,
        search: bool = True,
    ) -> LoopReport:
        """Store the keyframes the window added and verify at most one candidate for each.

        ``result``: the world's verdict on the window; ``frames``: the window's frames (cached tokens and images)
        by id, at least the new ones and their predecessors; ``world``: the `World` (read only); ``pipeline``:
        the network (`encode`, `predict`); ``cameras``: images per frame set (a keyframe's neighbour in the
        loop window is the same camera's frame ``cameras`` places earlier in this window); ``search``: False
        stores the keyframes without looking for loops.
        """
        seconds = {"describe": 0.0, "search": 0.0, "verify": 0.0}
        if result is None or not result.merged:
            return LoopReport(seconds=seconds)
        if result.status is WindowStatus.INITIALIZED:
            self.reset()
        for frame_id in result.forgotten:  # the index holds only what the world keeps, so it proposes no other
            self.index.remove(frame_id)
        window_ids = result.frame_ids
        new = [frames[window_ids[i]] for i in np.flatnonzero(result.new_frames)]
        if not new:
            return LoopReport(seconds=seconds)
        start = time.perf_counter()
        descriptors = self.describe(torch.stack([k.tokens for k in new]))
        for keyframe, descriptor in zip(new, descriptors):
            self._remember(keyframe, descriptor, world, result.depth_scale)
        seconds["describe"] = time.perf_counter() - start
        covisible = set(world.samples) | set(window_ids)
        lost = _unjoined_keyframes(world)
        searches, constraints, rejections = [], [], []
        trajectory = None
        for keyframe, descriptor in zip(new if search else (), descriptors):
            if self._cooldown:  # a loop closed moments ago: stored, not searched
                self._cooldown -= 1
                continue
            start = time.perf_counter()
            search = self.index.search(descriptor, keyframe.timestamp, keyframe.frame_id, covisible, lost)
            seconds["search"] += time.perf_counter() - start
            searches.append(search)
            self.counters.queries += 1
            self.counters.candidates += len(search.candidates)
            if not search.candidates:
                continue
            start = time.perf_counter()
            if trajectory is None:
                trajectory = world.trajectory()
            position = window_ids.index(keyframe.frame_id)
            previous = window_ids[position - cameras] if position >= cameras else None
            neighbour = frames.get(previous) if previous in self.index else None
            answer = self.verify(keyframe, search.candidates[0], neighbour, trajectory, pipeline)
            seconds["verify"] += time.perf_counter() - start
            (constraints if isinstance(answer, LoopConstraint) else rejections).append(answer)
        return LoopReport(tuple(searches), tuple(constraints), tuple(rejections), seconds)

    def loop_closed(self) -> None:
        """A loop was accepted: skip the searches of the next ``cooldown_keyframes`` keyframes."""
        self._cooldown = self.config.cooldown_keyframes

    def verify(
        self,
        query: NewKeyframe,
        candidate: PlaceCandidate,
        query_neighbour: Optional[NewKeyframe],
        trajectory: Trajectory,
        pipeline,
    ) -> Union[LoopConstraint, LoopRejection]:
        """One loop pass for ``query`` and ``candidate``; the constraint, or the rejection (counted)."""
        self.counters.verified += 1
        match = candidate.match

        def reject(cause: str, reason: str) -> LoopRejection:
            self.counters.rejections[cause] += 1
            self.counters.last_rejection = f"loop {query.frame_id} -> {match}: {reason}"
            return LoopRejection(query.frame_id, match, candidate.score, cause, reason)

        row = {frame_id: i for i, frame_id in enumerate(trajectory.frame_ids)}
        if match not in row or query.frame_id not in row:
            return reject("forgotten", f"keyframe {match} is no longer in the world's trajectory")
        match_side = [match]
        for other in self.index.neighbours(match):
            gap = abs(self.index.timestamp(other) - candidate.timestamp)
            if other in row and gap <= self.config.neighbour_max_gap_s:
                match_side.insert(0 if self.index.timestamp(other) < candidate.timestamp else 1, other)
                break
        query_side = (
            [query] if query_neighbour is None or query_neighbour.frame_id not in row else [query_neighbour, query]
        )
        image_hw = tuple(query.colors.shape[:2])
        stored = [self.index.payload(f) for f in match_side]
        if any(s.image_hw != image_hw for s in stored):
            return reject("image_size", f"keyframe {match}'s image is {stored[0].image_hw}, the query's {image_hw}")

        # The loop pass: c's side re-encoded from the compact images, q's side from the token cache.
        device = query.tokens.device
        match_pixels = torch.from_numpy(np.stack([s.image() for s in stored])).to(device)
        match_tokens = pipeline.encode(to_unit_float(match_pixels.permute(0, 3, 1, 2)))
        tokens = torch.cat((match_tokens.to(query.tokens.dtype), torch.stack([k.tokens for k in query_side])))
        colors = torch.cat((match_pixels, torch.stack([k.colors.to(device) for k in query_side])))
        frame_ids = tuple(match_side) + tuple(k.frame_id for k in query_side)
        stamps = [self.index.timestamp(f) for f in match_side] + [k.timestamp for k in query_side]
        dense = tuple(range(len(frame_ids)))
        # Padding is no observation: masked as in the session's windows, so the percentile counts image pixels only.
        image_boxes = tuple(s.image_box for s in stored) + tuple(k.image_box for k in query_side)
        predictions = pipeline.predict(tokens, image_hw, LOOP_OUTPUTS, torch.tensor(dense))
        try:
            products = decode_window(predictions, frame_ids, stamps, dense, colors, image_boxes)
        except ValueError as err:
            return reject("unusable_output", f"the loop pass's output could not be decoded: {err}")
        _, grid_confidence, grid_usable = products.grid(1)
        if not bool(grid_usable.any()):
            return reject("unusable_output", "the loop pass returned no usable depth pixel")
        threshold = -math.inf
        if self.world_config.confidence_percentile > 0:
            threshold = percentile(grid_confidence[grid_usable], self.world_config.confidence_percentile)

        placements = {}
        diagnostics = {}
        for side, ids in (("match", match_side), ("query", [k.frame_id for k in query_side])):
            samples = SampleStore(LOOP_WINDOW_MAX_FRAMES)
            for frame_id in ids:
                i = row[frame_id]
                samples[frame_id] = self._placed_samples(
                    self.index.payload(frame_id), trajectory.world_from_camera[i], trajectory.depth_scale[i]
                )
            aligned = align(products, samples, threshold, self.world_config, seed=self.config.seed)
            if isinstance(aligned, AlignmentFailure):
                return reject(f"{side}_{aligned.cause}", f"the {side} side does not align: {aligned.reason}")
            placements[side], diagnostics[side] = aligned

        scale_match = float(decompose_similarity(placements["match"])[0])
        scale_query = float(decompose_similarity(placements["query"])[0])
        window_from_match = products.window_from_camera[frame_ids.index(match)]
        window_from_query = products.window_from_camera[frame_ids.index(query.frame_id)]
        match_from_query = (
            np.diag([scale_match] * 3 + [1.0])
            @ invert_pose(window_from_match)
            @ window_from_query
            @ np.diag([1.0 / scale_query] * 3 + [1.0])
        )
        self.counters.accepted += 1
        return LoopConstraint(
            query=query.frame_id,
            match=match,
            match_from_query=match_from_query,
            residual_ratio=max(diagnostics["match"]["residual_ratio"], diagnostics["query"]["residual_ratio"]),
            score=candidate.score,
        )

    def keyframe_bytes(self, frame_id: Hashable) -> int:
        """Memory of one stored keyframe: its compact copy and its descriptor."""
        return self.index.payload(frame_id).nbytes + self.index.descriptor_bytes

    def _remember(self, keyframe: NewKeyframe, descriptor: np.ndarray, world, depth_scale: float) -> None:
        """Store a new keyframe (``depth_scale``: world units per unit of the window that added it)."""
        samples = world.samples.get(keyframe.frame_id)
        if samples is None or keyframe.frame_id in self.index:
            return
        colors = keyframe.colors.cpu().numpy()
        buffer = io.BytesIO()
        Image.fromarray(colors).save(buffer, format="JPEG", quality=self.config.jpeg_quality)
        image_jpeg = buffer.getvalue()
        budget = self.config.max_keyframe_bytes - len(image_jpeg) - self.index.descriptor_bytes
        count = min(self.config.keyframe_pixels, len(samples.pixel_index), max(0, budget) // _SAMPLE_BYTES)
        rows = np.linspace(0, len(samples.pixel_index) - 1, count).round().astype(np.int64) if count else []
        pose = samples.world_from_camera
        camera_points = (samples.points[rows] - pose[:3, 3]) @ pose[:3, :3] / depth_scale
        payload = LoopKeyframe(
            image_jpeg=image_jpeg,
            image_hw=tuple(colors.shape[:2]),
            image_box=keyframe.image_box,
            pixel_index=samples.pixel_index[rows].astype(np.int32),
            points=camera_points.astype(np.float16),
            confidence=samples.confidence[rows].astype(np.float16),
        )
        self.index.add(keyframe.frame_id, keyframe.timestamp, descriptor, payload)
        self.counters.keyframes += 1

    @staticmethod
    def _placed_samples(stored: LoopKeyframe, world_from_camera: np.ndarray, depth_scale: float) -> FrameSamples:
        """A keyframe's stored samples at its current world pose, as the alignment takes them (a fresh copy)."""
        camera_points = stored.points.astype(np.float64) * float(depth_scale)
        points = apply_transform(world_from_camera, camera_points)
        count = len(stored.pixel_index)
        return FrameSamples(
            pixel_index=stored.pixel_index.astype(np.int64),
            points=points,
            observations=np.ones(count),
            confidence=stored.confidence.astype(np.float64),
            depth=camera_points[:, 2].copy(),
            world_from_camera=np.array(world_from_camera, dtype=np.float64),
        )


def _unjoined_keyframes(world) -> list:
    """The keyframes of segments that no loop joined to the current one: relocalisation may find them at any
    age."""
    if world.segment == 0 or world.loops is None:
        return []
    nodes = world.loops.graph.nodes
    segments = {node.segment for node in nodes.values()}
    lost = {segment for segment in segments if not world.joined_to_current(segment)}  # once per segment, not node
    return [f for f, node in nodes.items() if node.segment in lost] if lost else []
