"""Commands for agents that do not keep a loop running: `now`, `events`, `agent ...`, `mcp`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from ifcoord.agent.claude import DEFAULT_MAX_BLOCKS, DEFAULT_STOP_WAIT
from ifcoord.cli.common import BranchOpt, JsonOpt, RemoteOpt, SessionOpt, emit, note, workspace
from ifcoord.errors import UsageError

agent_app = typer.Typer(
    name="agent",
    help="Connect an agent client (Claude Code hooks, AGENTS.md/CLAUDE.md text) to ifcoord.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("now")(now)
    app.command("events")(events)
    app.command("mcp")(mcp)
    app.add_typer(agent_app)
    agent_app.command("install")(install)
    agent_app.command("uninstall")(uninstall)
    agent_app.command("snippet")(snippet)
    agent_app.command("hook")(hook)


def now(
    session: str | None = SessionOpt,
    no_claim: bool = typer.Option(False, "--no-claim", help="Answer, but never claim."),
    wait: float = typer.Option(
        0.0, "--wait", help="Seconds to wait, looking at the poll interval, until there is something to do."
    ),
    interval: float | None = typer.Option(
        None, "--interval", help="Seconds between looks while waiting (default: poll_seconds)."
    ),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """What this session should do now, from the coordination branch alone; claims when it holds nothing.

    Answers one of: work on a task, finish or release a filler (your primary is ready), unblock a
    task, nothing ready (waiting on ...), or the board is done. Exit 4 when nothing is ready.
    Example: ifcoord now --json   |   ifcoord now --wait 600
    """
    from ifcoord.session.now import answer_json, ask, message
    from ifcoord.session.stopping import StopSignal

    if wait < 0:
        raise UsageError("--wait must be 0 or more seconds", hint="e.g. `ifcoord now --wait 600`")
    ws = workspace(session, remote, branch)
    answer, snapshot, stale = ask(ws, claim=not no_claim)
    deadline = time.monotonic() + wait
    stop = StopSignal()
    if wait > 0:
        stop.install()
    while answer.action == "wait" and time.monotonic() < deadline:
        step = interval if interval is not None else snapshot.config.poll_seconds
        if stop.sleep(min(step, max(0.0, deadline - time.monotonic()))):
            break
        answer, snapshot, stale = ask(ws, claim=not no_claim)
    if as_json:
        emit(answer_json(answer, snapshot, stale))
    else:
        sys.stdout.write(message(answer, snapshot) + "\n")
    if answer.action == "wait":
        raise typer.Exit(4)


def events(
    since: int = typer.Option(0, "--since", help="Only events with a larger `seq`."),
    session: str | None = typer.Option(None, "--session", "-s", help="Only this session's events."),
    as_json: bool = JsonOpt,
) -> None:
    """The loop's events in this clone (the log under .git/ifcoord/), one per line, from --since on.

    Example: ifcoord events --since 41 --json
    """
    from ifcoord.git.runner import find_repository
    from ifcoord.session.loop import EventLog

    git_dir, _ = find_repository(Path.cwd())
    for event in EventLog(git_dir / "ifcoord").read(since, session):
        if as_json:
            emit(event)
        else:
            sys.stdout.write(
                f"{event.get('seq')} {event.get('time')} {event.get('session')} {event.get('event')} "
                f"{event.get('message', '')}\n"
            )


def mcp(
    session: str | None = SessionOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
) -> None:
    """Serve ifcoord's operations to an agent as MCP tools over stdio (needs `pip install 'ifcoord[mcp]'`).

    Example (Claude Code): claude mcp add ifcoord -- ifcoord mcp --session session-4-sip
    """
    from ifcoord.cli.mcp_server import serve

    serve(session, remote, branch)


# -- agent install / uninstall / snippet / hook ------------------------------------------------


def install(
    client: str = typer.Argument(..., help="The agent client: claude."),
    session: str | None = typer.Option(
        None, "--session", "-s", help="Session name the SessionStart hook joins when the clone has none."
    ),
    stop_wait: float = typer.Option(
        DEFAULT_STOP_WAIT,
        "--stop-wait",
        help="Seconds the Stop hook waits for work before letting the agent stop.",
    ),
    max_blocks: int = typer.Option(
        DEFAULT_MAX_BLOCKS,
        "--max-blocks",
        help="Consecutive instructions after which the Stop hook lets the agent stop.",
    ),
    deny: bool = typer.Option(
        False, "--deny-others", help="Refuse (not just warn about) edits of another session's deliverables."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Merge ifcoord's hooks into .claude/settings.json; other hooks stay, installing twice changes nothing.

    Example: ifcoord agent install claude --session session-4-sip
    """
    from ifcoord.agent.claude import InstallOptions
    from ifcoord.agent.claude import install as install_hooks

    top = _top(client)
    if session is not None:
        from ifcoord.session.workspace import check_session_name

        check_session_name(session)
    opts = InstallOptions(session=session, stop_wait=stop_wait, max_blocks=max_blocks, deny_others=deny)
    path, changed = install_hooks(top, opts)
    if as_json:
        emit({"settings": str(path), "changed": changed})
    else:
        note(f"{'installed ifcoord hooks in' if changed else 'ifcoord hooks already in'} {path}")


