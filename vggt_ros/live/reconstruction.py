# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The live reconstruction between the node's two threads: frame sets in, windows through the session, outcomes
counted and reported.

The executor thread offers frame sets (`offer`: keyframes, the window, cheap). The worker thread takes the newest
window (`next_window`) and runs it (`process`): inference outside the world lock, then integration under it. They
meet in a `LatestSlot`, so when the network is slower than the cameras the newest window wins and the frame sets
of the replaced windows are counted as dropped. The world and the map are shared under one lock, held only while
a window is integrated (never during inference), so the map and the services answer while the network runs. The
map is read by its own thread (`map_if_changed`), never by the executor, which must not wait for an integration.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np

from vggt_ros.live.health import LoopState, PipelineCounters
from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.metric.sources import ScaleObservation, ScaleUnavailable
from vggt_ros.session import DepthLookup, FrameSetError, PublishedCorrection, ReconstructionSession, WindowOutput
from vggt_ros.window import FrameSet, LatestSlot, Window
from vggt_ros.world import LoopResult, WindowStatus


@dataclass(frozen=True)
class LoopUpdate:
    """The world's new correction ``(4, 4)`` (`ReconstructionSession.world_correction`) and, after an accepted loop,
    camera 0's corrected path (empty when not published, or when no loop closed: the window's path already has
    it); after a loop the map changed too (its version moved)."""

    correction: np.ndarray
    path: list


