# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's health for ``/diagnostics``: plain counters in; rates, latency percentiles and OK / WARN / ERROR out.

No ROS here: `vggt_ros.ros.diagnostics` turns the result into diagnostic_msgs, and these rules are tested without
rclpy. Design decisions:

* The node keeps cumulative counters (each written by one thread) and, once per diagnostics period, hands a
  frozen `HealthSnapshot` of them to `HealthMonitor.update`. The monitor keeps the snapshots of the last
  ``window_s`` seconds and derives every rate and ratio as (newest - oldest) / elapsed, so the node needs no
  per-event bookkeeping for rates, and a late snapshot (a busy executor) only widens one interval. The gaps
  between snapshots also measure how long the executor was busy: its longest stall in the window.
* One status per component, as diagnostic_aggregator and rqt_robot_monitor expect: each camera, the pipeline,
  the backend and the metric scale. A component's level is the worst of its checks; its message lists the checks
  that failed, or summarises it when all pass. WARN: degraded but producing output (a quiet camera, images lost or
  dropped, frame sets dropped or refused, cameras that send but do not pair, windows rejected, high latency);
  ERROR: nothing comes out (every image of a camera dropped, every frame set refused, windows raising errors,
  latency above the error threshold, an inference that has not finished for that long).
* `SequenceGaps` counts the images a publisher sent that never reached the subscription callback, from DDS'
  publication sequence numbers. DDS' message-lost event counts only what the transport lost; images overwritten
  in the subscription queue (keep last 5, sensor-data QoS) while the executor was busy are reported by nothing
  else, and under load they are most of the losses.
"""

from __future__ import annotations

import enum
import math
import threading
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

# Publication latencies kept for the percentiles: more than diagnostics_window's worth at any real rate.
LATENCY_SAMPLES = 1024


class Level(enum.IntEnum):
    """diagnostic_msgs/DiagnosticStatus levels (same numbers)."""

    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class HealthThresholds:
    """When a component turns WARN or ERROR (the node's ``diagnostics_*`` parameters and ``input_timeout_s``).

    Attributes:
        window_s: rates, ratios and latency percentiles cover this many seconds.
        input_timeout_s: a camera without an image for this long is WARN.
        latency_warn_s, latency_error_s: the p95 latency from image stamp to publication above which the pipeline
            is WARN / ERROR; an inference unfinished for ``latency_error_s`` is ERROR too.
        dropped_warn_ratio: fraction of the window's keyframes dropped (inference slower than the cameras) above
            which the pipeline is WARN.
        missed_warn_ratio: fraction of a camera's images that never reached the node (lost by DDS or overwritten
            in the subscription queue) above which the camera is WARN.
        images_dropped_warn_ratio: fraction of a camera's images that reached the node but were dropped (see
            `CameraCounts.dropped`) above which the camera is WARN; all of them dropped is ERROR.
        gpu_memory_warn_ratio: fraction of the GPU's memory in use (all processes) above which the backend is WARN.
    """

    window_s: float = 5.0
    input_timeout_s: float = 5.0
    latency_warn_s: float = 1.0
    latency_error_s: float = 5.0
    dropped_warn_ratio: float = 0.5
    missed_warn_ratio: float = 0.01
    images_dropped_warn_ratio: float = 0.1
    gpu_memory_warn_ratio: float = 0.9

    def __post_init__(self) -> None:
        for name in ("window_s", "input_timeout_s", "latency_warn_s", "latency_error_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
        if self.latency_error_s <= self.latency_warn_s:
            raise ValueError(
                f"the latency error threshold ({self.latency_error_s} s) must be above the warning threshold "
                f"({self.latency_warn_s} s)"
            )
        for name in ("dropped_warn_ratio", "missed_warn_ratio", "images_dropped_warn_ratio", "gpu_memory_warn_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")


@dataclass(frozen=True)
class CameraCounts:
    """One camera's input since the node started.

    Attributes:
        name, topic: the camera's name and its resolved image topic.
        received: images that reached the subscription callback.
        missed: images its publishers sent after the first one received that never reached the callback (see
            `SequenceGaps`); None when the middleware gives no publication sequence numbers.
        lost_by_dds: images DDS reported lost (the message-lost event; also in ``missed`` once images arrive).
        last_image_s: the newest image's arrival (the clock's seconds, see `HealthSnapshot.time_s`); None before
            the first.
        listening: the node subscribes to the camera (it is active); an inactive node misses nothing.
        listening_since_s: the latest activation (None: since the monitor started).
        dropped: images received but dropped by the input (undecodable or unsupported, too large, in one of the
            node's own frames, or a repeated, late or stale stamp); each kind is logged.
        last_drop: why the newest dropped image was dropped ("" before any).
        clock_ahead_s: how far the newest used image was stamped ahead of its arrival on the node's clock, where
            further than the input's tolerance (the camera's clock runs ahead); else None.
    """

    name: str
    topic: str
    received: int
    missed: Optional[int]
    lost_by_dds: int
    last_image_s: Optional[float]
    listening: bool = True
    listening_since_s: Optional[float] = None
    dropped: int = 0
    last_drop: str = ""
    clock_ahead_s: Optional[float] = None


@dataclass(frozen=True)
class GpuMemory:
    """Device memory in bytes: in use by every process, the device's total, and held by torch's allocator."""

    used_bytes: int
    total_bytes: int
    torch_reserved_bytes: int


@dataclass(frozen=True)
class ScaleState:
    """The metric scale: its source (``metric_scale_source``), whether outputs are in metres, why the newest
    window measured no scale ("" when it did, or before any window), why it measured it less well than the
    source can (`ScaleObservation.note`, "" when it did not), and how far the outputs' scale is off the scale the
    source measured while the world converges to it by more than one window's step (relative: 0.25 = outputs 25 %
    too large; 0 within one step), and why the depth source's newest image was dropped (its encoding, no reading)."""

    source: str
    metric: bool
    problem: str
    note: str = ""
    off: float = 0.0
    depth_dropped: str = ""  # why the newest depth image was dropped ("" when it was used, or none came)
    problem_kind: str = ""  # `ScaleUnavailable.kind` of ``problem``


