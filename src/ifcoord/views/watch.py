"""`ifcoord watch`: the sessions, what needs attention and the tasks, redrawn in place as the tip moves.

Each second it asks the remote for the tip (one `ls-remote`) and loads the new state only when the
tip moved. Ctrl-C (SIGINT) or SIGTERM ends it with exit 0, leaving the last frame on screen.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from ifcoord.core.rows import TaskRow, task_rows
from ifcoord.core.snapshot import BranchState
from ifcoord.errors import IfcoordError
from ifcoord.views.graph import critical_path
from ifcoord.views.terminal import session_rows, status_view, task_table
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
            tip = self.ws.transactor.sync()
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

    def frame(self, console: Console | None = None, page: int = 0) -> RenderableType:
        """The screen: header, sessions and what needs attention first, then as many task rows
        as fit in `console`'s height (all of them without one); the rest on later pages."""
        from rich.console import Group
        from rich.text import Text

        where = f"{self.ws.branch} on {self.ws.remote}"
        header = Text.from_markup(
            f"[bold]ifcoord watch[/]  {safe_markup(where)}"
            + (f" @ {self.tip[:7]}" if self.tip else "")
            + (f"  changed {_hms(self.moved_at)}" if self.moved_at else "")
            + (f"  checked {_hms(self.checked_at)}" if self.checked_at else ""),
            overflow="ellipsis",
        )
        header.no_wrap = True
        parts: list[RenderableType] = [header]
        if self.error:
            parts.append(
                Text(f"remote unreachable, showing the last state seen: {safe(self.error)}", style="bold red")
            )
        if self.state is None:
            parts.append(Text("reading the branch..."))
            return Group(*parts)
        if self.state.commit is None:
            parts.append(Text(f"no branch {where} yet: create it with `ifcoord init`", style="yellow"))
            return Group(*parts)
        snapshot = self.state.snapshot
        stale = self.ws.stale(snapshot)
        rows = task_rows(snapshot, stale)
        if snapshot.statuses:
            parts.append(status_view(session_rows(snapshot, stale, self.clock()), one_line=True))
        parts += attention_lines(rows)
        parts.append(board_summary(snapshot, rows))
        on_path = set(critical_path(snapshot.tasks()))
        if console is None:
            return Group(*parts, task_table(rows, on_path, 80))
        return fit_rows(console, parts, rows, on_path, page)


def attention_lines(rows: list[TaskRow]) -> list[RenderableType]:
    """Blocked tasks (on what, why) and tasks held under a stale lease: what a person acts on."""
    from rich.text import Text

    out: list[RenderableType] = []
    for r in rows:
        t = r.task
        # Text (not markup) from the branch, its control characters made visible: see views/text.py.
        if t.state == "blocked":
            on = f" on {', '.join(t.waiting_on)}" if t.waiting_on else ""
            why = f": {t.block_reason}" if t.block_reason else ""
            out.append(Text(safe(f"⚠ {t.id} blocked{on}{why} ({t.owner or 'nobody'})"), style="bold red"))
        elif r.stale_owner:
            out.append(Text(safe(f"⚠ {t.id} held by {t.owner} under a stale lease"), style="bold red"))
    for line in out:
        if isinstance(line, Text):
            line.no_wrap, line.overflow = True, "ellipsis"
    return out


def board_summary(snapshot: Any, rows: list[TaskRow]) -> RenderableType:
    from rich.text import Text

    counted = [r for r in rows if r.task.state != "cancelled"]
    done = sum(r.task.state == "done" for r in counted)
    return Text(
        f"tasks: {done}/{len(counted)} done, {sum(r.ready for r in rows)} ready, "
        f"{sum(r.task.state == 'blocked' for r in rows)} blocked",
        style="bold",
    )


def fit_rows(
    console: Console, top: list[RenderableType], rows: list[TaskRow], on_path: set[str], page: int
) -> RenderableType:
    """The top parts, then the page `page` of the task rows sized so the whole frame fits the
    console's height; a last line says which rows are shown when they do not all fit."""
    from rich.console import Group
    from rich.text import Text

    height, width = console.size.height, console.size.width
    options = console.options.update(width=width, height=None)

    def lines(*parts: RenderableType) -> int:
        return len(console.render_lines(Group(*parts), options, pad=False))

    used = lines(*top)
    room = max(1, height - used - 1)  # one line for the page note
    per_page = len(rows)
    while per_page > 1 and lines(task_table(rows[:per_page], on_path, width)) > room:
        per_page -= 1
    if per_page >= len(rows):
        return Group(*top, task_table(rows, on_path, width))
    pages = -(-len(rows) // per_page)
    index = page % pages
    shown = rows[index * per_page : (index + 1) * per_page]
    note = Text(
        f"tasks {index * per_page + 1}-{index * per_page + len(shown)} of {len(rows)}, "
        f"page {index + 1}/{pages} (pages turn by themselves; Ctrl-C quits)",
        style="dim",
        no_wrap=True,
        overflow="ellipsis",
    )
    return Group(*top, task_table(shown, on_path, width), note)


def _hms(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else ""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_watch(
    ws: Any,
    console: Console,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    page_seconds: float = 5.0,
) -> int:
    """Until interrupted: redraw each `interval` seconds (ages tick), reload when the tip moved.

    On a terminal the frame is drawn in place (no alternate screen) and stays on screen after
    Ctrl-C; pages of tasks turn every `page_seconds`. Anything else gets one plain frame, once."""
    from rich.live import Live

    watcher = Watcher(ws)
    if not console.is_terminal:
        watcher.update()
        console.print(watcher.frame())
        return 5 if watcher.error and watcher.state is None else 0
    # SIGTERM ends it as cleanly as Ctrl-C: the last frame stays and the cursor is shown.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        with Live(
            watcher.frame(console),
            console=console,
            screen=False,
            transient=False,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            vertical_overflow="crop",
        ) as live:
            while True:
                watcher.update()
                page = int((time.monotonic() - started) // page_seconds)
                live.update(watcher.frame(console, page), refresh=True)
                sleep(interval)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
