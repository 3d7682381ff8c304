"""Read-only commands: lint, board, show, next, log, status."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ifcoord.cli.common import (
    BranchOpt,
    DirOpt,
    JsonOpt,
    RemoteOpt,
    SessionOpt,
    console,
    emit,
    note,
    read_state,
    workspace,
)
from ifcoord.errors import NotReady, UsageError

if TYPE_CHECKING:
    from ifcoord.git.history import LogEntry
    from ifcoord.session.workspace import Workspace


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("lint")(lint)
    app.command("board")(board)
    app.command("show")(show)
    app.command("next")(next_)
    app.command("log")(log)
    app.command("status")(status)


def lint(
    dir: Path | None = DirOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check boards and status files: file:line diagnostics; exit 6 on errors, 0 on warnings only.

    Example: ifcoord lint --dir .
    """
    from ifcoord.core.lint import lint_snapshot

    state, _, _ = read_state(dir, remote, branch)
    diags = lint_snapshot(state.snapshot)
    errors = [d for d in diags if d.severity == "error"]
    if as_json:
        emit({"diagnostics": [d.model_dump() for d in diags], "errors": len(errors)})
    else:
        for d in diags:
            note(d.render())
        tasks = len(state.snapshot.tasks())
        note(
            f"{len(state.snapshot.boards)} boards, {tasks} tasks: {len(errors)} errors, "
            f"{sum(d.severity == 'warning' for d in diags)} warnings"
        )
    if errors:
        raise typer.Exit(6)


