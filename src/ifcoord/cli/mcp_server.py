"""`ifcoord mcp`: ifcoord's operations as MCP tools over stdio, for agents that speak MCP.

Every tool answers with the same JSON document the matching `--json` command prints
(docs/protocol.md, section 10). A refusal is an MCP tool error whose text starts with the exit code's
meaning, e.g. "conflict (exit 3): T1 is claimed by s2 ...". The `mcp` SDK is an optional
extra: it is imported here only, so no other command pays for it at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ifcoord.errors import EXIT_CODES, IfcoordError, UsageError

if TYPE_CHECKING:
    from ifcoord.core.snapshot import BranchState
    from ifcoord.session.workspace import Workspace

INSTRUCTIONS = (
    "ifcoord coordinates parallel coding sessions through a git branch. Call `now` to learn what "
    "to work on (it claims a task when you hold none); report with `progress`, finish with "
    "`complete`, and when stuck `block` or `release`; then call `now` again."
)


def _server_class() -> Any:
    """The SDK's high-level server: MCPServer in mcp 2, FastMCP in mcp 1."""
    try:
        from mcp.server.mcpserver import MCPServer

        return MCPServer
    except ImportError:
        try:
            from mcp.server.fastmcp import FastMCP  # type: ignore[attr-defined]  # mcp 1

            return FastMCP
        except ImportError:
            raise UsageError(
                "the MCP server needs the `mcp` package",
                hint="install it with `pip install 'ifcoord[mcp]'` (or `pip install mcp`)",
            ) from None


def _tool_error() -> type[Exception]:
    try:
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError:
        from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]
    return ToolError


class Tools:
    """The tools, as plain methods over a workspace (testable without the SDK)."""

    def __init__(self, session: str | None, remote: str | None, branch: str | None) -> None:
        self.session, self.remote, self.branch = session, remote, branch

    def ws(self) -> Workspace:
        from ifcoord.cli.common import workspace

        return workspace(self.session, self.remote, self.branch)

    def now(self, claim: bool = True) -> dict[str, Any]:
        from ifcoord.session.now import answer_json, ask

        answer, snapshot, stale = ask(self.ws(), claim=claim)
        return answer_json(answer, snapshot, stale)

    def next(self) -> dict[str, Any]:
        from ifcoord.core.rows import row_for, task_json
        from ifcoord.core.scheduler import next_for
        from ifcoord.files.config import phase_sort_key
        from ifcoord.session.now import require_branch

        ws = self.ws()
        state = ws.read()
        require_branch(ws, state)
        snap, stale = state.snapshot, ws.stale(state.snapshot)
        pick = next_for(ws.session, snap.tasks(), stale, lambda p: phase_sort_key(snap.config, p))
        row = row_for(snap, pick.task.id, stale) if pick.task else None
        return {"task": task_json(row) if row else None, "kind": pick.kind, "reason": pick.reason}

    def _op(self, operation: Callable[..., Any], task: str | None, **kw: Any) -> dict[str, Any]:
        from ifcoord.cli.common import op_json

        ws = self.ws()
        result, tx = ws.apply(operation, task_id=task, **kw)
        return op_json(result, tx, ws)

    def claim(self, task: str | None = None) -> dict[str, Any]:
        from ifcoord.core.ops import claim_next, claim_task

        if task is None:
            return self._op(claim_next, None)
        return self._op(lambda s, c: claim_task(s, task, c), task)

    def progress(
        self,
        task: str,
        percent: int,
        note: str | None = None,
        tests_passed: int | None = None,
        tests_failed: int | None = None,
    ) -> dict[str, Any]:
        from ifcoord.core.ops import progress_task

        return self._op(
            lambda s, c: progress_task(s, task, percent, c, note, tests_passed, tests_failed), task
        )

    def block(self, task: str, on: list[str] | None = None, reason: str | None = None) -> dict[str, Any]:
        from ifcoord.core.ops import block_task

        return self._op(lambda s, c: block_task(s, task, list(on or []), c, reason), task)

    def unblock(self, task: str) -> dict[str, Any]:
        from ifcoord.core.ops import unblock_task

        return self._op(lambda s, c: unblock_task(s, task, c), task)

    def complete(
        self,
        task: str,
        deliverable: str | None = None,
        tests_passed: int | None = None,
        tests_failed: int | None = None,
        next: bool = False,  # noqa: A002 - the tool's parameter, named as the CLI's --next
    ) -> dict[str, Any]:
        from ifcoord.core.ops import complete_task

        op = lambda s, c: complete_task(s, task, c, deliverable, tests_passed, tests_failed)  # noqa: E731
        return self._finish(op, task, next)

    def release(self, task: str, next: bool = False) -> dict[str, Any]:  # noqa: A002
        from ifcoord.core.ops import release_task

        return self._finish(lambda s, c: release_task(s, task, c), task, next)

    def _finish(self, operation: Callable[..., Any], task: str, then_next: bool) -> dict[str, Any]:
        """`complete`/`release`; with next, `now`'s answer too, under "next", from the same turn at
        the branch (as `ifcoord complete --next --json`)."""
        if not then_next:
            return self._op(operation, task)
        from ifcoord.cli.common import then_json
        from ifcoord.session.now import then_ask

        ws = self.ws()
        result, tx, then = then_ask(ws, operation, task)
        return then_json(result, tx, ws, then)

    def _read(self) -> tuple[BranchState, frozenset[str], Workspace | None]:
        from ifcoord.cli.common import read_state

        return read_state(None, self.remote, self.branch, self.session)

    def board(self, phase: str | None = None) -> dict[str, Any]:
        from ifcoord.core.rows import task_json, task_rows

        state, stale, _ = self._read()
        rows = [r for r in task_rows(state.snapshot, stale) if phase is None or r.task.phase == phase]
        return {"commit": state.commit, "tasks": [task_json(r) for r in rows]}

    def show(self, task: str) -> dict[str, Any]:
        from ifcoord.core.ops import find_task
        from ifcoord.core.rows import row_for, task_json

        state, stale, _ = self._read()
        row = row_for(state.snapshot, find_task(state.snapshot, task).id, stale)
        return {"task": task_json(row, full=True) if row else None}

    def status(self) -> dict[str, Any]:
        from ifcoord.views.terminal import session_rows

        state, stale, _ = self._read()
        return {"commit": state.commit, "sessions": session_rows(state.snapshot, stale)}

    def brief(self, session: str | None = None) -> str:
        from ifcoord.views.brief import render_brief

        state, stale, ws = self._read()
        assert ws is not None  # _read reads the branch, never a folder
        name = session or ws.session
        return render_brief(state.snapshot, name, stale, ws.remote, ws.branch)


