"""What people see: rich renderables for the terminal and the markdown dashboard for the git host.

Pure renderers over snapshots and rows; printing, clocks and the terminal are the CLI's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ifcoord.core import lifecycle
from ifcoord.core.rows import TaskRow
from ifcoord.files.config import phase_sort_key
from ifcoord.models import Snapshot, Task
from ifcoord.views.graph import critical_path
from ifcoord.views.text import safe_markup

if TYPE_CHECKING:
    from rich.console import RenderableType

    from ifcoord.git.history import LogEntry

WORKING = lifecycle.HELD - {"blocked"}

STATE_STYLE = {
    "open": "white",
    "claimed": "cyan",
    "in_progress": "cyan",
    "blocked": "bold red",
    "review": "magenta",
    "done": "green",
    "cancelled": "dim",
}


def progress_bar(percent: int | None, width: int = 10) -> str:
    p = max(0, min(100, percent or 0))
    filled = round(p * width / 100)
    return "█" * filled + "░" * (width - filled) + f" {p:>3}%"


def task_percent(task: Task) -> int:
    """How far a task is: 100 when done, else its Progress (or ticked milestones), else 0."""
    if task.state == "done":
        return 100
    return max(0, min(100, task.progress or 0))


@dataclass(frozen=True)
class PhaseSummary:
    phase: str
    rows: list[TaskRow]

    @cached_property
    def counted(self) -> list[TaskRow]:
        """Cancelled tasks count neither as done nor in the total."""
        return [r for r in self.rows if r.task.state != "cancelled"]

    @cached_property
    def done(self) -> int:
        return sum(r.task.state == "done" for r in self.counted)

    @property
    def total(self) -> int:
        return len(self.counted)

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100


def phases_of(snapshot: Snapshot, rows: Iterable[TaskRow]) -> list[PhaseSummary]:
    """Rows grouped by phase, phases in the branch's order, tasks in board order within each."""
    groups: dict[str, list[TaskRow]] = {}
    for r in rows:
        groups.setdefault(r.task.phase, []).append(r)
    ordered = sorted(groups, key=lambda p: phase_sort_key(snapshot.config, p))
    return [PhaseSummary(p, groups[p]) for p in ordered]


def shown_state(row: TaskRow) -> str:
    """The state a person cares about: `ready` for an open task one could claim now."""
    if row.ready and row.task.state == "open":
        return "ready"
    if row.ready:
        return "reclaimable"  # held by a session whose lease is stale
    return row.task.state


# -- the terminal -----------------------------------------------------------------------------


# Past this many tasks, views meant to be read whole (the terminal board, the dashboard) show
# what needs people and say how to see the rest: thousands of rows help no one, and the
# terminal board took 3 s to lay out 5,000 of them.
DETAIL_LIMIT = 200
LIST_LIMIT = 20  # ready tasks named in a bounded view


def bounded_ids(rows: list[TaskRow]) -> set[str]:
    """The tasks a bounded view lists: every held task (in progress, blocked, in review), every
    task under a stale lease, and the first LIST_LIMIT ready tasks in board order."""
    shown = {r.task.id for r in rows if r.task.state in lifecycle.HELD or r.stale_owner}
    ready = [r.task.id for r in rows if r.ready and r.task.id not in shown]
    return shown | set(ready[:LIST_LIMIT])


