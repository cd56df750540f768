# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Place recognition from the network's own encoder: which old keyframe a new one sees again (loop candidates).

The descriptor (SwiftVGGT-style, no external model, no extra network call): the session already caches every
frame's DINOv2 patch tokens ``(h*w, C)``. Each token is L2-normalised (so a few high-norm tokens cannot dominate),
the tokens are averaged over the image, the average is mapped to ``descriptor_dim`` by a fixed random
orthonormal projection (only when C differs; C <= dim keeps every cosine exactly, C > dim keeps them
approximately, Johnson-Lindenstrauss) and L2-normalised again. Two keyframes' similarity is the cosine (dot
product) of their descriptors.

The search is brute force over the stored descriptors (a matrix-vector product: 1000 keyframes x 1024 is a
millisecond). Excluded: keyframes younger than ``min_age_s`` before the query, the ``exclude_recent``
keyframes stored last (except those the caller exempts: a lost segment's, which nothing aligns to), and the ids
the caller names as covisible (those the world still aligns the current window to). The rest above ``min_score``
are ranked, a candidate within ``nms_s`` seconds of a better one is suppressed (non-maximum suppression: one
candidate per place), and at most ``top_k`` are kept.

The store is bounded: past ``capacity`` every second older frame set is dropped (the recent ones stay), so it
always spans the whole run, like the world's keyframe history. Each entry may carry a payload (the loop
verification keeps a compact image and a point sample there, `vggt_ros.world.loop_verification`).

