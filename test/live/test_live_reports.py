# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""What `LiveReconstruction` reports of a window's metric scale: the log lines and the `/diagnostics` counters, for
scale measurements given by a test double of the session."""

import logging
from types import SimpleNamespace

from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.live.reconstruction import LiveReconstruction
from vggt_ros.mapping import GrowingMap
from vggt_ros.metric.sources import ScaleObservation
from vggt_ros.session import WindowOutput
from vggt_ros.world import WindowStatus

FALLBACK = "no frame set of the rig aligned along its baseline (2 camera pairs: ...)"


class SessionWithScaleForTests:
    """Test double of `ReconstructionSession`: every window merges, measuring the next of ``scales``."""

    def __init__(self, scales):
        self.config = SimpleNamespace(cameras=2, metric=SimpleNamespace(source="rig"))
        self.map = GrowingMap()
        self._scales = iter(scales)

    def infer(self, window, depth_lookup):
        return window

    def integrate(self, window):
        scale = next(self._scales)
        return WindowOutput(window, WindowStatus.MERGED, "", None, [], None, False, (), {}, {}, scale, True)


def _window(sequence):
    return SimpleNamespace(sequence=sequence, frame_sets=[SimpleNamespace(stamps_ns=(sequence * 10**9,))])


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