class LiveReconstruction:
    """A `ReconstructionSession` fed by live cameras.

    Args:
        session: the session (its pipeline loaded).
        log: the node's log policy.
        world_frame: the world's frame id, for the log.
        recent_frames: how many of the newest keyframes (with their camera images) are kept for ``~/save``'s
            dataset exports, in whole frame sets (with several cameras, rounded down to a multiple of the cameras,
            at least one set); 0 keeps none.
        camera_path: also compute camera 0's path after each merged window (for ``~/path``).
    """

    def __init__(
        self,
        session: ReconstructionSession,
        log: LogPolicy,
        world_frame: str,
        recent_frames: int,
        camera_path: bool,
    ) -> None:
        self.session = session
        self.counters = PipelineCounters()
        self.world_lock = threading.Lock()  # the world and the map: changed by the worker, read by the map thread
        # (ExportFrame, image) of the newest keyframes. They come in whole frame sets, so a multiple of the cameras
        # keeps whole sets: a bound that cut one left each camera's dataset a different time span.
        cameras = session.config.cameras
        kept = cameras * max(1, recent_frames // cameras) if recent_frames else 0
        self.recent_frames: deque = deque(maxlen=kept)
        self.newest_stamp_ns = 0
        # Windows merged into the worlds of this run, and their number when the last ~/save copied the world or a
        # new world discarded it (both under the world lock): the difference is what a cleanup would discard.
        self.merged_windows = 0
        self.saved_windows = 0
        self._log = log
        self._world_frame = world_frame
        self._camera_path = camera_path
        self._slot: LatestSlot[Window] = LatestSlot()
        self._map_version_sent = session.map.version  # the map as it starts (empty) is nothing to publish
        self._correction = PublishedCorrection()
        self._last_loop_rejection = ""  # the newest, by the verification or by the world (worker thread)

    # ------------------------------------------------------------------------------------------ executor
    def offer(self, frame_set: FrameSet) -> bool:
        """A synchronised frame set: into the window; a full window goes to the worker (replacing an untaken one).
        Returns whether it became a keyframe (the network will run on it)."""
        counters = self.counters
        counters.frame_sets += 1
        try:
            update = self.session.add(frame_set)
        except FrameSetError as err:
            counters.frame_sets_refused += 1
            counters.last_refusal = str(err)
            self._log.every("error", ("frame_set", err.kind), str(err))
            return False
        if update.is_keyframe:
            counters.keyframes += 1
        if update.reset:
            self._log.logger.warning(update.reset)
        if update.window is not None:
            self._hand_over(update.window)
        return update.is_keyframe

    def _hand_over(self, window: Window) -> None:
        """A full window to the worker, replacing an untaken one (whose frame sets are counted as dropped)."""
        counters = self.counters
        counters.windows_emitted += 1
        replaced = self._slot.put(window)
        if replaced is not None:
            self._count_dropped(replaced)
            self._log.every(
                "warning",
                ("dropped",),
                f"inference is slower than the cameras: {counters.frame_sets_dropped} frame sets dropped so far "
                "(the newest frames win); raise window_stride or keyframe_min_interval_s, or use a faster backend",
            )

    def drop_waiting(self) -> int:
        """Deactivation: the window waiting for the worker is dropped (an inactive node starts no inference: with
        VGGT-1B on a CPU that was minutes of work, published after the node said it was inactive); the frame sets
        only it held, counted as dropped."""
        dropped = self._slot.clear()
        if dropped is None:
            return 0
        self._count_dropped(dropped)
        return dropped.new_count

    def _count_dropped(self, window: Window) -> None:
        """A window the worker never took: its frame sets no other window held are lost to the world."""
        self.counters.windows_dropped += 1
        self.counters.frame_sets_dropped += window.new_count

    def request_reset(self) -> None:
        """A new world and an empty map from the next window formed (``~/reset``): a window formed before it and
        still waiting for the worker is dropped (its frames belong to the world the reset ends), and one the worker
        has taken finishes in that world (`Window.resets`)."""
        self.session.request_reset()
        self._slot.clear()

    def map_if_changed(self) -> Optional[tuple[np.ndarray, np.ndarray, int]]:
        """(points ``(N, 3)``, colours ``(N, 3)``, stamp ns) of the map when it changed since the last call: copies,
        taken under the world lock. One caller (the node's map thread), never the executor: it waits for the lock."""
        with self.world_lock:
            self.counters.map_checks += 1
            growing_map = self.session.map
            if growing_map.version == self._map_version_sent:
                return None
            self._map_version_sent = growing_map.version
            return *self.session.map_in_chained_world(), self.newest_stamp_ns

    # -------------------------------------------------------------------------------------------- worker
    def next_window(self) -> Optional[Window]:
        """The newest window, waiting for one; None once closed."""
        return self._slot.take()

    def close(self) -> None:
        """Wake the worker for good: `next_window` returns None."""
        self._slot.close()

    def process(self, window: Window, depth_lookup: Optional[DepthLookup]) -> tuple[WindowOutput, list]:
        """Run one window: the network, then the world. Returns the output and, when merged and asked for, camera
        0's path ``[(stamp_ns, (4, 4) world_from_camera)]``."""
        inference = self.session.infer(window, depth_lookup)
        with self.world_lock:
            if inference.reset:
                self._discard_unsaved()
            out = self.session.integrate(inference)
            self.counters.windows_inferred += 1
            self.merged_windows += int(out.merged)
            self.newest_stamp_ns = out.window.frame_sets[-1].stamps_ns[0]
            if out.map_reset:  # a new world or segment: the kept frames belong to the old one
                self.recent_frames.clear()
            if self.recent_frames.maxlen:
                self.recent_frames.extend(self.session.exported_frames(out))
            path = self.session.camera_path() if out.merged and self._camera_path else []
        self._report(window, out)
        return out, path

    def _scale_off(self) -> float:
        """How far the outputs' scale is off the scale filter's estimate (relative; `ScaleState.off`), where the
        world still has more than one window's step to go (0 within it)."""
        scale_filter = self.session.world.scale_filter
        estimate = scale_filter.estimate  # metres per world unit of the world as it is now (after its rebase)
        if estimate is None or abs(math.log(estimate)) <= scale_filter.config.max_step:
            return 0.0
        return 1.0 / estimate - 1.0

    def _discard_unsaved(self) -> None:
        """A new world starts (``~/reset``, a new image size, time going back): say how many windows it discards
        that no ~/save kept, as a cleanup does. Under the world lock."""
        unsaved = self.merged_windows - self.saved_windows
        if unsaved:
            self._log.logger.warning(
                f"the new world discards {unsaved} window(s) merged since the last ~/save, never saved (call ~/save "
                "before a ~/reset to keep them; a new image size or time going back starts over by itself)"
            )
        self.saved_windows = self.merged_windows

    def close_loops(self, out: WindowOutput) -> Optional[LoopUpdate]:
        """Look for loops from the keyframes ``out`` added and close the verified ones (issue: one map for a whole
        run). The loop pass (at most one network call of <= 4 frames per new keyframe) runs outside the world lock;
        handing the loops to the pose graph runs under it. Returns what to republish when a loop was accepted or the
        world's correction moved; nothing while the world awaits its metric scale (nothing is published then), so a
        correction that moved meanwhile (back to the identity after ``~/reset``) goes out with the first window in
        metres."""
        if not out.merged:
            return None
        verifier = self.session.loop_verifier.counters
        verification_rejections = verifier.rejections.total()
        report = self.session.close_loops(out)
        for line in report.messages():
            self._log.logger.info(line)
        if verifier.rejections.total() > verification_rejections:
            self._last_loop_rejection = verifier.last_rejection
        results = []
        with self.world_lock:
            if report.constraints:
                results = self.session.apply_loops(report)
            accepted = any(result.accepted for result in results)
            path = self.session.camera_path() if accepted and self._camera_path else []
            correction = self.session.world_correction()
        for result in results:
            if result.dropped_held:
                self._last_loop_rejection = result.dropped_held[-1]
            self._log_loop(result, correction)  # a rejected loop is the newer news: it is the last rejection
            for dropped in result.dropped_held:  # after the loop that dropped them (a join names its loops first)
                self._log.logger.info(dropped)
        if self._correction.due(out, accepted, correction) is None:
            return None
        return LoopUpdate(correction, path)

    def _log_loop(self, result: LoopResult, correction: np.ndarray) -> None:
        """One line per loop the world judged: held (INFO), not closed (WARN, throttled by cause), closed (INFO, or
        WARN where it joined segments or dropped earlier loops)."""
        if result.held:
            self._log.logger.info(result.reason)
            return
        if not result.accepted:
            self._last_loop_rejection = result.reason
            self._log.every("warning", ("loop", result.cause), f"loop not closed ({result.cause}): {result.reason}")
            return
        moved = float(np.linalg.norm(correction[:3, 3]))
        line = (
            f"loop closed: the world moved by {moved:.3g} under the parent frame "
            f"(optimised in {result.optimisation.milliseconds:.0f} ms)"
        )
        if result.joined_segments:
            # Nothing bounds the offset between segments: loops from several frame sets agreeing rule out a lone
            # look-alike, not a place that looks alike all along (an identical room), which says so only here
            # and in /diagnostics' "segments joined".
            line += (
                f"; segments joined, the older map is back: {result.join_loops} agreeing loop(s) placed the "
                "segment, whose offset to the older one was unknown (check the map where places look alike)"
            )
        warns = result.joined_segments or result.optimisation.rejected_loops
        if warns:
            line += f"; {result.reason}"  # names the loops that joined the segments, and those dropped
        (self._log.logger.warning if warns else self._log.logger.info)(line)

    def loop_state(self) -> Optional[LoopState]:
        """Loop closure's counters for /diagnostics (None when it is off). Read without the lock: plain counters,
        each written by the worker thread only."""
        world = self.session.world
        if world.loops is None:
            return None
        found, closed = self.session.loop_verifier.counters, world.loop_counters
        return LoopState(
            candidates=found.candidates,
            accepted=closed.accepted,
            rejected=found.rejections.total() + closed.rejected,
            last_rejection=self._last_loop_rejection,
            segments_joined=closed.segments_joined,
            optimise_ms=closed.last_optimise_ms,
            dropped=closed.dropped,
            held=len(world.loops.held),
        )

    def failed(self, window: Window, err: Exception) -> None:
        """One window raised: counted and reported; the node goes on."""
        self.counters.windows_failed += 1
        self._log.every("error", ("inference", type(err).__name__), f"window {window.sequence} failed: {err}")

    def _report(self, window: Window, out: WindowOutput) -> None:
        counters, log = self.counters, self._log
        if isinstance(out.scale, ScaleUnavailable):
            source = self.session.config.metric.source
            if not out.metric:  # held back, or rejected before the first scale: there is no last scale to keep
                log.once(
                    "warning",
                    ("scale", f"waiting:{out.scale.kind}"),
                    f"waiting for the first metric scale from "
                    f"the {source} source ({out.scale.reason}); nothing is published until then",
                )
            else:
                log.once(
                    "warning",
                    ("scale", out.scale.kind),
                    f"metric scale not updated by window {window.sequence} "
                    f"({source} source: {out.scale.reason}); keeping the last scale",
                )
        elif out.scale is not None:
            log.clear(("scale",))  # measured again: report the next problem anew
            if out.scale.note:  # measured, less well than the source can: says so while it lasts
                log.every("warning", ("scale_note",), f"window {window.sequence}: metric scale {out.scale.note}")
        counters.metric = out.metric
        counters.scale_off = self._scale_off() if out.metric else 0.0
        unavailable = out.scale if isinstance(out.scale, ScaleUnavailable) else None
        counters.last_scale_problem = unavailable.reason if unavailable else ""
        counters.last_scale_problem_kind = unavailable.kind if unavailable else ""
        counters.last_scale_note = out.scale.note if isinstance(out.scale, ScaleObservation) else ""
        if out.result is not None:
            counters.segment = out.result.segment
        if out.status is WindowStatus.REJECTED:
            counters.windows_rejected += 1
            counters.last_rejection = out.reason
            cause = out.result.cause if out.result is not None else "undecodable"
            log.every("error", ("rejected", cause), f"window {window.sequence} not merged into the world: {out.reason}")
        elif out.status is WindowStatus.NEW_SEGMENT:
            log.logger.warning(
                f"tracking lost: window {window.sequence} starts segment {out.result.segment} ({out.reason}); "
                "the map was cleared"
            )
        elif out.status is WindowStatus.INITIALIZED:
            log.logger.info(f"window {window.sequence} defines the world frame '{self._world_frame}'")
        elif out.reason:  # merged, leaving out frames the window before got wrong
            log.every("warning", ("merged_with_note",), f"window {window.sequence} merged: {out.reason}")
