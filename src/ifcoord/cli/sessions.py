"""Commands a session runs: init, join, the lifecycle operations, poll, serve."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ifcoord.cli.common import (
    BranchOpt,
    EpochOpt,
    ForceOpt,
    JsonOpt,
    NextAfterOpt,
    RemoteOpt,
    SessionOpt,
    TestsFailedOpt,
    TestsPassedOpt,
    console,
    emit,
    note,
    op_output,
    then_json,
    workspace,
)
from ifcoord.errors import ConflictError, UsageError
from ifcoord.views.text import safe_markup

if TYPE_CHECKING:
    from ifcoord.core.ops import OpContext, OpResult
    from ifcoord.models import Snapshot
    from ifcoord.session.workspace import Workspace


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("init")(init)
    app.command("join")(join)
    app.command("claim")(claim)
    app.command("reclaim")(reclaim)
    app.command("progress")(progress)
    app.command("block")(block)
    app.command("unblock")(unblock)
    app.command("complete")(complete)
    app.command("release")(release)
    app.command("heartbeat")(heartbeat)
    app.command("poll")(poll)
    app.command("serve")(serve)


# -- connecting a clone ---------------------------------------------------------------------------


def init(
    board_files: list[Path] = typer.Option(
        [], "--board", metavar="FILE", help="A board file to import as it is (repeatable)."
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
    from ifcoord.session.bootstrap import init_branch

    ws = workspace("ifcoord", remote, branch)
    result = init_branch(ws, board_files, config_file)
    if as_json:
        emit(result)
    else:
        note(result["message"])


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
    from ifcoord.core.ops import claim_next, claim_task

    if bool(task) == next_task:
        raise UsageError("give a task ID or --next (one of them)", hint="e.g. `ifcoord claim P0.1.5`")
    ws = workspace(session, remote, branch)
    if next_task:
        result, tx = ws.apply(claim_next, force=force)
    else:
        assert task is not None
        result, tx = ws.apply(lambda s, c: claim_task(s, task, c), task_id=task, force=force)
    op_output(result, tx, ws, as_json)


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
    from ifcoord.core.ops import claim_task

    ws = workspace(session, remote, branch)
    result, tx = ws.apply(lambda s, c: claim_task(s, task, c, op="reclaim"), task_id=task, force=force)
    op_output(result, tx, ws, as_json)


def progress(
    task: str = typer.Argument(..., help="Task ID you hold."),
    percent: int = typer.Argument(..., min=0, max=100, help="0-100; ticks the milestones up to it."),
    note_text: str | None = typer.Option(None, "--note", help="A short note on where you are."),
    tests_passed: int | None = TestsPassedOpt,
    tests_failed: int | None = TestsFailedOpt,
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
    from ifcoord.core.ops import progress_task

    ws = workspace(session, remote, branch)
    result, tx = ws.apply(
        lambda s, c: progress_task(s, task, percent, c, note_text, tests_passed, tests_failed),
        task_id=task, force=force, epoch=epoch,
    )  # fmt: skip
    op_output(result, tx, ws, as_json)


def block(
    task: str = typer.Argument(..., help="Task ID you hold."),
    on: str = typer.Option("", "--on", help="Comma-separated IDs it waits for."),
    reason: str | None = typer.Option(
        None, "--reason", help="Why it is blocked, in words; written as its Block reason."
    ),
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
    from ifcoord.core.ops import block_task
    from ifcoord.files.board import looks_like_task_id

    ids = [i.strip() for i in on.replace(" ", ",").split(",") if i.strip()]
    junk = [i for i in ids if not looks_like_task_id(i)]
    if junk:
        # written to the board's Waiting on field: a path or `**Owner:**` there corrupts it
        raise UsageError(
            f"--on {', '.join(junk)}: not a task ID",
            hint="give the IDs it waits for, comma-separated, e.g. --on P0.1.4,P0.1.6",
        )
    ws = workspace(session, remote, branch)
    result, tx = ws.apply(
        lambda s, c: block_task(s, task, ids, c, reason), task_id=task, force=force, epoch=epoch
    )
    op_output(result, tx, ws, as_json)


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
    from ifcoord.core.ops import unblock_task

    ws = workspace(session, remote, branch)
    result, tx = ws.apply(lambda s, c: unblock_task(s, task, c), task_id=task, force=force, epoch=epoch)
    op_output(result, tx, ws, as_json)


def complete(
    task: str = typer.Argument(..., help="Task ID you hold."),
    deliverable: str | None = typer.Option(None, "--deliverable", help="Path of what you delivered."),
    tests_passed: int | None = TestsPassedOpt,
    tests_failed: int | None = TestsFailedOpt,
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    epoch: int | None = EpochOpt,
    force: bool = ForceOpt,
    next_task: bool = NextAfterOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Mark a task you hold as done; tasks that depend on it may become ready.

    Example: ifcoord complete P0.1.5 --deliverable tests/integration/test_coordinator.py --tests-passed 5
    """
    from ifcoord.core.ops import complete_task

    ws = workspace(session, remote, branch)
    finish(
        ws, lambda s, c: complete_task(s, task, c, deliverable, tests_passed, tests_failed),
        task, force, epoch, next_task, as_json,
    )  # fmt: skip


