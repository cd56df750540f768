# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Per-camera image stamps as real drivers produce them: zero stamps, repeated stamps, small reordering, and a
real jump back (a bag loop, a restarted driver). No ROS here: the node asks `CameraStamps.check` per image.

* A zero stamp is unset (ROS): it cannot order or pair images, so the image takes the camera's clock at its
  arrival: its arrival time plus the camera's lead (stamp - arrival of its newest image, or where it has none yet
  the lead given for it, else 0), never below 0; the node says so once per camera. A driver that never stamps keeps
  a lead of 0: each image takes its arrival time. A camera that stamps in another clock than the arrival's (a
  simulation's time recorded in wall-clock log times, a boot clock) keeps its unset images in its own clock: taken
  as the arrival time, its next image would lie a clock's difference before it, be dropped as stale, and the one
  after it would start the reconstruction over. A recording knows a camera's lead before its first image (from its
  first stamped one): a simulation's first image stamped 0.0 (unset, or its clock's start) then takes 0.0 again.
* A repeated stamp is the same capture sent again: the image is dropped (the session identifies frames by
  stamp, so keeping it would give two frames one id).
* A stamp up to ``reorder_tolerance_s`` before the camera's newest is late (network or driver reordering): the
  image is dropped, the world is kept.
* A stamp further back is stale: the image is dropped and held as the candidate of a jump back in time. The
  camera's next images tell: one after the candidate and itself further back than ``reorder_tolerance_s`` confirms
  that time went back (a bag loop, a restarted driver) and the node starts over from it; one after the newest was a
  lone stale image (a resent or long-delayed frame), which costs nothing else. Repeats of the newest or of the
  candidate are duplicates, and slightly late images late, as without a candidate. A restart costs one image; a
  lone stale image used to cost the whole reconstruction.
* A stamp that ran ahead of its arrival time by more than ``max_gap_s`` beyond what the camera's newest images
  let expect (its lead, stamp - arrival, plus the lead's trend: the smaller of its last two changes where both
  grow it, else none, so that one late delivery sets no trend, and late deliveries in a row, as a paused and
  stepped bag gives, no shrinking one that an image on time would then exceed) is ahead: the image is dropped and
  held as the candidate of a jump forward, by the same rule. A camera that paused, sends an image a minute, or is
  played faster than real time keeps its lead or its trend, and is taken at once. The camera's next image tells:
  one after the candidate whose lead is nearer the candidate's than the expected one confirms that the camera's
  clock jumped, and the reconstruction goes on from it; one nearer the expected lead was a lone glitch (a stamp
  from a bad clock read), which costs nothing else. Taken as it came, a glitch far ahead made every later image
  stale, so the next two restarted the reconstruction, and its outputs stamped far ahead made tf2 listeners
  refuse every later transform.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Optional, Sequence

NANOSECONDS = 1_000_000_000


def ns_from_stamp(stamp) -> int:
    """A message header's stamp (``sec``, ``nanosec``: rclpy's or a bag reader's message) in nanoseconds."""
    return stamp.sec * NANOSECONDS + stamp.nanosec


class StampVerdict(str, enum.Enum):
    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    LATE = "late"
    STALE = "stale"  # far back: dropped, and a jump back if the camera's next image follows it
    JUMP_BACK = "jump_back"
    AHEAD = "ahead"  # far ahead: dropped, and a jump forward if the camera's next image follows it


@dataclass(frozen=True)
class StampCheck:
    """What to do with one image: the verdict, the stamp to use (ns; the camera's clock at its arrival for a zero
    stamp), whether it was substituted, and for an image ahead how far its lead over its arrival time jumped (ns)."""

    verdict: StampVerdict
    stamp_ns: int
    substituted: bool = False
    lead_jump_ns: int = 0


