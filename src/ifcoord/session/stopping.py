"""Stopping a long-running command (poll, arbitrate) on SIGINT/SIGTERM.

The handler only sets a flag: a signal handler that takes a lock (as `threading.Event.set`
does) can deadlock against the very code it interrupted, and the process would then ignore
every later signal. Sleeps are short slices that look at the flag; what a slice does (plain
sleep, or serving other commands, serve/server.py) is the `wait` given.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

SLICE_SECONDS = 0.05


class StopSignal:
    def __init__(self, wait: Callable[[float], None] = time.sleep) -> None:
        self.requested = False
        self.wait = wait

    def install(self) -> None:
        """Catch SIGINT and SIGTERM (only possible from the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: Any) -> None:
            self.requested = True

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as a stop was requested."""
        end = time.monotonic() + seconds
        while not self.requested:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.wait(min(SLICE_SECONDS, left))
        return self.requested