@dataclass(frozen=True)
class RobotState:
    """The world's place among the robot's frames (REP 105): the frames, whether the current world is placed in
    odom, why it is not yet ("" once placed, or before the first window), and whether that clears by itself at the
    first metric window (odometry that does not reach back to the world's first image)."""

    odom_frame: str
    base_frame: str
    placed: bool
    problem: str
    awaits_metric: bool = False


@dataclass(frozen=True)
class LoopState:
    """Loop closure so far: candidates place recognition proposed, loops the verification and the pose graph
    accepted, those rejected (either step) with the newest reason, segments joined (relocalisations), the
    newest optimisation's time (NaN before any), accepted loops dropped later (the loops after them
    disagreed), all totals since start, and the loops held for a join now (until others agree)."""

    candidates: int
    accepted: int
    rejected: int
    last_rejection: str
    segments_joined: int
    optimise_ms: float
    dropped: int = 0
    held: int = 0


@dataclass(frozen=True)
class HealthSnapshot:
    """The node's counters at one instant (cumulative since start, except the newest-value fields).

    Attributes:
        time_s: seconds on the node's clock (ROS time, which follows /clock under use_sim_time, as the node's
            timers do: a paused bag is no stall and no quiet camera). Every time below is on it.
        cameras: per camera, in camera order.
        keyframes: frame sets that entered the sliding window.
        frame_sets, frame_sets_refused, last_refusal: frame sets the cameras formed, those the session refused
            (e.g. cameras of different resolutions), and the newest refusal's reason ("" before any).
        last_frame_set_s: when the cameras last formed a frame set (or the node started listening).
        frame_sets_dropped: keyframes of windows replaced before inference (the newest window wins).
        windows_emitted, windows_dropped: windows handed to the worker, and those replaced before it took them.
        windows_inferred: windows the network finished (published, held back for the scale, or rejected).
        windows_published, windows_rejected, windows_failed: outcomes; failed ones raised an error.
        last_rejection: the newest rejected window's reason ("" before any).
        segment: the world's tracking segment (a new one starts when tracking is lost).
        latencies: ``(published_at_s, latency_s)`` of recent publications: the clock's seconds, and seconds from
            the window's newest image stamp to its publication (at least the last ``window_s``).
        backend, device, precision: the inference pipeline's.
        gpu_memory: None unless the device is CUDA.
        scale: the metric scale's state.
        robot: the robot frames' state (None: no robot frames).
    """

    time_s: float
    cameras: tuple[CameraCounts, ...]
    keyframes: int
    frame_sets_dropped: int
    windows_emitted: int
    windows_dropped: int
    windows_inferred: int
    windows_published: int
    windows_rejected: int
    windows_failed: int
    last_rejection: str
    segment: int
    latencies: tuple[tuple[float, float], ...]
    backend: str
    device: str
    precision: str
    gpu_memory: Optional[GpuMemory]
    scale: ScaleState
    loops: Optional[LoopState] = None  # None: loop closure is off
    frame_sets: int = 0
    frame_sets_refused: int = 0
    last_refusal: str = ""
    last_frame_set_s: Optional[float] = None
    robot: Optional[RobotState] = None