TOOL_DOCS = {
    "now": "What this session should do now, from the branch; claims a task when it holds none "
    "(claim=false: only answer). action: work, switch, unblock, wait or done.",
    "next": "The scheduler's pick for this session, without claiming it.",
    "claim": "Claim a task by ID, or the scheduler's pick when no ID is given. Exactly one session wins.",
    "progress": "Report progress (0-100) on a task you hold; ticks its milestones.",
    "block": "Mark a task you hold as blocked, with the task IDs it waits on.",
    "unblock": "Put a blocked task you hold back in progress.",
    "complete": "Mark a task you hold as done (next=true: then, in the same turn at the branch, "
    "what `now` answers, with the task it claims for you, under `next`).",
    "release": "Give a task you hold back (open again); next=true as for complete.",
    "board": "Every task with state, owner, dependencies and progress (optionally one phase).",
    "show": "One task in full.",
    "status": "Every session: state, current task, heartbeat age, stale leases.",
    "brief": "A session's instruction sheet (markdown): its tasks, fillers, and how to work.",
}


def error_text(exc: IfcoordError) -> str:
    """The exit code's meaning first, so an agent can act on the kind of failure."""
    return f"{EXIT_CODES.get(exc.exit_code, 'error')} (exit {exc.exit_code}): {exc.line()}"


def build_server(session: str | None, remote: str | None, branch: str | None) -> Any:
    server_class = _server_class()
    tool_error = _tool_error()
    tools = Tools(session, remote, branch)
    server = server_class("ifcoord", instructions=INSTRUCTIONS)

    def wrap(name: str) -> Callable[..., Any]:
        method = getattr(tools, name)

        def call(*args: Any, **kwargs: Any) -> str:
            try:
                out = method(*args, **kwargs)
            except IfcoordError as exc:
                raise tool_error(error_text(exc)) from None
            return out if isinstance(out, str) else json.dumps(out, ensure_ascii=False, default=str)

        # The SDK derives each tool's input schema from the signature.
        call.__signature__ = _signature_returning_str(method)  # type: ignore[attr-defined]
        call.__name__ = name
        call.__doc__ = TOOL_DOCS[name]
        return call

    for name in TOOL_DOCS:
        server.tool(name=name, description=TOOL_DOCS[name])(wrap(name))
    return server


def _signature_returning_str(method: Callable[..., Any]) -> Any:
    import inspect
    import typing

    sig = inspect.signature(method)
    hints = typing.get_type_hints(method)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=str)


def serve(session: str | None, remote: str | None, branch: str | None) -> None:
    """Run the server on stdin/stdout until the client closes it."""
    build_server(session, remote, branch).run("stdio")