def release(
    task: str = typer.Argument(..., help="Task ID you hold."),
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    epoch: int | None = EpochOpt,
    force: bool = ForceOpt,
    next_task: bool = NextAfterOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Give a task back: open again, owner cleared (its epoch stays, to fence you out).

    Example: ifcoord release P0.1.5
    """
    from ifcoord.core.ops import release_task

    ws = workspace(session, remote, branch)
    finish(ws, lambda s, c: release_task(s, task, c), task, force, epoch, next_task, as_json)


def finish(
    ws: Workspace,
    operation: Callable[[Snapshot, OpContext], OpResult],
    task: str,
    force: bool,
    epoch: int | None,
    next_task: bool,
    as_json: bool,
) -> None:
    """`complete` and `release`; with --next, then `now`'s answer in the same turn at the branch
    (session/now.py, then_ask): its JSON under "next", its message after the operation's line
    (own-branch mode: null, and a line saying the arbiter decides first). The exit code is the
    operation's: 0 once it landed, also when nothing is ready next."""
    if not next_task:
        result, tx = ws.apply(operation, task_id=task, force=force, epoch=epoch)
        op_output(result, tx, ws, as_json)
        return
    from ifcoord.session.now import awaiting_message, message, then_ask

    result, tx, then = then_ask(ws, operation, task, force, epoch)
    if as_json:
        emit(then_json(result, tx, ws, then))
    else:
        op_output(result, tx, ws, False)
        sys.stdout.write((message(then[0], then[1]) if then else awaiting_message(task)) + "\n")


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
    from ifcoord.core.ops import heartbeat as heartbeat_op

    allowed = ("polling", "working", "blocked", "idle", "offline", "done")
    if state is not None and state not in allowed:
        raise UsageError(f"unknown session state {state!r}", hint="use one of " + ", ".join(allowed))
    ws = workspace(session, remote, branch)
    result, tx = ws.apply(lambda s, c: heartbeat_op(s, c, state))
    op_output(result, tx, ws, as_json)


# -- the loop and the team ------------------------------------------------------------------------


def poll(
    ctx: typer.Context,
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

    Between cycles it also runs this user's other ifcoord commands, warm (`ifcoord serve`).

    Example: ifcoord poll --session session-4-sip --json   (one JSON event per line)
    """
    from ifcoord.cli.entry import command_server
    from ifcoord.session.loop import Event, PollLoop

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
            message = safe_markup(event.message)  # quotes board text: no escape sequences
            shown = f"[{style}]{event.name}[/{style}]" if style else event.name
            con.print(f"{when} {shown} {message}")

    loop = PollLoop(ws, show, claim=not no_claim, interval=interval)
    server = None if once else command_server(ctx)
    if server is not None:
        loop.stop.wait = server.wait
    try:
        code = loop.run(once=once)
    finally:
        if server is not None:
            server.close()
    raise typer.Exit(code)


def serve(
    ctx: typer.Context,
    idle_exit: float | None = typer.Option(
        None, "--idle-exit", min=0, help="Exit after this many seconds without a command."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="One line on stderr per command served."),
) -> None:
    """Run this user's ifcoord commands in one warm process, so each starts in milliseconds.

    A command started while a server of the same ifcoord runs is handed to it: the server forks
    a copy that already has everything imported, and the copy runs the command with the
    caller's arguments, folder, environment and terminal. A running `poll` serves too. Stops on
    SIGINT or SIGTERM (commands under way finish). IFCOORD_SERVER=0 turns serving off.

    Example: ifcoord serve --idle-exit 3600 &
    """
    import time

    from ifcoord.cli.entry import command_server
    from ifcoord.session.stopping import StopSignal

    server = command_server(ctx, (lambda line: note(f"ifcoord: {line}")) if verbose else None)
    if server is None:
        raise UsageError("serving is turned off (IFCOORD_SERVER=0)", hint="unset IFCOORD_SERVER")
    if not server.open():
        raise ConflictError(
            "a command server for this ifcoord already runs for this user",
            hint="commands already go to it; stop it first to start another",
        )
    note(f"ifcoord: serving commands (pid {os.getpid()}); stop with SIGINT or SIGTERM")
    stop = StopSignal(wait=server.wait)
    stop.install()
    try:
        while not stop.sleep(1.0):
            if idle_exit is not None and time.monotonic() - server.last_served >= idle_exit:
                break
    finally:
        server.close()
