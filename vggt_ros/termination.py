# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Ctrl-C (SIGINT) and SIGTERM (what `timeout`, systemd and `docker stop` send) as a request to stop, honoured at
safe points: a run's results must not be lost, nor written half.

Inside `stop_on_signal`, a signal raises `Interrupted` at once while nothing is computed yet (loading the model).
Within `StopRequest.deferred` (reading input and writing the results) the first one is only recorded: the code
checks `StopRequest.signal` between steps, so the window in progress finishes and the results are written whole.
An exception raised asynchronously inside a step could land anywhere, e.g. between a map's reset and its refill,
and the map written afterwards would be a fragment. A second signal raises `Interrupted` (``second``), for a user
who will not wait, except in the last step (`StopRequest.finishing`: a run's results swapped into place), where
it too is only recorded. A command exits with `EXIT_STATUS` afterwards (130 for Ctrl-C and 143 for SIGTERM: 128 + the
signal's number, the shell's convention). `run_command` runs a console script that has no safe point to wait for
(an export, a quantization): a signal stops it at once, with one line.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, Optional

# The exit status after each, the shell's convention (128 + the signal's number).
EXIT_STATUS = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}


class Interrupted(KeyboardInterrupt):
    """A signal that stops a run where it stands: ``signal`` names it ("SIGINT" or "SIGTERM"); ``second``: it came
    after a first one was recorded (`StopRequest.deferred`)."""

    def __init__(self, signal_name: str, second: bool) -> None:
        super().__init__(signal_name)
        self.signal = signal_name
        self.second = second


class StopRequest:
    """The first SIGINT or SIGTERM of a run (`stop_on_signal`): ``signal`` is its name once it came, else None."""

    def __init__(self) -> None:
        self.signal: Optional[str] = None
        self._on_first: Optional[Callable[[str], None]] = None
        self._finishing = False

    @contextmanager
    def deferred(self, on_first: Callable[[str], None]) -> Iterator[None]:
        """Within, the first signal is recorded and ``on_first(name)`` says what happens next; a later one raises
        `Interrupted`. Outside, any signal raises it at once."""
        self._on_first = on_first
        try:
            yield
        finally:
            self._on_first = None
            self._finishing = False

    def finishing(self) -> None:
        """From now until `deferred` ends, a second signal is recorded too, not raised: the last step (the swap of a
        run's results into place) must not be cut short halfway."""
        self._finishing = True

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self._on_first is not None and self.signal is not None and self._finishing:
            return
        if self._on_first is None or self.signal is not None:
            raise Interrupted(name, second=self.signal is not None)
        self.signal = name
        self._on_first(name)


@contextmanager
def stop_on_signal() -> Iterator[StopRequest]:
    """Handle SIGINT and SIGTERM through one `StopRequest` for the duration; the previous handlers are restored
    after. Outside the main thread (where Python cannot install handlers) nothing changes."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {number: signal.signal(number, request._handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run_command(main: Callable[[], int], stopped: str) -> NoReturn:
    """Run a console script's ``main`` and exit with its status: a user-facing failure (ValueError, OSError,
    RuntimeError) is one ``error:`` line and 1; Ctrl-C or SIGTERM is one line, ``<signal>: <stopped>``, and 130 /
    143. SIGTERM is handled as Ctrl-C, so the unwinding removes what the command was staging (its default action
    left it)."""
    with stop_on_signal():
        try:
            sys.exit(main())
        except (ValueError, OSError, RuntimeError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)
        except Interrupted as interrupted:
            print(f"{interrupted.signal}: {stopped}", file=sys.stderr)
            sys.exit(EXIT_STATUS[interrupted.signal])
