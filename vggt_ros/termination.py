# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""SIGTERM handled as Ctrl-C: what `timeout`, systemd and `docker stop` send must not lose a run's results.

Inside `sigterm_as_interrupt`, SIGTERM raises `Terminated`, a KeyboardInterrupt, in the main thread: code that
keeps its results on Ctrl-C keeps them on SIGTERM too. A command exits with `EXIT_STATUS` afterwards (143 = 128
+ SIGTERM, the shell's convention, and 130 for Ctrl-C).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised by the handler `sigterm_as_interrupt` installs)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Raise `Terminated` on SIGTERM for the duration; the previous handler is restored after. Outside the main
    thread (where Python cannot install handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def signal_name(interruption: KeyboardInterrupt) -> str:
    """ "SIGTERM" for `Terminated`, else "SIGINT" (Ctrl-C)."""
    return "SIGTERM" if isinstance(interruption, Terminated) else "SIGINT"


# The exit status after each, the shell's convention (128 + the signal's number).
EXIT_STATUS = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}
