# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""What `LiveReconstruction` reports of a window's metric scale: the log lines and the `/diagnostics` counters, for
scale measurements given by a test double of the session."""

import logging
from types import SimpleNamespace

import pytest

from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.live.reconstruction import LiveReconstruction
from vggt_ros.mapping import GrowingMap
from vggt_ros.metric.scale_filter import MetricScaleFilter
from vggt_ros.metric.sources import ScaleObservation
from vggt_ros.session import WindowOutput
from vggt_ros.world import WindowStatus

FALLBACK = "no frame set of the rig aligned along its baseline (2 camera pairs: ...)"


class SessionWithScaleForTests:
    """Test double of `ReconstructionSession`: every window merges, measuring the next of ``scales``."""

    def __init__(self, scales, scale_filter=None):
        self.config = SimpleNamespace(cameras=2, metric=SimpleNamespace(source="rig"))
        self.map = GrowingMap()
        self.world = SimpleNamespace(scale_filter=scale_filter or MetricScaleFilter())
        self._scales = iter(scales)

    def infer(self, window, depth_lookup):
        return window

    def integrate(self, window):
        scale = next(self._scales)
        return WindowOutput(window, WindowStatus.MERGED, "", None, [], None, False, (), {}, {}, scale, True)


def _window(sequence):
    return SimpleNamespace(sequence=sequence, frame_sets=[SimpleNamespace(stamps_ns=(sequence * 10**9,))], reset=False)


def test_a_rig_scale_that_rests_on_the_camera_offsets_is_logged_and_shown(caplog):
    """The rig's images did not align, so the window's scale rests on the predicted camera offsets, several times
    less precise: this was silent. It is a warning (at most every 5 s while it lasts) and `/diagnostics`' last note,
    cleared by the next window whose images aligned."""
    aligned = ScaleObservation(0.5, 0.005, 4000, "rig")
    offsets = ScaleObservation(0.52, 0.06, 4, "rig", FALLBACK)
    live = LiveReconstruction(
        SessionWithScaleForTests([aligned, offsets, offsets, aligned]),
        LogPolicy(logging.getLogger("test.live_reports")),
        "vggt_world",
        0,
        False,
    )
    notes = []
    with caplog.at_level(logging.WARNING, "test.live_reports"):
        for sequence in range(4):
            live.process(_window(sequence), None)
            notes.append(live.counters.last_scale_note)
    assert notes == ["", FALLBACK, FALLBACK, ""]
    assert [record.getMessage() for record in caplog.records] == [f"window 1: metric scale {FALLBACK}"]


def test_outputs_converging_to_the_measured_scale_say_how_far_off_they_are():
    """After a wrong start restarts the scale filter, the world is moved a step (1 %) per window towards its
    estimate: the outputs were 25 % off while /diagnostics said OK. The counters give the gap beyond one step."""
    observation = ScaleObservation(0.8, 0.005, 4000, "rig")
    for estimate, off in ((0.8, 0.25), (1.005, 0.0), (1.25, -0.2)):
        scale_filter = MetricScaleFilter()
        scale_filter.update(estimate, 0.005)  # the estimate, in metres per unit of the world as it is
        live = LiveReconstruction(
            SessionWithScaleForTests([observation], scale_filter), LogPolicy(logging.getLogger("test")), "w", 0, False
        )
        live.process(_window(0), None)
        assert live.counters.scale_off == pytest.approx(off), estimate