class PipelineCounters:
    """The node's pipeline counters, cumulative since configure; each field is written by one thread only.

    Executor thread: ``keyframes``, ``frame_sets``, ``frame_sets_refused``, ``last_refusal``, ``frame_sets_dropped``,
    ``windows_emitted``, ``windows_dropped``. Map thread:
    ``map_checks`` (map checks that got the world lock). Worker thread: the rest, and the publication latencies,
    which the diagnostics timer reads under a lock. See `HealthSnapshot` for each field's meaning.
    """

    def __init__(self, latency_samples: int = LATENCY_SAMPLES) -> None:
        self.keyframes = 0
        self.frame_sets = 0
        self.frame_sets_refused = 0
        self.last_refusal = ""
        self.frame_sets_dropped = 0
        self.windows_emitted = 0
        self.windows_dropped = 0
        self.map_checks = 0
        self.windows_inferred = 0
        self.windows_published = 0
        self.windows_rejected = 0
        self.windows_failed = 0
        self.last_rejection = ""
        self.segment = 0
        self.metric = False
        self.last_scale_problem = ""  # why the newest window measured no metric scale ("" if it did)
        self.last_scale_problem_kind = ""  # its `ScaleUnavailable.kind`
        self.last_scale_note = ""  # why the newest window measured it less well than its source can ("" if not)
        self.scale_off = 0.0  # `ScaleState.off` after the newest window
        self._latencies: deque[tuple[float, float]] = deque(maxlen=latency_samples)
        self._latencies_lock = threading.Lock()

    def published(self, now_s: float, latency_s: Optional[float]) -> None:
        """A window was published ``latency_s`` after its newest image's stamp (None: unknown, the node's clock has
        not started)."""
        self.windows_published += 1
        if latency_s is None:
            return
        with self._latencies_lock:
            self._latencies.append((now_s, latency_s))

    def latencies(self) -> tuple[tuple[float, float], ...]:
        with self._latencies_lock:
            return tuple(self._latencies)

    def snapshot(
        self,
        time_s: float,
        cameras: tuple[CameraCounts, ...],
        backend: str,
        device: str,
        precision: str,
        scale_source: str,
        loops: Optional[LoopState] = None,
        last_frame_set_s: Optional[float] = None,
        robot: Optional[RobotState] = None,
        depth_dropped: str = "",
    ) -> HealthSnapshot:
        """The counters at ``time_s`` with the cameras' and the pipeline's settings, for `HealthMonitor.update`."""
        return HealthSnapshot(
            time_s=time_s,
            cameras=cameras,
            keyframes=self.keyframes,
            frame_sets_dropped=self.frame_sets_dropped,
            windows_emitted=self.windows_emitted,
            windows_dropped=self.windows_dropped,
            windows_inferred=self.windows_inferred,
            windows_published=self.windows_published,
            windows_rejected=self.windows_rejected,
            windows_failed=self.windows_failed,
            last_rejection=self.last_rejection,
            segment=self.segment,
            latencies=self.latencies(),
            backend=backend,
            device=device,
            precision=precision,
            gpu_memory=gpu_memory(device),
            scale=ScaleState(
                scale_source,
                self.metric,
                self.last_scale_problem,
                self.last_scale_note,
                self.scale_off,
                depth_dropped,
                self.last_scale_problem_kind,
            ),
            loops=loops,
            frame_sets=self.frame_sets,
            frame_sets_refused=self.frame_sets_refused,
            last_refusal=self.last_refusal,
            last_frame_set_s=last_frame_set_s,
            robot=robot,
        )


