"""The command line: arguments in, one JSON document or rich output out, errors to exit codes.

Commands are thin: they read the state (from the coordination branch, or a folder with --dir),
call the functional core (scheduler, ops, lint, views) and print. One place, `run`, turns every
failure into one line and the documented exit code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

from ifcoord.errors import IfcoordError, UsageError

app = typer.Typer(
    name="ifcoord",
    help=(
        "Coordinate parallel AI coding sessions through a git branch: markdown task boards, "
        "atomic claims, leases with heartbeats.\n\nExit codes: 0 done, 1 unexpected error, "
        "2 usage error, 3 conflict, 4 not ready, 5 remote unreachable, 6 invalid data."
    ),
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

# Options shared by many commands.
SessionOpt = typer.Option(
    None, "--session", "-s", help="Session name (else IFCOORD_SESSION, else `ifcoord join`)."
)
RemoteOpt = typer.Option(None, "--remote", help="Git remote name or URL (default: origin).")
BranchOpt = typer.Option(None, "--branch", help="Coordination branch (default: ifcoord).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document for agents.")
DirOpt = typer.Option(None, "--dir", help="Read boards from this folder instead of the branch.")
ForceOpt = typer.Option(
    False, "--force", help="For humans: do it even though it is refused; recorded as forced."
)
EpochOpt = typer.Option(None, "--epoch", help="The fencing number you hold (from `claim --json`).")


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(highlight=False)


def note(message: str) -> None:
    """A message for the person: stderr, so that --json stdout stays one document."""
    sys.stderr.write(message + "\n")


def workspace(session: str | None = None, remote: str | None = None, branch: str | None = None):  # type: ignore[no-untyped-def]
    from ifcoord.views import render_dashboard
    from ifcoord.workspace import Workspace

    return Workspace(session=session, remote=remote, branch=branch, dashboard=render_dashboard)


def read_state(dir: Path | None, remote: str | None, branch: str | None, session: str | None = None):  # type: ignore[no-untyped-def]
    """The state to show: a folder (--dir), else the coordination branch's remote tip."""
    from ifcoord.state import load_folder

    if dir is not None:
        return load_folder(dir), frozenset(), None
    ws = workspace(session, remote, branch)
    state = ws.read()
    if state.commit is None:
        raise UsageError(
            f"no branch {ws.branch} on {ws.remote}",
            hint="create it with `ifcoord init`, or pass --branch/--remote (or --dir for files)",
        )
    return state, ws.stale(state.snapshot), ws


# -- read-only commands ---------------------------------------------------------------------------


