"""From an operation's decision to the new bytes of the files it touches (pure).

Boards go through the round-trip editor, the session's STATUS file through the round-trip YAML
writer, and the generated dashboard is rendered from the state after the change.
"""

from __future__ import annotations

from collections.abc import Callable

from ifcoord.core.ops import OpResult
from ifcoord.core.snapshot import DASHBOARD_PATH as DASHBOARD_PATH  # re-exported for callers
from ifcoord.core.snapshot import BranchState, build_snapshot, dashboard_target, remember_edited_board
from ifcoord.errors import InvalidData
from ifcoord.files.board import edit_board
from ifcoord.files.status import render_status, status_path_for
from ifcoord.models import Board, Snapshot

DashboardRenderer = Callable[[Snapshot], str]


def changed_files(
    state: BranchState,
    result: OpResult,
    session: str,
    dashboard: DashboardRenderer | None = None,
) -> dict[str, bytes | None]:
    """New contents of every file the result changes (board, status, dashboard)."""
    if not result.changed:
        return {}
    files: dict[str, bytes | None] = {}
    if result.board_edits:
        config = state.snapshot.config
        read: dict[str, Board | None] = {}  # each board as its latest text reads
        for task_id in {e.task_id for e in result.board_edits}:
            board = state.snapshot.board_of(task_id)
            if board is None:
                continue
            old = files.get(board.path) or state.raw[board.path]
            assert old is not None
            edits = [e for e in result.board_edits if e.task_id == task_id]
            # the snapshot's board is its raw text's reading (the parse cache's, or decode_board's)
            parsed = read.get(board.path, board)
            text, after = edit_board(board.path, old.decode("utf-8"), edits, list(config.phases), parsed)
            read[board.path] = after
            data = text.encode("utf-8")
            files[board.path] = data
            remember_edited_board(board.path, data, config, after)
    if result.status_updates or result.status_remove:
        path = state.snapshot.status_paths.get(session) or status_path_for(session, list(state.raw), None)
        if path in state.blocked:
            raise InvalidData(
                f"{path} on the branch is a folder, a symlink or a gitlink, not {session}'s STATUS file",
                hint="ifcoord never writes over it: move it away with git, then run the command again",
            )
        if path in state.raw and session not in state.snapshot.statuses:
            # Rewriting it would erase what a person or another tool wrote there (a wrong
            # `session:`, a bad timestamp): the spec says such a file is refused, not rewritten.
            why = next((d.message for d in state.snapshot.diagnostics if d.file == path), "unreadable")
            line = next((d.line for d in state.snapshot.diagnostics if d.file == path and d.line), None)
            raise InvalidData(
                f"{session}'s STATUS file cannot be read: {why}", file=path, line=line,
                hint="fix the file on the branch (`ifcoord lint` shows every problem); "
                "ifcoord does not rewrite it",
            )  # fmt: skip
        updates = {"session": session, **result.status_updates}
        files[path] = render_status(state.raw.get(path), updates, list(result.status_remove), path=path)
    if (
        dashboard is not None
        and state.snapshot.config.dashboard
        and not heartbeat_only(state, result, session)
    ):
        files.update(dashboard_change(state.raw, files, dashboard, blocked=state.blocked))
    return files


def dashboard_change(
    raw: dict[str, bytes],
    files: dict[str, bytes | None],
    dashboard: DashboardRenderer,
    base: dict[str, bytes] | None = None,
    blocked: frozenset[str] = frozenset(),
) -> dict[str, bytes | None]:
    """The dashboard for the branch as it will be once `files` are written over `raw` (or over
    `base`, when the files read differ from the tip's, as the arbiter's folded boards do): the one
    place it is refreshed (operations, `task add`, the arbiter). Empty when it would not change.

    It is written only over a file that carries its generated marker (or none): a person's own
    boards/README.md is left alone and the dashboard goes to IFCOORD-DASHBOARD.md (lint says so)."""
    target = dashboard_target(raw, blocked)
    if target is None:
        return {}
    start = raw if base is None else base
    after = build_snapshot({**start, **{k: v for k, v in files.items() if v is not None}})
    text = dashboard(after).encode("utf-8")
    return {} if raw.get(target) == text else {target: text}


def heartbeat_only(state: BranchState, result: OpResult, session: str) -> bool:
    """A heartbeat that changes nothing a person reads on the dashboard but the time: the
    dashboard is not rewritten for it (an idle team's heartbeats stay small)."""
    if result.board_edits or result.op != "heartbeat":
        return False
    status = state.snapshot.statuses.get(session)
    if status is None:
        return False
    keys = set(result.status_updates) - {"last_poll"}
    return all(getattr(status, k, None) == result.status_updates[k] for k in keys)
