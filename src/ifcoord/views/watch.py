"""`ifcoord watch`: the board and the sessions full-screen, redrawn when the branch tip moves.

Each second it asks the remote for the tip (one `ls-remote`) and loads the new state only when the
tip moved. Ctrl-C (SIGINT) or SIGTERM ends it with exit 0 and the terminal as it was.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from ifcoord.core.rows import task_rows
from ifcoord.core.snapshot import BranchState
from ifcoord.errors import IfcoordError
from ifcoord.views.terminal import board_view, session_rows, status_view
from ifcoord.views.text import safe, safe_markup

if TYPE_CHECKING:
    from rich.console import Console, RenderableType


class Watcher:
    """What the screen shows: the last state seen, and how the last look at the remote went."""

    def __init__(self, ws: Any, clock: Callable[[], float] = time.time) -> None:
        self.ws = ws
        self.clock = clock
        self.tip: str | None = None
        self.state: BranchState | None = None
        self.error: str | None = None
        self.moved_at: float | None = None
        self.checked_at: float | None = None

    def update(self) -> bool:
        """Look at the remote tip; load the state when it moved. True when there is something new."""
        try:
            tip = self.ws.store.sync()
        except IfcoordError as exc:
            changed = self.error is None
            self.error = exc.line()
            return changed
        self.checked_at = self.clock()
        recovered = self.error is not None
        self.error = None
        if self.state is not None and tip == self.tip:
            return recovered
        self.tip = tip
        self.state = self.ws.transactor.loader.load(tip)
        self.moved_at = self.clock()
        return True

    def frame(self) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        where = f"{self.ws.branch} on {self.ws.remote}"
        header = Text.from_markup(
            f"[bold]ifcoord watch[/]  {safe_markup(where)}"
            + (f" @ {self.tip[:10]}" if self.tip else "")
            + (f"  changed {_hms(self.moved_at)}" if self.moved_at else "")
            + (f"  checked {_hms(self.checked_at)}" if self.checked_at else "")
            + "  [dim]Ctrl-C to quit[/]"
        )
        parts: list[RenderableType] = [header]
        if self.error:
            parts.append(
                Text(f"remote unreachable, showing the last state seen: {safe(self.error)}", style="bold red")
            )
        if self.state is None:
            parts.append(Text("reading the branch..."))
        elif self.state.commit is None:
            parts.append(Text(f"no branch {where} yet: create it with `ifcoord init`", style="yellow"))
        else:
            snapshot = self.state.snapshot
            stale = self.ws.stale(snapshot)
            if snapshot.statuses:
                parts.append(status_view(session_rows(snapshot, stale, self.clock())))
            parts.append(board_view(snapshot, task_rows(snapshot, stale)))
        return Group(*parts)


def _hms(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else ""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_watch(
    ws: Any, console: Console, interval: float = 1.0, sleep: Callable[[float], None] = time.sleep
) -> int:
    """Until interrupted: redraw each `interval` seconds (ages tick), reload when the tip moved."""
    from rich.live import Live

    watcher = Watcher(ws)
    # SIGTERM ends it as cleanly as Ctrl-C: the alternate screen is left and the cursor shown.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Live(watcher.frame(), console=console, screen=True, auto_refresh=False) as live:
            while True:
                watcher.update()
                live.update(watcher.frame(), refresh=True)
                sleep(interval)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