def board_view(snapshot: Snapshot, rows: list[TaskRow], everything: bool = False) -> RenderableType:
    """`ifcoord board`: per phase a progress bar and a table; ready, critical, stale, blocked marked.

    Past DETAIL_LIMIT rows, unless `everything`, each phase's table holds only bounded_ids and
    a line says how many more there are and how to list them."""
    from rich.console import Group
    from rich.text import Text

    bounded = not everything and len(rows) > DETAIL_LIMIT
    keep = bounded_ids(rows) if bounded else {r.task.id for r in rows}
    critical = critical_path(snapshot.tasks())
    on_path = set(critical)
    counted = [r for r in rows if r.task.state != "cancelled"]
    blocked = sum(r.task.state == "blocked" for r in rows)
    stale = sum(r.stale_owner for r in rows)
    ready = sum(r.ready for r in rows)
    # Two short lines rather than one that wraps mid-phrase at 80 columns.
    header = Text.from_markup(
        f"[bold]ifcoord board[/] @ {(snapshot.commit or 'files')[:10]}\n"
        f"{sum(r.task.state == 'done' for r in counted)}/{len(counted)} done, "
        f"{sum(r.task.state in WORKING for r in rows)} in progress, "
        + _count(blocked, "blocked", "bold red")
        + ", "
        + _count(stale, "stale", "bold red")
        + ", "
        + _count(ready, "ready", "bold green")
    )
    parts: list[RenderableType] = [header]
    if critical:
        parts.append(
            Text.from_markup(
                "[bold yellow]★ critical path:[/] " + " → ".join(safe_markup(c) for c in critical)
            )
        )
    for summary in phases_of(snapshot, rows):
        bar = progress_bar(summary.percent, 24)
        parts.append(
            Text.from_markup(
                f"\n[bold]Phase {safe_markup(summary.phase)}[/]  [green]{bar}[/]  "
                f"{summary.done}/{summary.total} done"
            )
        )
        shown = [r for r in summary.rows if r.task.id in keep]
        rest = [r for r in summary.rows if r.task.id not in keep]
        if shown:
            parts.append(task_table(shown, on_path))
        if rest:
            done = sum(r.task.state == "done" for r in rest)
            ready_rest = sum(r.ready for r in rest)
            parts.append(
                Text.from_markup(
                    f"[dim]{'and ' if shown else ''}{len(rest)} more tasks ({done} done, {ready_rest} ready, "
                    f"{len(rest) - done - ready_rest} other): "
                    f"ifcoord board --phase {safe_markup(summary.phase)}[/]"
                )
            )
    if bounded:
        parts.append(
            Text.from_markup(
                f"[dim]{len(rows)} tasks: more than {DETAIL_LIMIT}, so each phase lists the work in "
                f"progress, stale leases and the first {LIST_LIMIT} ready tasks; --all lists every task[/]"
            )
        )
    parts.append(
        Text.from_markup(
            "[dim]▶ ready to claim   ★ on the critical path   depends on: [green]done[/green], "
            "[yellow]not yet[/yellow][/]"
        )
    )
    return Group(*parts)


def task_table(rows: list[TaskRow], on_path: set[str], width: int | None = None) -> RenderableType:
    """The tasks as a table whose ID, State and Progress are never cut: titles, owners and
    dependencies give way first. With `width` (watch) every row is one line, titles cut with `…`,
    so that rows can be counted against the screen's height."""
    from rich import box
    from rich.table import Table

    cells = [_board_cells(r, on_path) for r in rows]
    table = Table(expand=False, box=box.SIMPLE_HEAD, pad_edge=False)
    if width is None:
        table.add_column("ID", no_wrap=True)
        table.add_column("Title", overflow="fold", min_width=12, max_width=48)
        table.add_column("State", no_wrap=True)
        table.add_column("Owner", overflow="ellipsis", no_wrap=True, max_width=14)
        table.add_column("Depends on", overflow="ellipsis", no_wrap=True, max_width=14)
        table.add_column("Progress", no_wrap=True, min_width=10)
    else:
        from rich.text import Text

        def need(i: int, cap: int, header: str) -> int:
            return min(cap, max([len(header), *(Text.from_markup(c[i]).cell_len for c in cells)]))

        fixed = [need(0, 30, "ID"), need(2, 11, "State"), need(3, 12, "Owner"), need(4, 12, "Depends on"), 10]
        title = max(8, min(48, width - sum(fixed) - 18))
        names = ("ID", "Title", "State", "Owner", "Depends on", "Progress")
        for name, w in zip(names, [fixed[0], title, *fixed[1:]], strict=True):
            table.add_column(name, width=w, no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*row)
    return table


def _count(n: int, word: str, style: str) -> str:
    return f"[{style}]{n} {word}[/]" if n else f"{n} {word}"


