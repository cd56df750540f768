# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""vggt_ros.live.health without ROS: rates over the window, latency percentiles, every threshold's level and
message, the stall check, and the publication-sequence gap count."""

import dataclasses

import pytest

from vggt_ros.live.health import (
    CameraCounts,
    GpuMemory,
    HealthMonitor,
    HealthSnapshot,
    HealthThresholds,
    Level,
    RobotState,
    ScaleState,
    SequenceGaps,
)

THRESHOLDS = HealthThresholds(window_s=5.0, input_timeout_s=3.0, latency_warn_s=1.0, latency_error_s=4.0)
PERIOD_S = 1.0


def camera(name: str = "left", received: int = 0, missed=0, lost: int = 0, last_image_s=None) -> CameraCounts:
    return CameraCounts(name, f"/{name}/image", received, missed, lost, last_image_s)


def snapshot(time_s: float, **changes) -> HealthSnapshot:
    """A node that has done nothing yet, at ``time_s``, with ``changes`` applied."""
    base = HealthSnapshot(
        time_s=time_s,
        cameras=(camera(),),
        keyframes=0,
        frame_sets_dropped=0,
        windows_emitted=0,
        windows_dropped=0,
        windows_inferred=0,
        windows_published=0,
        windows_rejected=0,
        windows_failed=0,
        last_rejection="",
        segment=0,
        latencies=(),
        backend="torch",
        device="cpu",
        precision="fp32",
        gpu_memory=None,
        scale=ScaleState("none", False, ""),
    )
    return dataclasses.replace(base, **changes)


def by_name(components) -> dict:
    return {component.name: component for component in components}


def values(component) -> dict[str, str]:
    return dict(component.values)


# --------------------------------------------------------------------------------------------- thresholds
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"window_s": 0.0}, "window_s must be a finite number of seconds > 0"),
        ({"input_timeout_s": float("inf")}, "input_timeout_s must be a finite number of seconds > 0"),
        ({"latency_warn_s": 2.0, "latency_error_s": 2.0}, "must be above the warning threshold"),
        ({"dropped_warn_ratio": 1.5}, "dropped_warn_ratio must be a fraction in [0, 1]"),
        ({"missed_warn_ratio": -0.1}, "missed_warn_ratio must be a fraction in [0, 1]"),
        ({"images_dropped_warn_ratio": 2.0}, "images_dropped_warn_ratio must be a fraction in [0, 1]"),
        ({"gpu_memory_warn_ratio": float("nan")}, "gpu_memory_warn_ratio must be a fraction in [0, 1]"),
    ],
)
def test_thresholds_are_checked_with_what_is_wrong(changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        HealthThresholds(**changes)


def test_monitor_period_must_be_positive():
    with pytest.raises(ValueError, match="period_s must be a finite number of seconds > 0"):
        HealthMonitor(THRESHOLDS, 0.0, snapshot(0.0))


# ------------------------------------------------------------------------------------------ sequence gaps
def test_sequence_gaps_count_the_numbers_skipped_per_publisher():
    gaps = SequenceGaps()
    assert gaps.observe("a", 1) == 0 and gaps.missed == 0
    assert gaps.observe("a", 2) == 0
    assert gaps.observe("a", 5) == 2  # 3 and 4 never arrived
    assert gaps.observe("b", 40) == 0, "a publisher's first message has nothing before it to compare with"
    assert gaps.observe("b", 42) == 1
    assert gaps.observe("a", 4) == 0, "an older message than one already received shows nothing new missing"
    assert gaps.observe("a", 6) == 0
    assert gaps.missed == 3


def test_sequence_gaps_without_sequence_numbers_say_they_cannot_count():
    gaps = SequenceGaps()
    gaps.observe("a", 1)
    gaps.observe("a", 3)
    assert gaps.observe("a", None) == 0
    assert gaps.missed is None


# ----------------------------------------------------------------------------------------------- cameras
def test_rates_are_per_second_over_the_window():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0, cameras=(camera("left"), camera("right"))))
    for t in range(1, 9):
        # left at 10 Hz, right at 4 Hz; 3 keyframes and 1 window per second
        report = monitor.update(
            snapshot(
                float(t),
                cameras=(camera("left", 10 * t, last_image_s=t), camera("right", 4 * t, last_image_s=t)),
                keyframes=3 * t,
                windows_emitted=t,
                windows_inferred=t,
            )
        )
    components = by_name(report)
    assert values(components["camera left"])["rate (Hz)"] == "10.00"
    assert values(components["camera right"])["rate (Hz)"] == "4.00"
    assert values(components["camera left"])["images received"] == "80"
    assert values(components["pipeline"])["keyframes/s"] == "3.00"
    assert values(components["pipeline"])["windows/s"] == "1.00"
    assert all(component.level is Level.OK for component in report), [c.message for c in report]


def test_rates_cover_only_the_window():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    # 100 images in the first second, then 1 per second: the window (5 s) sees only the slow part
    counts = [0, 100, 101, 102, 103, 104, 105, 106, 107]
    for t, count in enumerate(counts):
        report = monitor.update(snapshot(float(t), cameras=(camera(received=count, last_image_s=t),)))
    assert values(by_name(report)["camera left"])["rate (Hz)"] == "1.00"


def test_the_start_is_the_first_baseline():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(10.0, cameras=(camera("left"), camera("right"))))
    # Before the first update (at 12 s) left sent 6 images and a window was rejected; right sent nothing.
    report = by_name(
        monitor.update(
            snapshot(
                12.0,
                cameras=(camera("left", 6, last_image_s=11.9), camera("right")),
                windows_emitted=1,
                windows_inferred=1,
                windows_rejected=1,
                last_rejection="x",
            )
        )
    )
    assert values(report["camera left"])["rate (Hz)"] == "3.00" and report["camera left"].message == "3.00 images/s"
    assert report["camera right"].message == "waiting for the first image"
    assert (
        report["pipeline"].level is Level.WARN and report["pipeline"].message == "1 windows rejected in the last 2 s: x"
    )


def test_a_camera_quiet_for_the_input_timeout_is_warn():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0, cameras=(camera("left"), camera("right"))))
    monitor.update(snapshot(5.0, cameras=(camera("left", 50, last_image_s=5.0), camera("right"))))
    report = by_name(monitor.update(snapshot(7.5, cameras=(camera("left", 50, last_image_s=5.0), camera("right")))))
    left, right = report["camera left"], report["camera right"]
    assert left.level is Level.OK, "quiet for 2.5 s, below the 3 s timeout"
    assert right.level is Level.WARN and right.message == "no image for 7.5 s", "never sent: quiet since the start"
    assert values(right)["last image age (s)"] == "n/a"
    later = by_name(monitor.update(snapshot(8.5, cameras=(camera("left", 50, last_image_s=5.0), camera("right")))))
    assert later["camera left"].level is Level.WARN and later["camera left"].message == "no image for 3.5 s"
    assert values(later["camera left"])["last image age (s)"] == "3.50"
    assert later["camera left"].hardware_id == "/left/image"


def test_a_camera_whose_clock_runs_ahead_is_warn():
    """Its outputs were stamped 30 s in the future while /diagnostics said OK (with a negative latency)."""
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    ahead = dataclasses.replace(camera(received=30, last_image_s=1.0), clock_ahead_s=30.0)
    report = by_name(monitor.update(snapshot(1.0, cameras=(ahead,))))
    assert report["camera left"].level is Level.WARN
    assert report["camera left"].message == "stamped 30.000 s ahead of this node's clock (see the log)"
    synced = by_name(monitor.update(snapshot(2.0, cameras=(camera(received=60, last_image_s=2.0),))))
    assert synced["camera left"].level is Level.OK


def test_missed_images_above_the_ratio_are_warn():
    thresholds = dataclasses.replace(THRESHOLDS, missed_warn_ratio=0.1)
    monitor = HealthMonitor(thresholds, PERIOD_S, snapshot(0.0))
    # 90 received, 10 missed (4 of them reported by DDS): 10 of 100 is not above 10 %
    ok = by_name(monitor.update(snapshot(1.0, cameras=(camera(received=90, missed=10, lost=4, last_image_s=1.0),))))
    assert ok["camera left"].level is Level.OK
    assert values(ok["camera left"])["images missed"] == "10"
    assert values(ok["camera left"])["images lost by DDS"] == "4"
    # 1 more missed: 11 of 101
    warn = by_name(monitor.update(snapshot(2.0, cameras=(camera(received=90, missed=11, lost=4, last_image_s=2.0),))))
    assert warn["camera left"].level is Level.WARN
    assert warn["camera left"].message == "11 of 101 images missed in the last 2 s (4 of them lost by DDS)"


def test_images_lost_by_dds_count_even_when_none_arrives():
    monitor = HealthMonitor(dataclasses.replace(THRESHOLDS, input_timeout_s=10.0), PERIOD_S, snapshot(0.0))
    monitor.update(snapshot(1.0))
    report = by_name(monitor.update(snapshot(2.0, cameras=(camera(lost=12),))))
    assert report["camera left"].level is Level.WARN
    assert report["camera left"].message == "12 of 12 images missed in the last 2 s (12 of them lost by DDS)"


def test_images_that_arrive_but_are_dropped_are_warn_and_all_of_them_error():
    """Images that reach the node but are dropped (an unsupported encoding, a repeated stamp) left the camera OK at
    its full rate while nothing was published."""
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))

    def dropped(time_s: float, received: int, count: int, why: str) -> dict:
        counts = dataclasses.replace(camera(received=received, last_image_s=time_s), dropped=count, last_drop=why)
        return by_name(monitor.update(snapshot(time_s, cameras=(counts,))))["camera left"]

    ok = dropped(1.0, 10, 1, "late stamp")  # 1 of 10 is not above 10 %
    assert ok.level is Level.OK and values(ok)["images dropped"] == "1"
    warn = dropped(2.0, 20, 3, "duplicate stamp")
    assert warn.level is Level.WARN
    assert warn.message == "3 of 20 images dropped in the last 2 s (the newest: duplicate stamp; see the log)"
    # from here on every image is dropped; the window (5 s) still holds the first good ones until it passes them
    for t in range(3, 9):
        error = dropped(float(t), 20 + 10 * (t - 2), 3 + 10 * (t - 2), "image encoding (rgb16)")
    assert error.level is Level.ERROR
    assert error.message == "every image of the last 5 s dropped (50; the newest: image encoding (rgb16); see the log)"


def test_frame_sets_the_session_refuses_are_warn_and_all_of_them_error():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    why = "the cameras' images have different resolutions"
    some = by_name(monitor.update(snapshot(1.0, frame_sets=10, frame_sets_refused=2, last_refusal=why)))
    assert some["pipeline"].level is Level.WARN
    assert some["pipeline"].message == f"2 frame sets of the last 1 s refused: {why}"
    assert values(some["pipeline"])["frame sets refused"] == "2"
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    every = by_name(monitor.update(snapshot(1.0, frame_sets=10, frame_sets_refused=10, last_refusal=why)))
    assert every["pipeline"].level is Level.ERROR
    assert every["pipeline"].message == f"every frame set of the last 1 s refused: {why}"


def test_cameras_that_send_but_never_pair_are_warn_until_one_goes_quiet():
    """Unsynchronised cameras: each OK at its rate, and nothing formed a frame set."""
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0, cameras=(camera("left"), camera("right"))))

    def pipeline(time_s: float, right_last_s: float):
        cameras = (camera("left", 10, last_image_s=time_s), camera("right", 10, last_image_s=right_last_s))
        return by_name(monitor.update(snapshot(time_s, cameras=cameras, last_frame_set_s=0.5)))["pipeline"]

    assert pipeline(3.0, 3.0).level is Level.OK  # 2.5 s without a frame set: within the input timeout (3 s)
    unpaired = pipeline(4.0, 4.0)
    assert unpaired.level is Level.WARN
    assert unpaired.message == "images arrive but have formed no frame set for 3.5 s (see the log)"
    assert pipeline(8.0, 4.5).level is Level.OK  # the right camera quiet: its own problem, not the pairing's


def test_without_sequence_numbers_missed_says_so():
    report = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(snapshot(1.0, cameras=(camera(missed=None),)))
    assert values(by_name(report)["camera left"])["images missed"] == "n/a (no sequence numbers)"


# ---------------------------------------------------------------------------------------------- pipeline
def test_latency_percentiles_cover_the_window_and_set_the_level():
    # 20 publications in the window with latencies 0.1 .. 2.0 s, one older than the window at 100 s.
    # Percentiles by linear interpolation between order statistics: rank 0.5 * 19 = 9.5 -> (1.0 + 1.1) / 2 = 1.05;
    # rank 0.95 * 19 = 18.05 -> 1.9 + 0.05 * 0.1 = 1.905.
    latencies = ((1.0, 100.0),) + tuple((10.0 + 0.1 * i, 0.1 * (i + 1)) for i in range(20))
    report = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(snapshot(12.0, latencies=latencies))
    pipeline = by_name(report)["pipeline"]
    assert values(pipeline)["latency p50 (s)"] == "1.050"
    assert values(pipeline)["latency p95 (s)"] == "1.905"
    assert pipeline.level is Level.WARN and pipeline.message == "latency p95 1.905 s is above 1.0 s"
    strict = HealthMonitor(
        dataclasses.replace(THRESHOLDS, latency_warn_s=0.5, latency_error_s=1.5), PERIOD_S, snapshot(0.0)
    )
    pipeline = by_name(strict.update(snapshot(12.0, latencies=latencies)))["pipeline"]
    assert pipeline.level is Level.ERROR and pipeline.message == "latency p95 1.905 s is above 1.5 s"


def test_a_negative_latency_is_warn_naming_the_clock():
    """A camera stamping 2 s ahead: latency p95 -1.891 s, and the pipeline OK."""
    latencies = tuple((10.0 + 0.1 * i, -1.9 + 0.01 * i) for i in range(10))
    pipeline = by_name(HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(snapshot(12.0, latencies=latencies)))[
        "pipeline"
    ]
    assert pipeline.level is Level.WARN
    assert pipeline.message.startswith("latency p50 -1.855 s is negative: the images are stamped ahead of this node's")


def test_without_publications_in_the_window_latency_is_not_available():
    pipeline = by_name(
        HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(snapshot(20.0, latencies=((1.0, 9.0),)))
    )["pipeline"]
    assert values(pipeline)["latency p50 (s)"] == "n/a" and values(pipeline)["latency p95 (s)"] == "n/a"
    assert pipeline.level is Level.OK


def test_dropped_keyframes_above_the_ratio_are_warn():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    monitor.update(snapshot(1.0))
    half = by_name(monitor.update(snapshot(2.0, keyframes=10, frame_sets_dropped=5)))["pipeline"]
    assert half.level is Level.OK, "5 of 10 is not above the 0.5 default"
    more = by_name(monitor.update(snapshot(3.0, keyframes=10, frame_sets_dropped=6)))["pipeline"]
    assert more.level is Level.WARN
    assert more.message.startswith("6 of 10 keyframes dropped in the last 3 s: inference is slower than the cameras")
    assert values(more)["frame sets dropped"] == "6"


def test_rejected_windows_and_a_new_segment_are_warn_with_the_last_reason():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    monitor.update(snapshot(1.0, windows_emitted=3, windows_inferred=3, windows_published=3))
    report = monitor.update(
        snapshot(
            2.0,
            windows_emitted=6,
            windows_inferred=6,
            windows_published=4,
            windows_rejected=2,
            last_rejection="too few inliers (12 %)",
            segment=1,
        )
    )
    pipeline = by_name(report)["pipeline"]
    assert pipeline.level is Level.WARN
    assert pipeline.message == (
        "2 windows rejected in the last 2 s: too few inliers (12 %); tracking lost: segment 1 started in the last 2 s"
    )
    assert values(pipeline)["last rejection"] == "too few inliers (12 %)"
    assert values(pipeline)["tracking segment"] == "1"
    assert values(pipeline)["windows published"] == "4" and values(pipeline)["windows rejected"] == "2"


def test_a_reset_back_to_segment_zero_is_no_tracking_loss():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    monitor.update(snapshot(1.0, segment=2))
    assert by_name(monitor.update(snapshot(2.0, segment=0)))["pipeline"].level is Level.OK


def test_failed_windows_are_error_and_listed_before_warnings():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    monitor.update(snapshot(1.0))
    report = monitor.update(
        snapshot(2.0, windows_emitted=2, windows_failed=1, windows_inferred=1, windows_rejected=1, last_rejection="x")
    )
    pipeline = by_name(report)["pipeline"]
    assert pipeline.level is Level.ERROR
    assert pipeline.message == "1 windows failed in the last 2 s (see the log); 1 windows rejected in the last 2 s: x"


def test_a_window_waiting_longer_than_the_error_latency_is_error():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    # Idle for 10 s: nothing waits, so nothing is stalled.
    for t in range(1, 11):
        assert by_name(monitor.update(snapshot(float(t))))["pipeline"].level is Level.OK
    # A window is handed over at 10..11 s and never finishes; the error threshold is 4 s.
    for t in range(11, 15):
        report = monitor.update(snapshot(float(t), windows_emitted=1))
        assert by_name(report)["pipeline"].level is Level.OK, t
    stalled = by_name(monitor.update(snapshot(15.5, windows_emitted=1)))["pipeline"]
    assert stalled.level is Level.ERROR
    assert stalled.message == "no window finished for 5.5 s although one is waiting"
    # It finishes and the next one is already waiting: a new wait starts.
    assert by_name(monitor.update(snapshot(16.0, windows_emitted=2, windows_inferred=1)))["pipeline"].level is Level.OK


def test_a_late_snapshot_shows_the_longest_executor_stall():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    for t in (1.0, 2.0, 5.5, 6.5):
        report = monitor.update(snapshot(t))
    assert values(by_name(report)["pipeline"])["longest executor stall (s)"] == "2.500"
    for t in (7.5, 8.5, 9.5, 10.5, 11.5):  # the stall leaves the window
        report = monitor.update(snapshot(t))
    assert values(by_name(report)["pipeline"])["longest executor stall (s)"] == "0.000"


# ------------------------------------------------------------------------------------ backend and scale
def test_backend_reports_gpu_memory_and_warns_above_the_ratio():
    mib = 1 << 20
    cpu = by_name(HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(snapshot(1.0)))["backend"]
    assert values(cpu) == {"backend": "torch", "device": "cpu", "precision": "fp32"}
    assert cpu.level is Level.OK and cpu.message == "torch on cpu, fp32"
    memory = GpuMemory(used_bytes=9000 * mib, total_bytes=10000 * mib, torch_reserved_bytes=8000 * mib)
    cuda = snapshot(1.0, device="cuda", precision="fp16", backend="tensorrt", gpu_memory=memory)
    backend = by_name(HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(cuda))["backend"]
    assert values(backend)["GPU memory used (MiB)"] == "9000"
    assert values(backend)["GPU memory total (MiB)"] == "10000"
    assert values(backend)["GPU memory reserved by torch (MiB)"] == "8000"
    assert backend.level is Level.OK, "90 % is not above 90 %"
    fuller = dataclasses.replace(cuda, gpu_memory=dataclasses.replace(memory, used_bytes=9500 * mib))
    backend = by_name(HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(fuller))["backend"]
    assert backend.level is Level.WARN and backend.message.startswith("GPU memory 95% used (above 90%)")
    assert backend.hardware_id == "cuda"


@pytest.mark.parametrize(
    "scale, level, message",
    [
        (ScaleState("none", False, ""), Level.OK, "unit-less: VGGT's scale (metric_scale_source none)"),
        (ScaleState("depth", True, ""), Level.OK, "metric (metres) from the depth source"),
        (
            ScaleState("depth", False, ""),
            Level.WARN,
            "waiting for the first metric scale from the depth source; nothing is published",
        ),
        (
            ScaleState("rig", False, "camera 1's frame is not on /tf_static"),
            Level.WARN,
            "waiting for the first metric scale from the rig source; nothing is published (camera 1's frame is not "
            "on /tf_static)",
        ),
        (
            ScaleState("rig", True, "", "no frame set of the rig aligned along its baseline"),
            Level.OK,
            "metric (metres) from the rig source",
        ),
        (
            ScaleState("odometry", True, "the cameras moved 0.02 m"),
            Level.WARN,
            "the newest window measured no scale (the cameras moved 0.02 m): keeping the last",
        ),
        (
            # After a wrong start restarted the filter, the world converges 1 % per window: said while it lasts (it
            # was OK, "metric (metres)", with the outputs 25 % too large).
            ScaleState("depth", True, "", "", 0.25),
            Level.WARN,
            "converging: the outputs' scale is +25.0% off the scale the source measured (a wrong start or a jump "
            "being corrected a step per window)",
        ),
    ],
)
def test_metric_scale_state(scale, level, message):
    component = by_name(HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(snapshot(1.0, scale=scale)))[
        "metric scale"
    ]
    assert (component.level, component.message) == (level, message)
    assert values(component) == {
        "source": scale.source,
        "metric": "yes" if scale.metric else "no",
        "last problem": scale.problem or "none",
        "last note": scale.note or "none",
        **({"newest depth image dropped": "no"} if scale.source == "depth" else {}),
    }


def test_depth_images_dropped_are_named_as_the_cause_of_no_depth_reading():
    """Depth in a colour encoding: the log said so once, and /diagnostics gave the generic "no depth image matched
    them ... or every reading was 0 or NaN"."""
    dropped = "depth of camera 'camera0': unsupported depth encoding 'rgb8'; publish one of 16UC1, mono16, 32FC1"
    scale = ScaleState("depth", False, "no depth reading for the window's frames", depth_dropped=dropped)
    no_depth = dataclasses.replace(scale, problem_kind="no_depth")
    component = by_name(HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(snapshot(1.0, scale=no_depth)))[
        "metric scale"
    ]
    assert component.level is Level.WARN
    assert component.message.endswith(
        f"(no depth reading for the window's frames; the depth images are dropped: {dropped})"
    )
    assert values(component)["newest depth image dropped"] == dropped
    # Another problem (another camera's depth disagreeing, say) is not blamed on the dropped images.
    other = dataclasses.replace(scale, problem="the cameras' depth scales disagree", problem_kind="disagree")
    component = by_name(HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(snapshot(1.0, scale=other)))[
        "metric scale"
    ]
    assert "dropped" not in component.message and values(component)["newest depth image dropped"] == dropped


