"""What every command shares: the common options, output helpers, and opening a workspace."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ifcoord.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from ifcoord.core.ops import OpResult
    from ifcoord.core.snapshot import BranchState
    from ifcoord.git.transaction import TxResult
    from ifcoord.session.workspace import Workspace

_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

# Options shared by many commands.
SessionOpt = typer.Option(
    None, "--session", "-s", help="Session name (else IFCOORD_SESSION, else `ifcoord join`)."
)
RemoteOpt = typer.Option(None, "--remote", help="Git remote name or URL (default: origin).")
BranchOpt = typer.Option(None, "--branch", help="Coordination branch (default: ifcoord).")
JsonOpt = typer.Option(
    False, "--json", help="Print JSON for agents: one document (`poll`: one event per line)."
)
DirOpt = typer.Option(None, "--dir", help="Read boards from this folder instead of the branch.")
ForceOpt = typer.Option(
    False, "--force", help="For humans: do it even though it is refused; recorded as forced."
)
EpochOpt = typer.Option(None, "--epoch", min=0, help="The fencing number you hold (from `claim --json`).")
NextAfterOpt = typer.Option(
    False, "--next", help="Then answer as `now` does (it claims your next task), in the same turn."
)


def emit(data: Any) -> None:
    # json escapes C0 controls but not C1 (U+009B is a one-character CSI) or bidi overrides
    text = _JSON_UNSAFE.sub(
        lambda m: f"\\u{ord(m.group()):04x}", json.dumps(data, ensure_ascii=False, default=str)
    )
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def note(message: str) -> None:
    """A message for the person: stderr, so that --json stdout stays one document. Reasons and
    notes quote board text, so control characters are shown as escapes (views/text.py)."""
    from ifcoord.views.text import safe

    sys.stderr.write(safe(message, lines=True) + "\n")


def workspace(session: str | None = None, remote: str | None = None, branch: str | None = None) -> Workspace:
    from ifcoord.session.workspace import Workspace
    from ifcoord.views.dashboard import render_dashboard

    return Workspace(session=session, remote=remote, branch=branch, dashboard=render_dashboard)


def read_state(
    dir: Path | None, remote: str | None, branch: str | None, session: str | None = None
) -> tuple[BranchState, frozenset[str], Workspace | None]:
    """The state to show: a folder (--dir), else the coordination branch's remote tip."""
    from ifcoord.core.snapshot import load_folder

    if dir is not None:
        return load_folder(dir), frozenset(), None
    ws = workspace(session, remote, branch)
    state, offline = ws.read_for_view()
    if offline:
        note(f"warning: {offline}")
    if state.commit is None:
        raise UsageError(
            f"no branch {ws.branch} on {ws.remote}",
            hint="create it with `ifcoord init`, or pass --branch/--remote (or --dir for files)",
        )
    return state, ws.stale(state.snapshot), ws


def op_json(result: OpResult, tx: TxResult, ws: Workspace) -> dict[str, Any]:
    """An operation's JSON answer (docs/protocol.md, section 10), with the task as it is after the change."""
    from ifcoord.core.rows import row_for, task_json
    from ifcoord.ownbranch.proposals import Proposed

    proposed = tx.payload if isinstance(tx.payload, Proposed) else None
    row = None
    if result.task_id and tx.state is not None:
        after = ws.read(fetch=False) if tx.landed else tx.state
        row = row_for(after.snapshot, result.task_id, frozenset())
    return {
        "task": task_json(row) if row else None,
        "op": result.op,
        "reason": result.reason,
        "epoch": result.epoch,
        "commit": tx.commit,
        "changed": tx.landed,
        "forced": result.forced,
        "attempts": tx.attempts,
        "op_id": tx.op_id,
        "proposed": proposed.seq if proposed else None,  # own-branch: pending, not decided
    }


def then_json(result: OpResult, tx: TxResult, ws: Workspace, then: Any) -> dict[str, Any]:
    """`complete --next` / `release --next` (and the MCP tools' next): the operation's object
    with `now`'s answer under "next" (`then`: session/now.py then_ask's; null in own-branch mode)."""
    from ifcoord.session.now import answer_json

    return {**op_json(result, tx, ws), "next": answer_json(*then) if then else None}


def op_output(result: OpResult, tx: TxResult, ws: Workspace, as_json: bool) -> None:
    if as_json:
        emit(op_json(result, tx, ws))
    else:
        note(result.reason + ("" if tx.landed else " (no change)"))


def readable_metavars(command: Any) -> None:
    """Name every placeholder in help for people (`TASK`, `--note TEXT`, `--interval SECONDS`)
    instead of the framework's `{task}` and `<list[Path]>`; a declared metavar is kept."""
    for param in getattr(command, "params", []):
        if param.param_type_name == "argument":
            name = param.metavar or (param.name or "value").upper()
            param.metavar = name
            usage = name if param.required else f"[{name}]"
            # typer writes `{TASK}` in the usage line and `TASK <str>` in the list: say `TASK`.
            param._usage_display_name = lambda usage=usage: usage
            param.display_type_rich = lambda ctx: None
            continue
        if param.metavar is not None or getattr(param, "is_flag", False):
            continue
        kind = str(getattr(getattr(param, "type_descriptor", None), "annotation", "")).lower()
        if "path" in kind:
            param.metavar = "PATH"
        elif kind == "<class 'int'>":
            param.metavar = "N"
        elif kind == "<class 'float'>":
            param.metavar = "SECONDS"
        else:  # text: the option's own name, `--note NOTE`, `--remote REMOTE`
            param.metavar = max(param.opts, key=len).lstrip("-").upper()
    for sub in getattr(command, "commands", {}).values():
        readable_metavars(sub)


TestsPassedOpt = typer.Option(
    None, "--tests-passed", min=0, help="How many tests pass now; written on the task's Tests line."
)
TestsFailedOpt = typer.Option(
    None, "--tests-failed", min=0, help="How many tests fail now; written on the task's Tests line."
)