def _board_cells(r: TaskRow, on_path: set[str]) -> list[str]:

    t = r.task
    mark = ("[bold green]▶[/]" if r.ready else " ") + ("[bold yellow]★[/]" if t.id in on_path else " ")
    shown_id = safe_markup(t.id)
    task_id = mark + " " + (f"[bold yellow]{shown_id}[/]" if t.id in on_path else shown_id)
    title = safe_markup(t.title) + (" [dim](filler)[/]" if t.kind == "filler" else "")
    state = shown_state(r)
    state_cell = {
        "ready": "[bold green]ready[/]",
        "reclaimable": "[bold red]reclaimable[/]",
    }.get(state, f"[{STATE_STYLE[t.state]}]{state.replace('_', ' ')}[/]")
    owner = safe_markup(t.owner)
    if r.stale_owner:
        owner = f"[bold red]{owner} (stale)[/]"
    # a task depending on a large group would make its row hundreds of lines tall
    deps = ", ".join(
        f"[green]{safe_markup(d)}[/]" if d not in r.unmet else f"[yellow]{safe_markup(d)}[/]"
        for d in r.depends_on[:8]
    ) + (f" [dim]+{len(r.depends_on) - 8} more[/]" if len(r.depends_on) > 8 else "")
    percent = task_percent(t)
    colour = "green" if t.state == "done" else "red" if t.state == "blocked" else "cyan" if percent else "dim"
    return [task_id, title, state_cell, owner, deps, f"[{colour}]{progress_bar(percent, 5)}[/]"]


def task_view(row: TaskRow) -> RenderableType:
    """`ifcoord show`: every field the task has, with what it waits on and why, in words."""
    from rich.panel import Panel

    t = row.task
    lines = [
        f"[bold]{safe_markup(t.id)}[/]: {safe_markup(t.title)}",
        f"{safe_markup(t.file)}:{t.line}  phase {safe_markup(t.phase)}  {t.kind}",
        f"state: [{STATE_STYLE[t.state]}]{t.state.replace('_', ' ')}[/]"
        + ("  [bold green](ready)[/]" if row.ready else ""),
    ]
    if t.owner:
        lines.append(
            f"owner: {safe_markup(t.owner)} (epoch {t.epoch})"
            + (" [red]stale lease[/]" if row.stale_owner else "")
        )
    if t.sessions:
        lines.append("reserved for: " + safe_markup(", ".join(t.sessions)))
    if row.depends_on:
        lines.append(
            "depends on: "
            + ", ".join(
                safe_markup(d) + (" (unmet)" if d in row.unmet else " (done)") for d in row.depends_on
            )
        )
    if t.waiting_on:
        lines.append("[bold red]waiting on:[/] " + safe_markup(", ".join(t.waiting_on)))
    for label, value in (
        ("block reason", t.block_reason),
        ("cancel reason", t.cancel_reason),
        ("priority", t.priority),
        ("estimate", t.estimate),
        ("deliverable", t.deliverable),
        ("tests", t.tests),
        ("risk", t.risk),
        ("model", t.model),
        ("note", t.note),
        ("previous owner", t.previous_owner),
        ("claimed at", _when(t.claimed_at)),
        ("completed at", _when(t.completed_at)),
    ):
        if value:
            style = "bold red" if label == "block reason" else "bold"
            lines.append(f"[{style}]{label}:[/] {safe_markup(value)}")
    if t.progress is not None or t.state == "done":
        lines.append("progress: " + progress_bar(task_percent(t)))
    if t.milestones:
        lines.append("milestones:")
        lines += [f"  {'☑' if m.done else '☐'} {safe_markup(m.text)}" for m in t.milestones]
    for label, items in t.lists.items():
        lines.append(f"{safe_markup(label)}:")
        lines += [f"  - {safe_markup(i)}" for i in items]
    for label, value in t.extra.items():
        lines.append(f"{safe_markup(label)}: {safe_markup(value)}")
    return Panel("\n".join(lines), expand=False)


def _when(ts: Any) -> str | None:
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC") if ts is not None else None


