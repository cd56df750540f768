# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The one log de-duplication policy of the live node: each problem is reported, but not once per frame.

A problem is named by a key: a tuple of its kind and where it happened (``("stamp", camera, "late")``), never its
text, which carries values (byte counts, stamps) that differ from one frame to the next. Two rules:

* ``every``: at most once per ``period_s`` per key, for problems that recur while they last (late stamps, dropped
  windows, a quiet topic);
* ``once``: once until the key's group is cleared, for states that hold until something changes (a camera that
  stamps 0, a metric scale source with nothing to measure, an unreadable depth camera).

The table of keys is bounded (``max_keys``, the least recently reported dropped first), so hostile input that
invents new keys cannot grow it without bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Hashable, Protocol

LOG_PERIOD_S = 5.0
MAX_KEYS = 512


class Logger(Protocol):
    """What the policy writes to: rclpy's node logger and Python's `logging.Logger` both fit."""

    def info(self, message: str) -> object: ...

    def warning(self, message: str) -> object: ...

    def error(self, message: str) -> object: ...


class LogPolicy:
    """Rate limits per problem key, thread-safe (the executor and the worker thread both report)."""

    def __init__(
        self,
        logger: Logger,
        period_s: float = LOG_PERIOD_S,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self._period_s = period_s
        self._max_keys = max_keys
        self._clock = clock
        self._last: OrderedDict[tuple, float] = OrderedDict()  # key -> when it was last reported (inf: once)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._last)

    def allow(self, key: tuple[Hashable, ...]) -> bool:
        """True at most once per period for ``key``: the caller reports the problem now."""
        now = self._clock()
        return self._claim(key, lambda last: now - last >= self._period_s, now)

    def allow_once(self, key: tuple[Hashable, ...]) -> bool:
        """True the first time ``key`` is seen since its group was cleared (`clear`)."""
        return self._claim(key, lambda last: False, self._clock())

    def clear(self, group: tuple[Hashable, ...]) -> None:
        """Forget the keys that start with ``group``: the problem went away, the next occurrence is news."""
        with self._lock:
            for key in [k for k in self._last if k[: len(group)] == group]:
                del self._last[key]

    def every(self, level: str, key: tuple[Hashable, ...], text: str) -> None:
        """Log ``text`` at ``level`` ("info", "warning", "error") unless ``key`` was reported within the period."""
        if self.allow(key):
            self._write(level, text)

    def once(self, level: str, key: tuple[Hashable, ...], text: str) -> None:
        """Log ``text`` at ``level`` unless ``key`` was reported since its group was last cleared."""
        if self.allow_once(key):
            self._write(level, text)

    def _write(self, level: str, text: str) -> None:
        # One call site per severity: rclpy's logger refuses a call site whose severity changes between calls.
        if level == "error":
            self.logger.error(text)
        elif level == "warning":
            self.logger.warning(text)
        else:
            self.logger.info(text)

    def _claim(self, key: tuple, expired: Callable[[float], bool], now: float) -> bool:
        with self._lock:
            last = self._last.get(key)
            if last is not None and not expired(last):
                return False
            self._last[key] = now
            self._last.move_to_end(key)
            while len(self._last) > self._max_keys:
                self._last.popitem(last=False)
            return True
