# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The ~/map message, built off the executor thread.

A map of half a million points takes tens of milliseconds to read out of the voxel tables and pack into a
PointCloud2, and reading it needs the world lock, which the worker holds while it integrates a window (hundreds of
milliseconds with the map on). Done on the executor, both stalled the camera callbacks and the timers. Here one
small thread ("vggt-map") checks the map every ``period_s``: when it changed, it copies its arrays under the world
lock (`LiveReconstruction.map_if_changed`), builds the message outside it, and leaves it ready; the executor's
map timer only takes the ready message and publishes it (`take`).
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, Optional, TypeVar

import numpy as np

from vggt_ros.live.reconstruction import LiveReconstruction

Message = TypeVar("Message")


class MapOutput(Generic[Message]):
    """The newest map message, built by its own thread from ``live``'s map with ``build(points, colors, stamp_ns)``.

    Args:
        live: the live reconstruction whose map is published.
        build: ``(N, 3)`` float32 points, ``(N, 3)`` uint8 colours, stamp ns -> the message.
        period_s: how often the map is checked for a change.
        on_error: called with the exception when one check fails (the thread goes on with the next).
    """

    def __init__(
        self,
        live: LiveReconstruction,
        build: Callable[[np.ndarray, np.ndarray, int], Message],
        period_s: float,
        on_error: Callable[[Exception], None],
    ) -> None:
        self._live = live
        self._build = build
        self._period_s = period_s
        self._on_error = on_error
        self._ready: Optional[Message] = None
        self._lock = threading.Lock()  # guards _ready only: held for an assignment, never while building
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vggt-map", daemon=True)
        self._thread.start()

    def take(self) -> Optional[Message]:
        """The message built since the last call, or None: cheap, for the executor thread."""
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def close(self) -> None:
        """Stop the thread (after the message it is building, if any: it reads the world, which is released next)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                changed = self._live.map_if_changed()
                if changed is None:
                    continue
                message = self._build(*changed)
            except Exception as err:  # noqa: BLE001 - one bad map must not stop the later ones
                self._on_error(err)
                continue
            with self._lock:
                self._ready = message  # an untaken older map is replaced: only the newest matters