def op_details(op: str | None, task: Task | None, before: Task | None = None) -> str:
    """What an operation did, in words, read from the task as that commit left it: the percent
    of a progress report, what a block waits on and why, the tests of a completion, a reason."""
    if task is None:
        return ""
    parts: list[str] = []
    if op == "progress":
        parts.append(f"{task_percent(task)}%")
        ticked = [m.text for m in task.milestones if m.done]
        before_ticked = {m.text for m in before.milestones if m.done} if before else set()
        parts += [f"☑ {m}" for m in ticked if m not in before_ticked]
        if task.tests and (before is None or before.tests != task.tests):
            parts.append("tests " + task.tests)
        if task.note and (before is None or before.note != task.note):
            parts.append(task.note)
    elif op == "block":
        if task.waiting_on:
            parts.append("waits on " + ", ".join(task.waiting_on))
        if task.block_reason:
            parts.append(task.block_reason)
    elif op == "complete":
        if task.tests:
            parts.append("tests " + task.tests)
        if task.deliverable:
            parts.append(task.deliverable)
    elif op == "cancel" and task.cancel_reason:
        parts.append(task.cancel_reason)
    elif op in ("claim", "reclaim") and task.previous_owner:
        parts.append(f"from {task.previous_owner}")
    elif op == "edit":
        for label, attr in (
            ("title", "title"),
            ("priority", "priority"),
            ("depends on", "depends_raw"),
            ("for", "sessions"),
            ("estimate", "estimate"),
        ):
            now, was = getattr(task, attr), getattr(before, attr) if before else None
            if before is None and attr != "title":
                continue
            if now != was:
                shown = ", ".join(now) if isinstance(now, list) else now
                parts.append(f"{label}: {shown or '(removed)'}")
    return "; ".join(parts)


def log_view(entries: list[LogEntry], details: dict[str, str] | None = None) -> RenderableType:
    """`ifcoord log`: newest first, one row per commit, with what each operation did."""
    from rich.table import Table

    details = details or {}
    table = Table(title="ifcoord log")
    for col in ("When (UTC)", "Op", "Task", "Session", "Epoch", "Details", "Commit"):
        table.add_column(col, overflow="fold", no_wrap=col in ("When (UTC)", "Commit"))
    for e in entries:
        op = (e.op or "edit") + (" [red](forced)[/]" if e.forced else "")
        table.add_row(
            e.time.strftime("%Y-%m-%d %H:%M:%S"),
            op,
            safe_markup(e.task),
            safe_markup(e.session),
            str(e.epoch or ""),
            safe_markup(details.get(e.commit, "" if e.op else e.subject)),
            e.commit[:10],
        )
    return table


def held_tasks(snapshot: Snapshot) -> dict[str, list[str]]:
    """The tasks each session holds (claimed, in progress, blocked or in review)."""
    held: dict[str, list[str]] = {}
    for t in snapshot.tasks().values():
        if t.owner and lifecycle.holds(t, t.owner):
            held.setdefault(t.owner, []).append(t.id)
    return {k: sorted(v) for k, v in held.items()}


def session_rows(
    snapshot: Snapshot, stale: frozenset[str], clock: float | None = None
) -> list[dict[str, Any]]:
    """One dict per session (the JSON of `ifcoord status`): state, task, heartbeat age, stale."""
    import time

    from ifcoord.core.rows import status_json

    clock = time.time() if clock is None else clock
    held = held_tasks(snapshot)
    rows = []
    for name, st in sorted(snapshot.statuses.items()):
        age = clock - st.last_poll.timestamp() if st.last_poll else None
        row = status_json(st, age, name in stale)
        row["holds"] = held.get(name, [])
        rows.append(row)
    return rows


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def status_view(rows: list[dict[str, Any]], one_line: bool = False) -> RenderableType:
    """`ifcoord status`; with `one_line` (watch) each session is one row, long cells cut with `…`."""
    from rich.table import Table

    table = Table(title="ifcoord sessions")
    for col in ("Session", "State", "Task", "Milestone", "Heartbeat", "Holds"):
        short = one_line and col in ("Milestone", "Holds")
        table.add_column(
            col, overflow="ellipsis" if short else "fold", no_wrap=short, max_width=20 if short else None
        )
    for r in rows:
        beat = age_text(r["heartbeat_age"])
        if r["stale"]:
            beat = f"[bold red]{beat}, stale[/]" if one_line else f"[bold red]{beat} (stale lease)[/]"
        state = r.get("status") or ""
        style = {"blocked": "bold red", "offline": "dim", "working": "green"}.get(state, "")
        table.add_row(
            safe_markup(r["session"]),
            f"[{style}]{state}[/]" if style else safe_markup(state),
            safe_markup(r.get("current_task")),
            safe_markup(r.get("milestone")),
            beat,
            safe_markup(", ".join(r["holds"])),
        )
    return table


# -- the dashboard on the branch --------------------------------------------------------------