class CameraStamps:
    """The newest stamp of each of ``cameras`` cameras, and the rules of the module docstring (``max_gap_s``
    infinite: no stamp is ahead; ``leads_ns``: each camera's lead, stamp - arrival in ns, known before its first
    image, for its unset stamps until its first image is taken; empty: 0, the arrival time)."""

    def __init__(
        self, cameras: int, reorder_tolerance_s: float, max_gap_s: float = math.inf, leads_ns: Sequence[int] = ()
    ) -> None:
        if not (math.isfinite(reorder_tolerance_s) and reorder_tolerance_s >= 0):
            raise ValueError(
                f"reorder_tolerance_s must be a finite number of seconds >= 0, got {reorder_tolerance_s!r}"
            )
        if not max_gap_s > 0:
            raise ValueError(f"max_gap_s must be a positive number of seconds, got {max_gap_s!r}")
        if leads_ns and len(leads_ns) != cameras:
            raise ValueError(f"leads_ns must give one lead per camera ({cameras}), got {list(leads_ns)}")
        self._tolerance_ns = int(reorder_tolerance_s * 1e9)
        self._max_gap_ns = max_gap_s * 1e9
        self._newest: list[Optional[int]] = [None] * cameras
        # The newest image's stamp - arrival time: the camera's clock, which a reset leaves as it is.
        self._lead: list[int] = list(leads_ns) or [0] * cameras
        self._lead_changes: list[tuple[int, int]] = [(0, 0)] * cameras  # the lead's last two changes
        self._stale: list[Optional[int]] = [None] * cameras  # each camera's candidate of a jump back
        self._ahead: list[Optional[tuple[int, int]]] = [None] * cameras  # (stamp, lead) of a jump forward's candidate

    def newest(self, camera: int) -> Optional[int]:
        return self._newest[camera]

    def lead(self, camera: int) -> int:
        """``camera``'s clock: its newest image's stamp - arrival time (ns)."""
        return self._lead[camera]

    def reset(self) -> None:
        self._newest = [None] * len(self._newest)
        self._lead_changes = [(0, 0)] * len(self._lead_changes)
        self._stale = [None] * len(self._stale)
        self._ahead = [None] * len(self._ahead)

    def clock_at(self, camera: int, arrival_ns: int) -> int:
        """``camera``'s clock at ``arrival_ns`` (ns): the stamp that an image of it stamped 0 (unset) takes, and its
        depth images too, which share its clock."""
        return max(arrival_ns + self._lead[camera], 0)

    def check(self, camera: int, stamp_ns: int, arrival_ns: int) -> StampCheck:
        substituted = stamp_ns == 0
        if substituted:
            stamp_ns = self.clock_at(camera, arrival_ns)
        newest, candidate, ahead = self._newest[camera], self._stale[camera], self._ahead[camera]
        if ahead is not None and stamp_ns == ahead[0]:
            return StampCheck(StampVerdict.DUPLICATE, stamp_ns, substituted)
        if newest is not None and stamp_ns <= newest:
            if stamp_ns == newest or stamp_ns == candidate:
                return StampCheck(StampVerdict.DUPLICATE, stamp_ns, substituted)
            if newest - stamp_ns <= self._tolerance_ns:
                return StampCheck(StampVerdict.LATE, stamp_ns, substituted)
            if candidate is not None and candidate < stamp_ns:  # the camera's second image from the earlier time
                self._stale[camera] = None
                self._newest[camera] = stamp_ns
                self._lead[camera], self._lead_changes[camera] = stamp_ns - arrival_ns, (0, 0)
                return StampCheck(StampVerdict.JUMP_BACK, stamp_ns, substituted)
            self._stale[camera] = stamp_ns
            return StampCheck(StampVerdict.STALE, stamp_ns, substituted)
        lead = stamp_ns - arrival_ns
        expected = self._lead[camera] + _trend(*self._lead_changes[camera])
        continues_ahead = ahead is not None and stamp_ns > ahead[0] and abs(lead - ahead[1]) < abs(lead - expected)
        if newest is not None and lead - expected > self._max_gap_ns and not continues_ahead:
            self._ahead[camera] = (stamp_ns, lead)
            return StampCheck(StampVerdict.AHEAD, stamp_ns, substituted, lead - expected)
        # A confirmed jump's change is counted from the candidate's lead: the jump itself is no trend.
        previous = ahead[1] if continues_ahead else self._lead[camera]
        change = 0 if newest is None else lead - previous
        self._lead_changes[camera] = (self._lead_changes[camera][1], change)
        self._stale[camera] = None
        self._ahead[camera] = None
        self._newest[camera] = stamp_ns
        self._lead[camera] = lead
        return StampCheck(StampVerdict.ACCEPT, stamp_ns, substituted)


def _trend(before: int, last: int) -> int:
    """The lead's trend from its last two changes: the smaller where both grow it (a camera played faster than real
    time), else none. A shrinking lead is late delivery (or a slower replay), which an image on time ends."""
    if before > 0 and last > 0:
        return min(before, last)
    return 0