`describe_images` runs the encoder on images outside a session, and `detection_precision_recall` scores
descriptors against ground-truth poses (for the benchmarks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Iterator, Optional

import numpy as np
import torch

from vggt_ros.preprocess import preprocess_frames_u8, to_unit_float
from vggt_ros.window import same_frame_set


@dataclass(frozen=True)
class PlaceRecognitionConfig:
    """How keyframes are described and searched.

    Attributes:
        descriptor_dim: length of the global descriptor (VGGT's DINOv2 width, 1024: no projection there).
        projection_seed: seed of the fixed random projection used when the encoder width differs.
        capacity: keyframes stored at most (descriptor memory: 4 bytes x ``descriptor_dim`` each, float32).
        min_score: cosine similarity a candidate needs (0..1). Measured with the tiny test model's encoder:
            the same image shifted a few pixels scores >= 0.98, different photographs <= 0.92.
        top_k: candidates kept per query, best first (the verification tries the first).
        min_age_s: keyframes captured less than this before the query are never candidates (time exclusion).
        exclude_recent: the keyframes stored last (this many) are never candidates (covisibility: they share
            windows with the query); the caller excludes the frames the world still aligns to as well.
        nms_s: a candidate within this many seconds of a better-scoring one is suppressed.
    """

    descriptor_dim: int = 1024
    projection_seed: int = 0
    capacity: int = 1000
    min_score: float = 0.9
    top_k: int = 3
    min_age_s: float = 20.0
    exclude_recent: int = 30
    nms_s: float = 3.0

    def __post_init__(self) -> None:
        for name in ("descriptor_dim", "capacity", "top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PlaceRecognitionConfig.{name} must be an int >= 1, got {value!r}")
        if isinstance(self.exclude_recent, bool) or not isinstance(self.exclude_recent, int) or self.exclude_recent < 0:
            raise ValueError(f"PlaceRecognitionConfig.exclude_recent must be an int >= 0, got {self.exclude_recent!r}")
        if not (math.isfinite(self.min_score) and -1.0 <= self.min_score <= 1.0):
            raise ValueError(f"PlaceRecognitionConfig.min_score must be a cosine in [-1, 1], got {self.min_score!r}")
        for name in ("min_age_s", "nms_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"PlaceRecognitionConfig.{name} must be a number >= 0 (seconds), got {value!r}")


class PlaceDescriptor:
    """Patch tokens -> global descriptors (see the module docstring). Holds the fixed projection of one width."""

    def __init__(self, dim: int = PlaceRecognitionConfig.descriptor_dim, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed
        self._projection: Optional[torch.Tensor] = None  # (C, dim), made for the first width seen

    def __call__(self, tokens: torch.Tensor) -> np.ndarray:
        """``(S, h*w, C)`` patch tokens (any device, any float type) -> ``(S, dim)`` float32 unit descriptors."""
        if tokens.ndim != 3:
            raise ValueError(f"patch tokens must be (S, h*w, C), got shape {tuple(tokens.shape)}")
        pooled = torch.nn.functional.normalize(tokens.detach().float(), dim=-1).mean(dim=1).cpu()
        width = pooled.shape[1]
        if width != self.dim:
            pooled = pooled @ self._projection_for(width)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)

    def _projection_for(self, width: int) -> torch.Tensor:
        if self._projection is None or self._projection.shape[0] != width:
            generator = torch.Generator().manual_seed(self.seed)
            gaussian = torch.randn(max(width, self.dim), min(width, self.dim), generator=generator, dtype=torch.float64)
            orthonormal, _ = torch.linalg.qr(gaussian)  # orthonormal columns
            self._projection = (orthonormal if width >= self.dim else orthonormal.T).float()
        return self._projection


@dataclass(frozen=True)
class PlaceCandidate:
    """An old keyframe that looks like the query: its id, capture time (s) and cosine ``score``."""

    match: Hashable
    timestamp: float
    score: float


@dataclass(frozen=True)
class PlaceSearch:
    """One query's answer: ``candidates`` best first; ``searched``: stored keyframes compared after exclusion;
    ``excluded``: stored keyframes left out (time, recency, covisibility); ``best_score``: the highest score
    among the searched ones (NaN when none), for the log even when no candidate passed."""

    query: Hashable
    candidates: tuple[PlaceCandidate, ...]
    searched: int
    excluded: int
    best_score: float


class PlaceIndex:
    """The bounded descriptor store and its search (see the module docstring). Not thread-safe."""

    def __init__(self, config: PlaceRecognitionConfig = PlaceRecognitionConfig()) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._ids: list[Hashable] = []
        self._stamps: list[float] = []
        self._payloads: list[Any] = []
        # One row per stored keyframe (the first len(self) rows), plus the one being added past capacity.
        self._descriptors = np.zeros((self.config.capacity + 1, self.config.descriptor_dim), dtype=np.float32)
        self._position: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, frame_id: Hashable) -> bool:
        return frame_id in self._position

    def __iter__(self) -> Iterator[Hashable]:
        """The stored keyframes' ids, oldest first."""
        return iter(tuple(self._ids))

    @property
    def nbytes(self) -> int:
        """Bytes of the descriptor store (allocated for ``capacity`` keyframes; payloads not included)."""
        return int(self._descriptors.nbytes)

    @property
    def payload_bytes(self) -> int:
        """Bytes of the stored payloads (each one's ``nbytes``; a payload without it counts 0)."""
        return sum(int(getattr(payload, "nbytes", 0)) for payload in self._payloads)

    @property
    def descriptor_bytes(self) -> int:
        """Bytes one stored descriptor takes."""
        return int(self._descriptors.itemsize * self.config.descriptor_dim)

    def add(self, frame_id: Hashable, timestamp: float, descriptor: np.ndarray, payload: Any = None) -> None:
        """Store a keyframe's ``(descriptor_dim,)`` unit descriptor (and an optional payload); ids are unique."""
        if frame_id in self._position:
            raise ValueError(f"keyframe {frame_id!r} is already in the place index")
        descriptor = np.asarray(descriptor, dtype=np.float32).reshape(-1)
        if descriptor.shape != (self.config.descriptor_dim,):
            raise ValueError(
                f"a descriptor must have {self.config.descriptor_dim} values (descriptor_dim), got {descriptor.size}"
            )
        self._ids.append(frame_id)
        self._stamps.append(float(timestamp))
        self._payloads.append(payload)
        self._descriptors[len(self._ids) - 1] = descriptor
        if len(self._ids) > self.config.capacity:
            # Every second older frame set goes, so the store keeps spanning the whole run, the same for every camera
            # (keyframe by keyframe, a rig's camera 1 lost its history); the recent ones stay (the next queries'
            # neighbours).
            recent = min(self.config.exclude_recent + 1, self.config.capacity // 2)
            older = len(self._ids) - recent
            sets = np.cumsum([not same_frame_set(a, b) for a, b in zip([None, *self._ids], self._ids[:older])])
            kept = [i for i in range(older) if sets[i] % 2 == 1] + list(range(older, len(self._ids)))
            self._ids = [self._ids[i] for i in kept]
            self._stamps = [self._stamps[i] for i in kept]
            self._payloads = [self._payloads[i] for i in kept]
            self._descriptors[: len(kept)] = self._descriptors[kept]
        self._position = {frame_id: i for i, frame_id in enumerate(self._ids)}

    def remove(self, frame_id: Hashable) -> None:
        """Forget ``frame_id`` (the world dropped its keyframe, so no loop can be closed to it); no-op if absent."""
        position = self._position.pop(frame_id, None)
        if position is None:
            return
        count = len(self._ids)
        del self._ids[position], self._stamps[position], self._payloads[position]
        self._descriptors[position : count - 1] = self._descriptors[position + 1 : count]
        self._position = {frame_id: i for i, frame_id in enumerate(self._ids)}

    def payload(self, frame_id: Hashable) -> Any:
        return self._payloads[self._position[frame_id]]

    def timestamp(self, frame_id: Hashable) -> float:
        return self._stamps[self._position[frame_id]]

    def descriptor(self, frame_id: Hashable) -> np.ndarray:
        return self._descriptors[self._position[frame_id]].copy()

    def neighbours(self, frame_id: Hashable) -> tuple[Hashable, ...]:
        """The stored keyframes right after and right before ``frame_id`` (insertion order), nearest in time
        first, that share its camera (the second element of a ``(stamp_ns, camera)`` id; any id otherwise)."""
        position = self._position[frame_id]

        def same_camera(other: Hashable) -> bool:
            return not isinstance(frame_id, tuple) or not isinstance(other, tuple) or other[1:] == frame_id[1:]

        after = next((self._ids[i] for i in range(position + 1, len(self._ids)) if same_camera(self._ids[i])), None)
        before = next((self._ids[i] for i in range(position - 1, -1, -1) if same_camera(self._ids[i])), None)
        found = [f for f in (after, before) if f is not None]
        return tuple(sorted(found, key=lambda f: abs(self.timestamp(f) - self._stamps[position])))

    def search(
        self,
        descriptor: np.ndarray,
        timestamp: float,
        query: Hashable = None,
        covisible: Iterable[Hashable] = (),
        any_age: Iterable[Hashable] = (),
    ) -> PlaceSearch:
        """Loop candidates for a keyframe captured at ``timestamp`` (s) with ``descriptor`` ``(descriptor_dim,)``.

        ``covisible``: ids never to propose (e.g. the frames the world still aligns the current window to);
        ``any_age``: ids exempt from the time and recency exclusions (the keyframes of segments the current one is
        not joined to: the exclusions keep the path just travelled out, and nothing of a lost segment is covisible,
        so a brief loss revisiting places seen seconds before found no candidate for 20 s).
        """
        config = self.config
        count = len(self._ids)
        stamps = np.asarray(self._stamps, dtype=np.float64)
        eligible = stamps <= timestamp - config.min_age_s
        eligible[max(0, count - config.exclude_recent) :] = False
        for frame_id in any_age:
            position = self._position.get(frame_id)
            if position is not None:
                eligible[position] = True
        for frame_id in (query, *covisible):
            position = self._position.get(frame_id)
            if position is not None:
                eligible[position] = False
        rows = np.flatnonzero(eligible)
        if rows.size == 0:
            return PlaceSearch(query, (), 0, count, float("nan"))
        query_descriptor = np.asarray(descriptor, dtype=np.float32).reshape(-1)
        scores = (self._descriptors[:count] @ query_descriptor)[rows]
        order = np.argsort(-scores, kind="stable")
        kept: list[PlaceCandidate] = []
        for k in order:
            # Not "score < min_score": a non-finite descriptor (a NaN in the patch tokens) scores NaN, no candidate.
            if not scores[k] >= config.min_score or len(kept) == config.top_k:
                break
            row = int(rows[k])
            if any(abs(stamps[row] - c.timestamp) <= config.nms_s for c in kept):
                continue
            kept.append(PlaceCandidate(self._ids[row], float(stamps[row]), float(scores[k])))
        return PlaceSearch(query, tuple(kept), int(rows.size), count - int(rows.size), float(scores[order[0]]))


def describe_images(
    pipeline, images: np.ndarray, image_size: int, mode: str = "crop", batch: int = 16, dim: int = 1024
) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 images -> ``(N, dim)`` descriptors, through the pipeline's encoder as the session
    runs it (fast preprocessing to ``image_size`` in ``mode``, then `PlaceDescriptor`)."""
    describe = PlaceDescriptor(dim)
    out = []
    for start in range(0, len(images), batch):
        pixels = preprocess_frames_u8(
            np.ascontiguousarray(images[start : start + batch]),
            mode=mode,
            target_size=image_size,
            device=pipeline.device,
        )
        out.append(describe(pipeline.encode(to_unit_float(pixels.to(pipeline.device)))))
    return np.concatenate(out)


@dataclass(frozen=True)
class DetectionScore:
    """Loop detection against ground truth: ``precision`` = true candidates / candidates proposed (NaN when none);
    ``recall`` = queries whose first candidate is true / queries that had a true match among the eligible
    keyframes (NaN when none had); the counts behind them."""

    precision: float
    recall: float
    proposed: int
    true_proposed: int
    revisits: int
    revisits_found: int


def detection_precision_recall(
    descriptors: np.ndarray,
    world_from_camera: np.ndarray,
    stamps_s: np.ndarray,
    config: PlaceRecognitionConfig = PlaceRecognitionConfig(),
    max_distance: float = 0.5,
    max_angle_deg: float = 30.0,
) -> DetectionScore:
    """Run the place index over a sequence in order and score its first candidates against the ground truth.

    Args:
        descriptors: ``(N, D)`` unit descriptors of the keyframes, capture order (e.g. `PlaceDescriptor` of the
            real encoder's tokens).
        world_from_camera: ``(N, 4, 4)`` (or ``(N, 3, 4)``) ground-truth camera poses (camera-to-world).
        stamps_s: ``(N,)`` capture times, seconds.
        max_distance, max_angle_deg: a pair is a true revisit when the camera centres are closer than
            ``max_distance`` (scene units) and the optical axes differ by less than ``max_angle_deg``.
    """
    descriptors = np.asarray(descriptors, dtype=np.float32)
    centres = np.asarray(world_from_camera)[:, :3, 3]
    axes = np.asarray(world_from_camera)[:, :3, 2]
    if not (len(descriptors) == len(centres) == len(stamps_s)):
        raise ValueError("descriptors, world_from_camera and stamps_s must describe the same N keyframes")
    index = PlaceIndex(config)
    proposed = true_proposed = revisits = found = 0
    cos_limit = math.cos(math.radians(max_angle_deg))
    for i, (descriptor, stamp) in enumerate(zip(descriptors, stamps_s)):
        answer = index.search(descriptor, float(stamp), query=i)
        eligible = [
            index._ids[j]
            for j in range(len(index))
            if index._stamps[j] <= stamp - config.min_age_s and j < len(index) - config.exclude_recent
        ]
        true = {
            j
            for j in eligible
            if np.linalg.norm(centres[j] - centres[i]) < max_distance and float(axes[j] @ axes[i]) > cos_limit
        }
        if true:
            revisits += 1
        if answer.candidates:
            proposed += 1
            first_true = answer.candidates[0].match in true
            true_proposed += int(first_true)
            found += int(first_true)
        index.add(i, float(stamp), descriptor)
    return DetectionScore(
        precision=true_proposed / proposed if proposed else float("nan"),
        recall=found / revisits if revisits else float("nan"),
        proposed=proposed,
        true_proposed=true_proposed,
        revisits=revisits,
        revisits_found=found,
    )
