# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""What `LiveReconstruction` reports of loop closure: the log lines and the `/diagnostics` counters, for loop passes
and pose-graph answers given by a test double of the session."""

import dataclasses
import logging
from types import SimpleNamespace

import numpy as np

from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.live.reconstruction import LiveReconstruction
from vggt_ros.mapping import GrowingMap
from vggt_ros.world.loop_closure import LoopCounters, LoopResult
from vggt_ros.world.loop_constraint import LoopConstraint
from vggt_ros.world.loop_verification import LoopReport, VerificationCounters
from vggt_ros.world.pose_graph import OptimisationResult

LOG = "test.live_loops"


class SessionWithLoopsForTests:
    """Test double of `ReconstructionSession` for `LiveReconstruction.close_loops`: each window's loop pass rejects
    the given verification reasons, then the world answers the given `LoopResult`s."""

    def __init__(self, passes):
        self.config = SimpleNamespace(cameras=1, metric=SimpleNamespace(source="none"))
        self.map = GrowingMap()
        self.loop_verifier = SimpleNamespace(counters=VerificationCounters())
        self.world = SimpleNamespace(loops=SimpleNamespace(held=()), loop_counters=LoopCounters())
        self._passes = iter(passes)
        self._results = []

    def close_loops(self, out):
        rejections, self._results = next(self._passes)
        counters = self.loop_verifier.counters
        for reason in rejections:
            counters.rejections["match_inliers"] += 1
            counters.last_rejection = reason
        verified = LoopConstraint((2, 0), (1, 0), np.eye(4), 0.01, 0.9)
        return LoopReport(constraints=tuple(verified for _ in self._results))

    def apply_loops(self, report):
        for result in self._results:
            if not result.accepted and not result.held:
                self.world.loop_counters.rejected += 1
                self.world.loop_counters.last_rejection = result.reason
        return self._results

    def camera_path(self):
        return []

    def world_correction(self):
        return np.eye(4)


def _accepted(reason="loop a -> b", joined=False, dropped=()):
    solve = OptimisationResult(True, "", 3, 12.0, 1.0, 0.1, tuple(dropped))
    held = (LoopConstraint((1, 0), (0, 0), np.eye(4), 0.01, 0.9),) if joined else ()
    return LoopResult(True, "", reason, np.eye(4), joined, solve, np.eye(4), joined_with=held)


def _held(reason):
    return LoopResult(False, "held", reason, np.eye(4), False, None, np.eye(4), held=True)


def _rejected(reason):
    return LoopResult(False, "implausible", reason, np.eye(4), False, None, np.eye(4))


def _merged(sequence):
    window = SimpleNamespace(sequence=sequence, frame_sets=[SimpleNamespace(stamps_ns=(sequence,))], reset=False)
    return SimpleNamespace(merged=True, waiting_for_scale=False, window=window)


def test_the_last_rejection_is_the_newest_of_either_step(caplog):
    """/diagnostics showed the world's last rejection for good once there was one, even after 500 newer rejections
    by the verification (pass J)."""
    passes = [([], [_rejected("correction of 5.2 units")]), (["too few inliers (3 %)"], [])]
    live = LiveReconstruction(SessionWithLoopsForTests(passes), LogPolicy(logging.getLogger(LOG)), "w", 0, False)
    live.close_loops(_merged(0))
    assert live.loop_state().last_rejection == "correction of 5.2 units"
    live.close_loops(_merged(1))
    assert live.loop_state().last_rejection == "too few inliers (3 %)"


def test_a_join_and_a_dropped_loop_are_warnings_and_the_drops_are_counted(caplog):
    """A join of segments rests on the loops that agreed on it, with nothing else to bound it: it was an INFO line
    (pass J). A loop that makes the graph drop an earlier one said nothing of it. A held loop is no rejection: an
    INFO line with its reason, counted apart."""
    passes = [
        ([], [_held("loop a -> b would join segments 0 and 1 ...: held until 1 more loop(s) agree")]),
        ([], [_accepted(joined=True)]),
        ([], [_accepted("loop c -> d; dropped the earlier loop(s) a -> b: they disagree", dropped=("edge",))]),
        ([], [_accepted("loop e -> f")]),
    ]
    session = SessionWithLoopsForTests(passes)
    session.world.loop_counters.dropped = 1  # the world counts what its pose graph dropped
    session.world.loops.held = ("a loop held now",)
    live = LiveReconstruction(session, LogPolicy(logging.getLogger(LOG)), "w", 0, False)
    with caplog.at_level(logging.INFO, LOG):
        for sequence in range(4):
            live.close_loops(_merged(sequence))
    records = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert (logging.INFO, "loop a -> b would join segments 0 and 1 ...: held until 1 more loop(s) agree") in records
    assert not any("not closed" in message for _, message in records)
    lines = [(level, message) for level, message in records if "loop closed" in message]
    assert [level for level, _ in lines] == [logging.WARNING, logging.WARNING, logging.INFO]
    assert "segments joined" in lines[0][1] and "2 agreeing loop(s) placed the segment" in lines[0][1]
    assert lines[0][1].endswith("; loop a -> b")  # the world's reason names the loops that joined them
    assert "dropped the earlier loop(s) a -> b" in lines[1][1]
    state = live.loop_state()
    assert state.dropped == 1 and state.held == 1 and state.rejected == 0


def test_a_held_loop_dropped_unused_is_logged_and_is_the_last_rejection(caplog):
    """The world counted a held loop it dropped as rejected, yet nothing said so: no log line, and /diagnostics'
    last rejection kept an older reason (pass N)."""
    dropped = "held loop(s) a -> b dropped unused: its segments joined without it"
    joined = dataclasses.replace(_accepted(joined=True), dropped_held=(dropped,))
    live = LiveReconstruction(
        SessionWithLoopsForTests([([], [joined])]), LogPolicy(logging.getLogger(LOG)), "w", 0, False
    )
    with caplog.at_level(logging.INFO, LOG):
        live.close_loops(_merged(0))
    records = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert records[-1] == (logging.INFO, dropped)  # after the join's line, which names the loops that joined
    assert records[-2][0] == logging.WARNING and "segments joined" in records[-2][1]
    assert live.loop_state().last_rejection == dropped


def test_a_rejected_loop_stays_the_last_rejection_over_the_held_loops_it_dropped():
    """The world drops held loops before it rejects the loop at hand: the loop is the newer news, as the world's own
    last rejection says (pass P: /diagnostics showed the dropped held loop)."""
    dropped = "held loop(s) a -> b dropped unused: the solve found it off the loops that agreed with it"
    rejected = dataclasses.replace(
        _rejected("the loops that agreed to join the segments: ..."), dropped_held=(dropped,)
    )
    live = LiveReconstruction(
        SessionWithLoopsForTests([([], [rejected])]), LogPolicy(logging.getLogger(LOG)), "w", 0, False
    )
    live.close_loops(_merged(0))
    assert live.loop_state().last_rejection == "the loops that agreed to join the segments: ..."