def board(
    dir: Path | None = DirOpt,
    phase: str | None = typer.Option(None, "--phase", help="Only this phase, every task of it."),
    everything: bool = typer.Option(
        False, "--all", help="Every task, however many (past 200, each phase lists only work in "
        "progress, stale leases and the first 20 ready tasks).",
    ),  # fmt: skip
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every task with state, owner, dependencies and progress; ready tasks marked.

    Example: ifcoord board --phase 0
    """
    from ifcoord.core.rows import task_json, task_rows
    from ifcoord.views.terminal import board_view

    state, stale, _ = read_state(dir, remote, branch)
    rows = [r for r in task_rows(state.snapshot, stale) if phase is None or r.task.phase == phase]
    from ifcoord.ownbranch.proposals import pending_json

    waiting = pending_json(state.snapshot)  # own-branch: proposals the arbiter has not decided
    if as_json:
        emit({"commit": state.commit, "tasks": [task_json(r) for r in rows], "pending": waiting})
        return
    console().print(board_view(state.snapshot, rows, everything=everything or phase is not None))
    for p in waiting:
        note(f"pending: {p['session']} proposes {p['op']} {p['task']} (waiting for the arbiter)")


def show(
    task: str = typer.Argument(..., help="Task ID, e.g. P0.1.5"),
    dir: Path | None = DirOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """One task in full: fields, milestones, lists, who holds it.

    Example: ifcoord show P2A.1 --json
    """
    from ifcoord.core.ops import find_task
    from ifcoord.core.rows import row_for, task_json
    from ifcoord.views.terminal import task_view

    state, stale, _ = read_state(dir, remote, branch)
    found = find_task(state.snapshot, task)
    row = row_for(state.snapshot, found.id, stale)
    assert row is not None
    if as_json:
        emit({"task": task_json(row, full=True)})
        return
    console().print(task_view(row))


def next_(
    session: str | None = SessionOpt,
    dir: Path | None = DirOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """What a session should take now, and why (primary, or filler while blocked). Claims nothing.

    Example: ifcoord next --session session-4-sip
    """
    from ifcoord.core.rows import row_for, task_json
    from ifcoord.core.scheduler import next_for
    from ifcoord.files.config import phase_sort_key
    from ifcoord.session.workspace import check_session_name

    state, stale, ws = read_state(dir, remote, branch, session)
    name = ws.session if ws else (session or os.environ.get("IFCOORD_SESSION"))
    if not name:
        raise UsageError("no session name", hint="pass --session NAME or set IFCOORD_SESSION")
    check_session_name(name)
    snap = state.snapshot
    pick = next_for(
        name, snap.tasks(), stale,
        lambda p: phase_sort_key(snap.config, p),
    )  # fmt: skip
    row = row_for(snap, pick.task.id, stale) if pick.task else None
    if as_json:
        emit(
            {
                "task": task_json(row) if row else None,
                "kind": pick.kind,
                "reason": pick.reason,
                "session": name,
            }
        )
    else:
        from ifcoord.views.text import safe_markup

        reason = safe_markup(pick.reason)
        if pick.task is None:
            console().print(reason)
        else:
            console().print(f"[bold]{safe_markup(pick.task.id)}[/] {safe_markup(pick.task.title)}\n{reason}")
    if pick.task is None:
        raise typer.Exit(4)


def log(
    task: str | None = typer.Argument(None, help="Only this task's history."),
    limit: int = typer.Option(200, "--limit", help="At most this many entries."),
    op: str | None = typer.Option(
        None, "--op", help="Only the operation with this id; exit 4 when it is not on the branch."
    ),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The history of operations, read from the commit trailers.

    Example: ifcoord log P0.1.5    (ifcoord log --op ID: did that operation land?)
    """
    from ifcoord.git.history import find_operation, read_log
    from ifcoord.views.terminal import log_view

    ws = workspace(None, remote, branch)
    state = ws.read()
    sessions = [ws.store.mirror_ref(b) for b in ws.session_branch_tips()] if ws.own_branch_mode() else []
    if op is not None:
        entries = find_operation(ws.store, state.commit, op.strip().lower(), sessions)
        if as_json:
            emit({"op_id": op, "landed": bool(entries), "entries": [e.to_json() for e in entries]})
        elif entries:
            console().print(log_view(entries))
        if not entries:
            at = (state.commit or "no commit")[:10]
            raise NotReady(
                f"operation {op} is not on {ws.branch} at {at}: it did not land",
                hint="it is safe to run the operation again",
            )
        return
    entries = read_log(ws.store, state.commit, task, limit, sessions)
    details = log_details(ws, entries)
    if as_json:
        emit({"entries": [{**e.to_json(), "details": details.get(e.commit, "")} for e in entries]})
        return
    console().print(log_view(entries, details))


def log_details(ws: Workspace, entries: list[LogEntry]) -> dict[str, str]:
    """Each operation's details, read from the task as its commit (and the one before) left it.
    Boards decode once per distinct blob, so a task's whole life costs little."""
    from ifcoord.views.terminal import op_details

    out: dict[str, str] = {}
    loader = ws.transactor.loader
    for e in entries:
        if not e.task or not e.op:
            continue
        try:
            after = loader.load(e.commit).snapshot.tasks().get(e.task)
            before = None
            if e.op in ("progress", "edit"):
                parent = ws.store.history(e.commit + "~1", max_count=1) if after else []
                before = loader.load(parent[0][0]).snapshot.tasks().get(e.task) if parent else None
        except Exception:  # noqa: BLE001 - a commit that cannot be read only loses its details
            continue
        out[e.commit] = op_details(e.op, after, before)
    return out


def status(
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    dir: Path | None = DirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every session: state, current task and milestone, heartbeat age; stale leases flagged.

    Example: ifcoord status --json
    """
    from ifcoord.views.terminal import session_rows, status_view

    state, stale, ws = read_state(dir, remote, branch)
    rows = session_rows(state.snapshot, stale)
    warnings = ws.clock_warnings(state.snapshot) if ws is not None else []
    if as_json:
        emit({"commit": state.commit, "sessions": rows, "clock_warnings": warnings})
        return
    console().print(status_view(rows))
    for warning in warnings:
        note(f"warning: {warning}")
