# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Approximate-time grouping of K timestamped streams, without ROS (live subscriptions and offline bag replay).

The semantics are those of `message_filters.ApproximateTimeSynchronizer` (the Python implementation shipped
with ROS 2), with the same parameter names:

* each input keeps a queue of its most recent items keyed by stamp; a second item with the same stamp
  replaces the first; beyond ``queue_size`` items the oldest stamp is dropped;
* on every arrival, each *other* input contributes the stamps within ``slop`` of the new one (``|dt| <= slop``),
  nearest first, equally near ones in arrival order; the first combination, in that order, whose spread
  (newest - oldest) is strictly below ``slop`` is emitted and its items leave their queues;
* a set is only ever formed around the item that just arrived; older leftovers simply age out of the queues.

With a single input every item is emitted as it arrives. Memory is bounded by ``num_inputs * queue_size`` items.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass
from typing import Generic, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class SyncedSet(Generic[T]):
    """One item per input, in input order, with their stamps in nanoseconds."""

    stamps_ns: tuple[int, ...]
    items: tuple[T, ...]


class ApproximateTimeSynchronizer(Generic[T]):
    """Groups items of ``num_inputs`` streams whose stamps lie within ``slop`` seconds of each other."""

    def __init__(self, num_inputs: int, queue_size: int, slop: float) -> None:
        if isinstance(num_inputs, bool) or not isinstance(num_inputs, int) or num_inputs < 1:
            raise ValueError(f"num_inputs must be an int >= 1 (one per camera), got {num_inputs!r}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be an int >= 1 (items kept per input), got {queue_size!r}")
        # The spread test is strict (as message_filters'), so slop 0 would never match anything.
        if isinstance(slop, bool) or not isinstance(slop, (int, float)) or not math.isfinite(slop) or slop <= 0:
            raise ValueError(f"slop must be a finite number of seconds > 0, got {slop!r}")
        self.num_inputs = num_inputs
        self.queue_size = queue_size
        self.slop = float(slop)
        # As rclpy.duration.Duration(seconds=slop).nanoseconds, which message_filters compares against.
        self._slop_ns = int(slop * 1e9)
        self._queues: list[dict[int, T]] = [{} for _ in range(num_inputs)]

    def reset(self) -> None:
        """Forget every queued item (for example after time jumped backwards)."""
        for queue in self._queues:
            queue.clear()

    def queued(self, input_index: int) -> int:
        """Number of items waiting on one input."""
        return len(self._queues[self._check_index(input_index)])

    def add(self, input_index: int, stamp_ns: int, item: T) -> Optional[SyncedSet[T]]:
        """Queue ``item`` of input ``input_index`` stamped ``stamp_ns``; return the set it completes, if any."""
        index = self._check_index(input_index)
        if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, int):
            raise TypeError(f"stamp_ns must be an int (nanoseconds), got {type(stamp_ns).__name__}")
        own = self._queues[index]
        own[stamp_ns] = item
        while len(own) > self.queue_size:
            del own[min(own)]

        candidates_per_input: list[list[int]] = []
        for other_index, queue in enumerate(self._queues):
            if other_index == index:
                candidates_per_input.append([stamp_ns])
                continue
            # Nearest first; equally near stamps keep their arrival order (a stable sort over the queue, which is in
            # arrival order), as message_filters does.
            near = sorted((s for s in queue if abs(s - stamp_ns) <= self._slop_ns), key=lambda s: abs(s - stamp_ns))
            if not near:
                return None
            candidates_per_input.append(near)

        for stamps in itertools.product(*candidates_per_input):
            # The arriving item itself may have been the oldest one, just dropped from a full queue.
            if max(stamps) - min(stamps) < self._slop_ns and all(s in q for s, q in zip(stamps, self._queues)):
                items = tuple(queue.pop(s) for s, queue in zip(stamps, self._queues))
                return SyncedSet(stamps_ns=tuple(stamps), items=items)
        return None

    def _check_index(self, input_index: int) -> int:
        if isinstance(input_index, bool) or not isinstance(input_index, int) or not 0 <= input_index < self.num_inputs:
            raise ValueError(f"input_index must be an int in [0, {self.num_inputs}), got {input_index!r}")
        return input_index