@dataclass(frozen=True)
class ComponentHealth:
    """One diagnostic status: component name, hardware id, level, one-line message, (key, value) pairs."""

    name: str
    hardware_id: str
    level: Level
    message: str
    values: tuple[tuple[str, str], ...]


class SequenceGaps:
    """Messages that never reached a subscription callback, from each publisher's publication sequence numbers.

    A DDS writer numbers its samples 1, 2, 3, ...; a gap between two received numbers of one publisher is that
    many samples lost in transport or overwritten in the reader's queue. Samples before a publisher's first
    received one are not counted (nothing to compare them with). Memory: one entry per publisher ever seen.
    """

    def __init__(self) -> None:
        self._newest: dict[Hashable, int] = {}
        self._numbered = True
        self._missed = 0

    @property
    def missed(self) -> Optional[int]:
        """Messages missed so far; None once a message came without a sequence number (the middleware has none)."""
        return self._missed if self._numbered else None

    def restart(self) -> None:
        """Forget each publisher's newest number: what it sent while nobody listened (an inactive node) is not
        missed."""
        self._newest.clear()

    def observe(self, publisher: Hashable, sequence: Optional[int]) -> int:
        """Record a received message of ``publisher`` numbered ``sequence``; return how many it shows missed."""
        if sequence is None:
            self._numbered = False
            return 0
        newest = self._newest.get(publisher)
        if newest is not None and sequence <= newest:
            return 0  # a sample older than one already received: nothing new is missing
        self._newest[publisher] = sequence
        gap = 0 if newest is None else sequence - newest - 1
        self._missed += gap
        return gap


def gpu_memory(device: str) -> Optional[GpuMemory]:
    """The current CUDA device's memory (all processes), or None on the CPU."""
    if device != "cuda" or not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return GpuMemory(total - free, total, torch.cuda.memory_reserved())


def _rate(count: int, elapsed_s: float) -> str:
    return f"{count / elapsed_s:.2f}" if elapsed_s > 0 else "n/a"


def _judged(name: str, hardware_id: str, problems: list[tuple[Level, str]], summary: str, values) -> ComponentHealth:
    """The component at its worst problem's level, with every problem in the message (worst first), else OK."""
    if not problems:
        return ComponentHealth(name, hardware_id, Level.OK, summary, tuple(values))
    problems = sorted(problems, key=lambda problem: -problem[0])
    return ComponentHealth(name, hardware_id, problems[0][0], "; ".join(text for _, text in problems), tuple(values))