@pytest.mark.parametrize(
    ("robot", "level", "message"),
    [
        (RobotState("odom", "base_link", True, ""), Level.OK, "world placed in 'odom'"),
        (RobotState("odom", "base_link", False, ""), Level.OK, "waiting for the world's first window"),
        (
            RobotState("odom", "base_link", False, "no transform from 'base_link' to 'camera'"),
            Level.ERROR,
            "the world is not placed in 'odom' (no transform from 'base_link' to 'camera'): nothing is published in "
            "the robot's frames until it is",
        ),
        (
            RobotState("odom", "base_link", False, "extrapolation into the past", awaits_metric=True),
            Level.WARN,
            "the world is not placed in 'odom' (extrapolation into the past): nothing is published in the robot's "
            "frames until it is, from the first metric window's camera pose",
        ),
    ],
)
def test_robot_frames_state(robot, level, message):
    """A world the transforms cannot place publishes nothing in the robot's frames: /diagnostics said OK."""
    components = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(snapshot(1.0, robot=robot))
    component = by_name(components)["robot frames"]
    assert (component.level, component.message) == (level, message)
    assert values(component)["placed"] == ("yes" if robot.placed else "no")
    assert "robot frames" not in by_name(HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0)).update(snapshot(1.0)))


def test_one_status_per_camera_then_pipeline_backend_and_scale():
    cameras = (camera("left"), camera("right"))
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0, cameras=cameras))
    names = [component.name for component in monitor.update(snapshot(1.0, cameras=cameras))]
    assert names == ["camera left", "camera right", "pipeline", "backend", "metric scale"]


def test_a_snapshot_with_other_cameras_is_refused():
    monitor = HealthMonitor(THRESHOLDS, PERIOD_S, snapshot(0.0))
    with pytest.raises(ValueError, match="a snapshot with 2 cameras for a monitor started with 1"):
        monitor.update(snapshot(1.0, cameras=(camera("left"), camera("right"))))