def uninstall(
    client: str = typer.Argument(..., help="The agent client: claude."), as_json: bool = JsonOpt
) -> None:
    """Remove ifcoord's hooks (and only them) from .claude/settings.json.

    Example: ifcoord agent uninstall claude
    """
    from ifcoord.agent.claude import uninstall as uninstall_hooks

    path, changed = uninstall_hooks(_top(client))
    if as_json:
        emit({"settings": str(path), "changed": changed})
    else:
        note(f"{'removed ifcoord hooks from' if changed else 'no ifcoord hooks in'} {path}")


def snippet() -> None:
    """Print the text to paste into CLAUDE.md or AGENTS.md.

    Example: ifcoord agent snippet >> AGENTS.md
    """
    from ifcoord.agent.claude import SNIPPET

    sys.stdout.write(SNIPPET)


def hook(
    event: str = typer.Argument(..., help="session-start, stop, pre-tool-use or session-end."),
    session: str | None = typer.Option(
        None, "--session", "-s", help="Session to join when the clone has none."
    ),
    wait: float = typer.Option(
        DEFAULT_STOP_WAIT, "--wait", help="Stop: seconds to wait for work before allowing the stop."
    ),
    max_blocks: int = typer.Option(
        DEFAULT_MAX_BLOCKS, "--max-blocks", help="Stop: consecutive blocks before allowing the stop."
    ),
    interval: float | None = typer.Option(
        None, "--interval", help="Stop: seconds between looks while waiting."
    ),
    deny: bool = typer.Option(False, "--deny", help="PreToolUse: refuse instead of warning."),
) -> None:
    """What the installed Claude Code hooks run: hook JSON on stdin, the documented JSON on stdout.

    Example: echo '{"stop_hook_active": false}' | ifcoord agent hook stop
    """
    from ifcoord.agent.claude import EVENTS, HookOptions, run_hook

    if event not in EVENTS:
        raise UsageError(f"unknown hook event {event!r}", hint="use one of " + ", ".join(EVENTS))
    raw = sys.stdin.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise UsageError(f"hook input is not JSON: {exc}", hint="Claude Code passes one JSON object") from exc
    if not isinstance(data, dict):
        raise UsageError("hook input is not a JSON object", hint="Claude Code passes one JSON object")
    opts = HookOptions(session=session, wait=wait, max_blocks=max_blocks, deny=deny, interval=interval)
    # The session named at install counts only when the clone has none of its own.
    out = run_hook(event, data, opts, lambda: workspace(None, None, None))
    sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")


def _top(client: str) -> Path:
    from ifcoord.git.runner import find_repository

    if client != "claude":
        raise UsageError(
            f"unknown agent client {client!r}",
            hint="`claude` is supported; for others use `ifcoord agent snippet` and `ifcoord now --wait`",
        )
    _, top = find_repository(Path.cwd())
    if top is None:
        raise UsageError("this clone has no work tree", hint="run it inside your repository's work tree")
    return top