class NearestStampQueue(Generic[T]):
    """The latest ``queue_size`` items of one stream, looked up by the stamp of another: the same matching rule as
    `ApproximateTimeSynchronizer` (nearest stamp, ``|dt| <= slop``) for a stream that must not hold the other one
    back. The node pairs each depth image with its colour image this way: a colour frame set never waits for
    depth, so a missing or late depth topic costs the metric scale of those frames, not the reconstruction.

    The stamps the caller will look up later (`keep`: the keyframes, looked up when the worker runs their window)
    keep their match past the queue's count, whether it is queued already or arrives later, for the newest
    ``kept`` of them: with a network slower than about ``queue_size`` frame periods, the queue alone had dropped
    every keyframe's depth before the look-up. Thread-safe: one thread adds and keeps (the executor), another looks
    up (the inference worker).
    """

    def __init__(self, queue_size: int, slop: float, kept: int = 0) -> None:
        ApproximateTimeSynchronizer(1, queue_size, slop)  # the same parameter checks
        self.queue_size = queue_size
        self._slop_ns = int(slop * 1e9)
        self._kept_capacity = kept
        self._items: dict[int, T] = {}
        self._kept: dict[int, tuple[int, Optional[T]]] = {}  # kept stamp -> (|dt| of its match, match or None)
        self._lock = threading.Lock()

    def add(self, stamp_ns: int, item: T) -> None:
        with self._lock:
            self._items[stamp_ns] = item
            while len(self._items) > self.queue_size:
                del self._items[min(self._items)]
            for kept, (distance, _) in self._kept.items():
                if abs(stamp_ns - kept) <= min(distance - 1, self._slop_ns):
                    self._kept[kept] = (abs(stamp_ns - kept), item)

    def keep(self, stamp_ns: int) -> None:
        """Hold the match of ``stamp_ns`` (the nearest within the slop, queued now or arriving later) for
        `nearest`, as long as it is among the newest ``kept`` stamps kept."""
        if not self._kept_capacity:
            return
        with self._lock:
            near = self._nearest(stamp_ns)
            unmatched = (self._slop_ns + 1, None)  # any arrival within the slop is nearer
            self._kept[stamp_ns] = unmatched if near is None else (abs(near - stamp_ns), self._items[near])
            while len(self._kept) > self._kept_capacity:
                del self._kept[min(self._kept)]

    def nearest(self, stamp_ns: int) -> Optional[T]:
        """The item stamped nearest to ``stamp_ns`` within the slop (the kept match for a kept stamp), or None."""
        with self._lock:
            kept = self._kept.get(stamp_ns)
            if kept is not None and kept[1] is not None:
                return kept[1]
            near = self._nearest(stamp_ns)
            return None if near is None else self._items[near]

    def _nearest(self, stamp_ns: int) -> Optional[int]:
        near = min(self._items, key=lambda s: abs(s - stamp_ns), default=None)
        return None if near is None or abs(near - stamp_ns) > self._slop_ns else near

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._kept.clear()


def synchronize(
    stream: Iterable[tuple[int, int, T]], num_inputs: int, queue_size: int, slop: float
) -> Iterator[SyncedSet[T]]:
    """Offline grouping: ``(input_index, stamp_ns, item)`` in arrival order (for example a bag) -> synced sets."""
    synchronizer: ApproximateTimeSynchronizer[T] = ApproximateTimeSynchronizer(num_inputs, queue_size, slop)
    for input_index, stamp_ns, item in stream:
        matched = synchronizer.add(input_index, stamp_ns, item)
        if matched is not None:
            yield matched