class HealthMonitor:
    """Turns the node's snapshots into component health (see the module docstring).

    ``period_s`` is the nominal time between snapshots (the diagnostics timer's). ``start`` is the node's counters
    when it started (zeros): the first baseline, so that what happens before the first update counts too, and a
    camera that never sent an image is quiet since then.
    """

    def __init__(self, thresholds: HealthThresholds, period_s: float, start: HealthSnapshot) -> None:
        if not (math.isfinite(period_s) and period_s > 0):
            raise ValueError(f"period_s must be a finite number of seconds > 0, got {period_s!r}")
        self._thresholds = thresholds
        self._period_s = period_s
        self._started_s = start.time_s
        self._history: deque[HealthSnapshot] = deque([start])
        # For the stall check: windows finished at the previous snapshot, and since when one has been waiting.
        self._finished_windows = start.windows_inferred + start.windows_failed
        self._waiting_since_s = start.time_s

    def update(self, snapshot: HealthSnapshot) -> list[ComponentHealth]:
        """Add the newest snapshot (time order: start a new monitor when the clock goes back) and judge every
        component over the window ending at it."""
        if len(snapshot.cameras) != len(self._history[0].cameras):
            raise ValueError(
                f"a snapshot with {len(snapshot.cameras)} cameras for a monitor started with "
                f"{len(self._history[0].cameras)}: start a new monitor when the cameras change"
            )
        self._history.append(snapshot)
        horizon = snapshot.time_s - self._thresholds.window_s
        # Keep the newest snapshot at or before the horizon: the baseline that makes the window whole.
        while len(self._history) > 1 and self._history[1].time_s <= horizon:
            self._history.popleft()
        finished = snapshot.windows_inferred + snapshot.windows_failed
        # A window whose publishing failed after inference counts twice: hence <= 0.
        waiting = snapshot.windows_emitted - snapshot.windows_dropped - finished
        if waiting <= 0 or finished != self._finished_windows:
            self._waiting_since_s = snapshot.time_s  # nothing waits, or a window just finished: a wait starts now
        self._finished_windows = finished
        oldest = self._history[0]
        return [
            *(
                self._camera(camera, old, snapshot.time_s, snapshot.time_s - oldest.time_s)
                for camera, old in zip(snapshot.cameras, oldest.cameras)
            ),
            self._pipeline(snapshot, oldest, snapshot.time_s - self._waiting_since_s),
            self._backend(snapshot),
            self._scale(snapshot.scale),
            *([self._loops(snapshot.loops)] if snapshot.loops is not None else []),
            *([self._robot(snapshot.robot)] if snapshot.robot is not None else []),
        ]

    def _camera(self, camera: CameraCounts, old: CameraCounts, now_s: float, elapsed_s: float) -> ComponentHealth:
        limits = self._thresholds
        received = camera.received - old.received
        lost = camera.lost_by_dds - old.lost_by_dds
        # DDS' losses are part of the sequence gaps once images arrive, but are the only count before they do.
        missed = max(lost, (camera.missed - old.missed) if camera.missed is not None else 0)
        # Quiet since the newest image, the latest activation or the start, whichever came last.
        since_s = max(t for t in (self._started_s, camera.listening_since_s, camera.last_image_s) if t is not None)
        quiet_s = now_s - since_s
        problems = []
        if camera.listening and quiet_s >= limits.input_timeout_s:
            problems.append((Level.WARN, f"no image for {quiet_s:.1f} s"))
        if missed and missed > limits.missed_warn_ratio * (received + missed):
            problems.append(
                (
                    Level.WARN,
                    f"{missed} of {received + missed} images missed in the last {elapsed_s:.0f} s "
                    f"({lost} of them lost by DDS)",
                )
            )
        dropped = camera.dropped - old.dropped
        if received and dropped >= received:
            problems.append(
                (
                    Level.ERROR,
                    f"every image of the last {elapsed_s:.0f} s dropped ({received}; the newest: {camera.last_drop}; "
                    "see the log)",
                )
            )
        elif dropped > limits.images_dropped_warn_ratio * received:
            problems.append(
                (
                    Level.WARN,
                    f"{dropped} of {received} images dropped in the last {elapsed_s:.0f} s (the newest: "
                    f"{camera.last_drop}; see the log)",
                )
            )
        if camera.clock_ahead_s is not None:
            problems.append(
                (Level.WARN, f"stamped {camera.clock_ahead_s:.3f} s ahead of this node's clock (see the log)")
            )
        last_age = f"{quiet_s:.2f}" if camera.last_image_s is not None else "n/a"
        values = [
            ("topic", camera.topic),
            ("rate (Hz)", _rate(received, elapsed_s)),
            ("images received", str(camera.received)),
            ("images missed", str(camera.missed) if camera.missed is not None else "n/a (no sequence numbers)"),
            ("images lost by DDS", str(camera.lost_by_dds)),
            ("images dropped", str(camera.dropped)),
            ("last image age (s)", last_age),
        ]
        if not camera.listening:
            summary = "not listening: the node is inactive"
        elif camera.received:
            summary = f"{_rate(received, elapsed_s)} images/s"
        else:
            summary = "waiting for the first image"
        return _judged(f"camera {camera.name}", camera.topic, problems, summary, values)

    def _pipeline(self, now: HealthSnapshot, old: HealthSnapshot, unfinished_s: float) -> ComponentHealth:
        """``unfinished_s``: how long a window handed to the worker has been waiting without any finishing."""
        limits = self._thresholds
        elapsed_s = now.time_s - old.time_s
        keyframes = now.keyframes - old.keyframes
        dropped = now.frame_sets_dropped - old.frame_sets_dropped
        rejected = now.windows_rejected - old.windows_rejected
        failed = now.windows_failed - old.windows_failed
        recent = [latency for at_s, latency in now.latencies if now.time_s - limits.window_s < at_s <= now.time_s]
        p50, p95 = np.percentile(recent, [50, 95]) if recent else (math.nan, math.nan)
        problems = []
        if failed:
            problems.append((Level.ERROR, f"{failed} windows failed in the last {elapsed_s:.0f} s (see the log)"))
        if unfinished_s > limits.latency_error_s:
            problems.append((Level.ERROR, f"no window finished for {unfinished_s:.1f} s although one is waiting"))
        if p95 > limits.latency_error_s:
            problems.append((Level.ERROR, f"latency p95 {p95:.3f} s is above {limits.latency_error_s} s"))
        elif p95 > limits.latency_warn_s:
            problems.append((Level.WARN, f"latency p95 {p95:.3f} s is above {limits.latency_warn_s} s"))
        elif p50 < 0:  # outputs published before their images were taken: a clock, not the pipeline, is off
            problems.append(
                (
                    Level.WARN,
                    f"latency p50 {p50:.3f} s is negative: the images are stamped ahead of this node's clock, so "
                    "the latency says nothing (synchronise the cameras' computer with this one, e.g. chrony or PTP)",
                )
            )
        if dropped and dropped > limits.dropped_warn_ratio * keyframes:
            problems.append(
                (
                    Level.WARN,
                    f"{dropped} of {keyframes} keyframes dropped in the last {elapsed_s:.0f} s: inference is slower "
                    "than the cameras (raise window_stride or keyframe_min_interval_s, or use a faster backend)",
                )
            )
        if rejected:
            problems.append(
                (Level.WARN, f"{rejected} windows rejected in the last {elapsed_s:.0f} s: {now.last_rejection}")
            )
        if now.segment > old.segment:
            problems.append((Level.WARN, f"tracking lost: segment {now.segment} started in the last {elapsed_s:.0f} s"))
        refused = now.frame_sets_refused - old.frame_sets_refused
        if refused:
            every = refused >= now.frame_sets - old.frame_sets
            problems.append(
                (
                    Level.ERROR if every else Level.WARN,
                    f"{'every frame set' if every else f'{refused} frame sets'} of the last {elapsed_s:.0f} s refused: "
                    f"{now.last_refusal}",
                )
            )
        unpaired_s = self._unpaired_s(now)
        if unpaired_s is not None:
            problems.append(
                (Level.WARN, f"images arrive but have formed no frame set for {unpaired_s:.1f} s (see the log)")
            )
        # Snapshots come once per period from the executor: a longer gap is the time it was busy elsewhere.
        times = [snapshot.time_s for snapshot in self._history]
        stall_s = max((b - a - self._period_s for a, b in zip(times, times[1:])), default=0.0)
        values = [
            ("keyframes/s", _rate(keyframes, elapsed_s)),
            ("windows/s", _rate(now.windows_inferred - old.windows_inferred, elapsed_s)),
            ("latency p50 (s)", f"{p50:.3f}" if recent else "n/a"),
            ("latency p95 (s)", f"{p95:.3f}" if recent else "n/a"),
            ("frame sets refused", str(now.frame_sets_refused)),
            ("frame sets dropped", str(now.frame_sets_dropped)),
            ("windows published", str(now.windows_published)),
            ("windows rejected", str(now.windows_rejected)),
            ("last rejection", now.last_rejection or "none"),
            ("windows failed", str(now.windows_failed)),
            ("tracking segment", str(now.segment)),
            ("longest executor stall (s)", f"{max(stall_s, 0.0):.3f}"),
        ]
        summary = (
            f"{_rate(now.windows_inferred - old.windows_inferred, elapsed_s)} windows/s, latency p95 {p95:.3f} s"
            if recent
            else f"{now.windows_published} windows published, none in the last {limits.window_s:.0f} s"
        )
        return _judged("pipeline", "", problems, summary, values)

    def _unpaired_s(self, now: HealthSnapshot) -> Optional[float]:
        """How long every camera has been sending images (each within the input timeout) without the images
        forming a frame set, when that is the input timeout or longer; else None. Quiet cameras are their own
        problem, and a node that is not listening pairs nothing."""
        timeout_s = self._thresholds.input_timeout_s
        if now.last_frame_set_s is None or not now.cameras:
            return None
        unpaired_s = now.time_s - now.last_frame_set_s
        sending = all(
            camera.listening and camera.last_image_s is not None and now.time_s - camera.last_image_s < timeout_s
            for camera in now.cameras
        )
        return unpaired_s if sending and unpaired_s >= timeout_s else None

    def _backend(self, now: HealthSnapshot) -> ComponentHealth:
        values = [("backend", now.backend), ("device", now.device), ("precision", now.precision)]
        summary = f"{now.backend} on {now.device}, {now.precision}"
        problems = []
        memory = now.gpu_memory
        if memory is not None:
            mib = 1 << 20
            values += [
                ("GPU memory used (MiB)", f"{memory.used_bytes / mib:.0f}"),
                ("GPU memory total (MiB)", f"{memory.total_bytes / mib:.0f}"),
                ("GPU memory reserved by torch (MiB)", f"{memory.torch_reserved_bytes / mib:.0f}"),
            ]
            used = memory.used_bytes / memory.total_bytes
            if used > self._thresholds.gpu_memory_warn_ratio:
                problems.append(
                    (
                        Level.WARN,
                        f"GPU memory {used:.0%} used (above {self._thresholds.gpu_memory_warn_ratio:.0%}): "
                        "a larger window may not fit (lower window_size or image_size, or free the GPU)",
                    )
                )
        return _judged("backend", now.device, problems, summary, values)

    @staticmethod
    def _loops(loops: LoopState) -> ComponentHealth:
        """Informational: rejected loops are the verification doing its job (look-alike places), not a fault."""
        values = [
            ("loop candidates", str(loops.candidates)),
            ("loops accepted", str(loops.accepted)),
            ("loops rejected", str(loops.rejected)),
            ("last rejection", loops.last_rejection or "none"),
            ("segments joined", str(loops.segments_joined)),
            ("loops dropped later", str(loops.dropped)),
            ("loops held for a join now", str(loops.held)),
            ("last optimisation (ms)", "n/a" if math.isnan(loops.optimise_ms) else f"{loops.optimise_ms:.1f}"),
        ]
        summary = f"{loops.accepted} loops closed, {loops.segments_joined} segments joined"
        return _judged("loop closure", "", [], summary, values)

    @staticmethod
    def _scale(scale: ScaleState) -> ComponentHealth:
        values = [
            ("source", scale.source),
            ("metric", "yes" if scale.metric else "no"),
            ("last problem", scale.problem or "none"),
            ("last note", scale.note or "none"),
        ]
        if scale.source == "depth":
            values.append(("newest depth image dropped", scale.depth_dropped or "no"))
        if scale.source == "none":
            return _judged("metric scale", "", [], "unit-less: VGGT's scale (metric_scale_source none)", values)
        problem = scale.problem
        if scale.problem_kind == "no_depth" and scale.depth_dropped:  # the cause behind "no depth reading"
            problem = f"{problem}; the depth images are dropped: {scale.depth_dropped}"
        problems = []
        if not scale.metric:
            waiting = f"waiting for the first metric scale from the {scale.source} source; nothing is published"
            problems.append((Level.WARN, f"{waiting} ({problem})" if problem else waiting))
        elif problem:
            problems.append((Level.WARN, f"the newest window measured no scale ({problem}): keeping the last"))
        if scale.metric and scale.off:
            problems.append(
                (
                    Level.WARN,
                    f"converging: the outputs' scale is {scale.off:+.1%} off the scale the source measured (a wrong "
                    "start or a jump being corrected a step per window)",
                )
            )
        return _judged("metric scale", "", problems, f"metric (metres) from the {scale.source} source", values)

    @staticmethod
    def _robot(robot: RobotState) -> ComponentHealth:
        values = [
            ("odom frame", robot.odom_frame),
            ("base frame", robot.base_frame),
            ("placed", "yes" if robot.placed else "no"),
            ("last problem", robot.problem or "none"),
        ]
        problems = []
        if not robot.placed and robot.problem:
            problems.append(
                (
                    Level.WARN if robot.awaits_metric else Level.ERROR,
                    f"the world is not placed in '{robot.odom_frame}' ({robot.problem}): nothing is published in the "
                    "robot's frames until it is"
                    + (", from the first metric window's camera pose" if robot.awaits_metric else ""),
                )
            )
        summary = f"world placed in '{robot.odom_frame}'" if robot.placed else "waiting for the world's first window"
        return _judged("robot frames", "", problems, summary, values)