@app.command()
def lint(
    dir: Path | None = DirOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check boards and status files: file:line diagnostics; exit 6 on errors, 0 on warnings only.

    Example: ifcoord lint --dir .
    """
    from ifcoord.lint import lint_snapshot

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


@app.command()
def board(
    dir: Path | None = DirOpt,
    phase: str | None = typer.Option(None, "--phase", help="Only this phase."),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every task with state, owner, dependencies and progress; ready tasks marked.

    Example: ifcoord board --phase 0
    """
    from ifcoord.payloads import task_json, task_rows
    from ifcoord.views import board_view

    state, stale, _ = read_state(dir, remote, branch)
    rows = [r for r in task_rows(state.snapshot, stale) if phase is None or r.task.phase == phase]
    if as_json:
        emit({"commit": state.commit, "tasks": [task_json(r) for r in rows]})
        return
    console().print(board_view(state.snapshot, rows))


@app.command()
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
    from ifcoord.ops import find_task
    from ifcoord.payloads import row_for, task_json
    from ifcoord.views import task_view

    state, stale, _ = read_state(dir, remote, branch)
    found = find_task(state.snapshot, task)
    row = row_for(state.snapshot, found.id, stale)
    assert row is not None
    if as_json:
        emit({"task": task_json(row, full=True)})
        return
    console().print(task_view(row))


@app.command("next")
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
    from ifcoord.config import phase_sort_key
    from ifcoord.payloads import row_for, task_json
    from ifcoord.scheduler import next_for
    from ifcoord.workspace import check_session_name

    state, stale, ws = read_state(dir, remote, branch, session)
    name = ws.session if ws else (session or os.environ.get("IFCOORD_SESSION"))
    if not name:
        raise UsageError("no session name", hint="pass --session NAME or set IFCOORD_SESSION")
    check_session_name(name)
    snap = state.snapshot
    pick = next_for(
        name, snap.tasks(), lambda t: bool(t.owner) and t.owner in stale,
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
        console().print(
            pick.reason if pick.task is None else f"[bold]{pick.task.id}[/] {pick.task.title}\n{pick.reason}"
        )
    if pick.task is None:
        raise typer.Exit(4)


@app.command()
def log(
    task: str | None = typer.Argument(None, help="Only this task's history."),
    limit: int = typer.Option(200, "--limit", help="At most this many entries."),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The history of operations, read from the commit trailers.

    Example: ifcoord log P0.1.5
    """
    from ifcoord.history import read_log
    from ifcoord.views import log_view

    ws = workspace(None, remote, branch)
    state = ws.read()
    sessions = [ws.store.mirror_ref(b) for b in ws.session_branch_tips()] if ws.own_branch_mode() else []
    entries = read_log(ws.store, state.commit, task, limit, sessions)
    if as_json:
        emit({"entries": [e.to_json() for e in entries]})
        return
    console().print(log_view(entries))


# -- connecting a clone ---------------------------------------------------------------------------


@app.command()
def init(
    board_files: list[Path] = typer.Option(
        [], "--board", help="A board file to import as it is (repeatable)."
    ),
    config_file: Path | None = typer.Option(
        None, "--config", help="An ifcoord.yaml to use instead of the defaults."
    ),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create the coordination branch on the remote (config, boards, status/); again changes nothing.

    Example: ifcoord init --remote origin --board PHASE-0.md --board PHASE-1.md
    """
    from ifcoord.bootstrap import init_branch

    ws = workspace("ifcoord", remote, branch)
    result = init_branch(ws, board_files, config_file)
    if as_json:
        emit(result)
    else:
        note(result["message"])


@app.command()
def join(
    session: str = typer.Argument(..., help="This clone's session name, e.g. session-4-sip"),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    own_branch: str | None = typer.Option(
        None,
        "--own-branch",
        help="This session's own branch (own-branch mode); default: the branch checked out.",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Remember for this clone which session it is, which remote and branch to use, and its own branch.

    Example: ifcoord join session-4-sip --remote origin --branch ifcoord
    """
    ws = workspace(None, remote, branch)
    ws.join(session, remote, branch, own_branch)
    info = {
        "session": session,
        "remote": ws.remote,
        "branch": ws.branch,
        "own_branch": ws.runner.run("config", "ifcoord.own-branch", check=False).strip() or None,
    }
    if as_json:
        emit(info)
    else:
        note(f"this clone is {session}, coordinating on {ws.remote} {ws.branch}")


# -- operations -----------------------------------------------------------------------------------


def op_output(result, tx, ws, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    from ifcoord.payloads import row_for, task_json

    row = None
    if result.task_id and tx.state is not None:
        # Show the task as it is after the change.
        after = ws.read(fetch=False) if tx.landed else tx.state
        row = row_for(after.snapshot, result.task_id, frozenset())
    if as_json:
        emit(
            {
                "task": task_json(row) if row else None,
                "op": result.op,
                "reason": result.reason,
                "epoch": result.epoch,
                "commit": tx.commit,
                "changed": tx.landed,
                "forced": result.forced,
                "attempts": tx.attempts,
            }
        )
    else:
        note(result.reason + ("" if tx.landed else " (no change)"))


@app.command()
def claim(
    task: str | None = typer.Argument(None, help="Task ID to claim."),
    next_task: bool = typer.Option(False, "--next", help="Claim the scheduler's pick for this session."),
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    force: bool = ForceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Claim a task atomically: exactly one session wins.

    Example: ifcoord claim P0.1.5 --session session-4-sip   |   ifcoord claim --next --json
    """
    from ifcoord.config import phase_sort_key
    from ifcoord.ops import claim_next, claim_task

    if bool(task) == next_task:
        raise UsageError("give a task ID or --next (one of them)", hint="e.g. `ifcoord claim P0.1.5`")
    ws = workspace(session, remote, branch)
    if next_task:
        result, tx = ws.apply(
            lambda s, c: claim_next(s, c, lambda p: phase_sort_key(s.config, p)), force=force
        )
    else:
        assert task is not None
        result, tx = ws.apply(lambda s, c: claim_task(s, task, c), task_id=task, force=force)
    op_output(result, tx, ws, as_json)


@app.command()
def reclaim(
    task: str = typer.Argument(..., help="Task ID whose owner's lease is stale."),
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    force: bool = ForceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Take over a task whose owner's lease went stale; the previous owner is recorded.

    Example: ifcoord reclaim P0.1.5
    """
    from ifcoord.ops import claim_task

    ws = workspace(session, remote, branch)
    result, tx = ws.apply(lambda s, c: claim_task(s, task, c, op="reclaim"), task_id=task, force=force)
    op_output(result, tx, ws, as_json)


@app.command()
def progress(
    task: str = typer.Argument(..., help="Task ID you hold."),
    percent: int = typer.Argument(..., help="0-100; ticks the milestones up to it."),
    note_text: str | None = typer.Option(None, "--note", help="A short note on where you are."),
    tests_passed: int | None = typer.Option(None, "--tests-passed"),
    tests_failed: int | None = typer.Option(None, "--tests-failed"),
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    epoch: int | None = EpochOpt,
    force: bool = ForceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Report progress on a task you hold: ticks milestones, updates your STATUS file.

    Example: ifcoord progress P0.1.5 50 --note "lifecycle tests pass" --tests-passed 3
    """
    from ifcoord.ops import progress_task

    ws = workspace(session, remote, branch)
    result, tx = ws.apply(
        lambda s, c: progress_task(s, task, percent, c, note_text, tests_passed, tests_failed),
        task_id=task, force=force, epoch=epoch,
    )  # fmt: skip
    op_output(result, tx, ws, as_json)


@app.command()
def block(
    task: str = typer.Argument(..., help="Task ID you hold."),
    on: str = typer.Option("", "--on", help="Comma-separated IDs it waits for."),
    reason: str | None = typer.Option(None, "--reason"),
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    epoch: int | None = EpochOpt,
    force: bool = ForceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Mark a task you hold as blocked, with the IDs it waits for.

    Example: ifcoord block P0.1.5 --on P0.1.4 --reason "needs the latency fix"
    """
    from ifcoord.ops import block_task

    ids = [i.strip() for i in on.replace(" ", ",").split(",") if i.strip()]
    ws = workspace(session, remote, branch)
    result, tx = ws.apply(
        lambda s, c: block_task(s, task, ids, c, reason), task_id=task, force=force, epoch=epoch
    )
    op_output(result, tx, ws, as_json)


@app.command()
def unblock(
    task: str = typer.Argument(..., help="Task ID you hold."),
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    epoch: int | None = EpochOpt,
    force: bool = ForceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Put a blocked task you hold back in progress.

    Example: ifcoord unblock P0.1.5
    """
    from ifcoord.ops import unblock_task

    ws = workspace(session, remote, branch)
    result, tx = ws.apply(lambda s, c: unblock_task(s, task, c), task_id=task, force=force, epoch=epoch)
    op_output(result, tx, ws, as_json)


@app.command()
def complete(
    task: str = typer.Argument(..., help="Task ID you hold."),
    deliverable: str | None = typer.Option(None, "--deliverable", help="Path of what you delivered."),
    tests_passed: int | None = typer.Option(None, "--tests-passed"),
    tests_failed: int | None = typer.Option(None, "--tests-failed"),
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    epoch: int | None = EpochOpt,
    force: bool = ForceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Mark a task you hold as done; tasks that depend on it may become ready.

    Example: ifcoord complete P0.1.5 --deliverable tests/integration/test_coordinator.py --tests-passed 5
    """
    from ifcoord.ops import complete_task

    ws = workspace(session, remote, branch)
    result, tx = ws.apply(
        lambda s, c: complete_task(s, task, c, deliverable, tests_passed, tests_failed),
        task_id=task, force=force, epoch=epoch,
    )  # fmt: skip
    op_output(result, tx, ws, as_json)


@app.command()
def release(
    task: str = typer.Argument(..., help="Task ID you hold."),
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    epoch: int | None = EpochOpt,
    force: bool = ForceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Give a task back: open again, owner cleared (its epoch stays, to fence you out).

    Example: ifcoord release P0.1.5
    """
    from ifcoord.ops import release_task

    ws = workspace(session, remote, branch)
    result, tx = ws.apply(lambda s, c: release_task(s, task, c), task_id=task, force=force, epoch=epoch)
    op_output(result, tx, ws, as_json)


@app.command()
def heartbeat(
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    state: str | None = typer.Option(
        None, "--state", help="polling, working, blocked, idle, offline or done."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Write this session's heartbeat (its STATUS file's last_poll) now.

    Example: ifcoord heartbeat --session session-4-sip
    """
    from ifcoord.ops import heartbeat as heartbeat_op

    allowed = ("polling", "working", "blocked", "idle", "offline", "done")
    if state is not None and state not in allowed:
        raise UsageError(f"unknown session state {state!r}", hint="use one of " + ", ".join(allowed))
    ws = workspace(session, remote, branch)
    result, tx = ws.apply(lambda s, c: heartbeat_op(s, c, state))
    op_output(result, tx, ws, as_json)


# -- the loop and the team ------------------------------------------------------------------------


@app.command()
def poll(
    session: str | None = SessionOpt,
    interval: float | None = typer.Option(
        None, "--interval", help="Seconds between cycles (default: the branch's poll_seconds, 30), jittered."
    ),
    once: bool = typer.Option(False, "--once", help="Run one cycle and exit."),
    no_claim: bool = typer.Option(False, "--no-claim", help="Report and heartbeat, but never claim."),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run the session loop: sync, heartbeat when due, claim the next task, say what to do now.

    Example: ifcoord poll --session session-4-sip --json   (one JSON event per line)
    """
    from ifcoord.loop import Event, PollLoop

    ws = workspace(session, remote, branch)
    ws.transactor.deadline = min(ws.transactor.deadline, 20.0)
    con = None if as_json else console()

    def show(event: Event) -> None:
        if as_json:
            emit(event.to_json())
        else:
            assert con is not None
            style = {
                "claimed": "bold green",
                "switch-to-primary": "bold yellow",
                "lease-lost": "bold red",
                "remote-down": "red",
                "blocked": "yellow",
                "error": "red",
            }.get(event.name, "")
            when = event.time.strftime("%H:%M:%S")
            con.print(
                f"{when} [{style}]{event.name}[/{style}] {event.message}"
                if style
                else f"{when} {event.name} {event.message}"
            )

    raise typer.Exit(PollLoop(ws, show, claim=not no_claim, interval=interval).run(once=once))


@app.command()
def status(
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    dir: Path | None = DirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every session: state, current task and milestone, heartbeat age; stale leases flagged.

    Example: ifcoord status --json
    """
    from ifcoord.views import session_rows, status_view

    state, stale, _ = read_state(dir, remote, branch)
    rows = session_rows(state.snapshot, stale)
    if as_json:
        emit({"commit": state.commit, "sessions": rows})
        return
    console().print(status_view(rows))


@app.command()
def arbitrate(
    once: bool = typer.Option(False, "--once", help="Fold once and exit."),
    interval: float = typer.Option(10.0, "--interval", help="Seconds between folds."),
    session: str | None = typer.Option("arbiter", "--session", "-s", help="Name recorded in the commits."),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Own-branch mode: fold every session branch's claims and progress into the boards.

    Run it where the coordination branch may be pushed. Example: ifcoord arbitrate --interval 30
    """
    from ifcoord.arbiter import arbitrate_forever, arbitrate_once
    from ifcoord.stopping import StopSignal

    ws = workspace(session, remote, branch)

    def report(result: dict) -> None:
        if as_json:
            emit(result)
        elif "error" in result:
            note(f"ifcoord: {result['error']}")
        elif result["changed"]:
            note(f"folded into {ws.branch}: {', '.join(result['files'])}")

    if once:
        report(arbitrate_once(ws))
        return
    stop = StopSignal()
    stop.install()
    arbitrate_forever(ws, interval, report, stop)


from ifcoord import cli_human  # noqa: E402 - registers watch, graph, brief, task add

cli_human.register(app)


# -- the entry point ------------------------------------------------------------------------------


def run(argv: list[str]) -> int:
    """Run the CLI; every failure becomes one line on stderr (or a JSON error) and an exit code."""
    wants_json = "--json" in argv
    try:
        app(args=argv, prog_name="ifcoord", standalone_mode=False)
        return 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        note("ifcoord: interrupted")
        return 130
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return report(wants_json, int(getattr(exc, "exit_code", 2)), message, "see `ifcoord --help`")
    except IfcoordError as exc:
        return report(wants_json, exc.exit_code, exc.line(), None)
    except KeyboardInterrupt:
        note("ifcoord: interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place unexpected errors become a line
        if "IFCOORD_DEBUG" in os.environ:
            raise
        return report(
            wants_json, 1, f"unexpected error: {type(exc).__name__}: {exc}",
            "rerun with IFCOORD_DEBUG=1 for a traceback and report it",
        )  # fmt: skip


def report(wants_json: bool, code: int, message: str, hint: str | None) -> int:
    line = f"{message}; {hint}" if hint else message
    if wants_json:
        emit({"error": {"code": code, "message": line}})
    note(f"ifcoord: {line}")
    return code
