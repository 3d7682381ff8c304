"""`ifcoord arbitrate`: for own-branch mode, run by whoever may push the coordination branch.

It folds the settled claims, progress and completions of every session branch into the boards
(owners, states, milestones), copies each session's STATUS next to them and rewrites the
dashboard, in one commit, so people see the whole team on the coordination branch and settled
claims become board facts that every reader honours. Nothing changed: no commit.
"""

from __future__ import annotations

from typing import Any

from ifcoord.core.snapshot import BranchState
from ifcoord.core.writeback import dashboard_change
from ifcoord.git.transaction import Change, jitter
from ifcoord.session.stopping import StopSignal


def arbitrate_once(ws) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """One fold; returns what changed."""
    heads = ws.transactor.retrying(ws.store.list_heads)

    def decide(coord: BranchState) -> Change:
        merged = ws.merge_session_branches(coord, heads)  # boards already read as folded
        snapshot = merged.snapshot
        files: dict[str, bytes | None] = {
            b.path: merged.raw[b.path] for b in snapshot.boards if merged.raw[b.path] != coord.raw.get(b.path)
        }
        for session_file in ws.session_files.values():
            if coord.raw.get(session_file.path) != session_file.data:
                files[session_file.path] = session_file.data
        if ws.dashboard is not None and snapshot.config.dashboard:
            files.update(dashboard_change(coord.raw, files, ws.dashboard, base=merged.raw))
        changed = sorted(files)
        return Change(
            files,
            f"ifcoord: arbitrate by {ws.transactor.author}",
            {"Ifcoord-Op": "arbitrate", "Ifcoord-Session": ws.transactor.author},
            payload=changed,
        )

    tx = ws.transactor.run(decide)
    return {"commit": tx.commit, "changed": tx.landed, "files": tx.payload or []}


def arbitrate_forever(ws, interval: float, report, stop: StopSignal) -> None:  # type: ignore[no-untyped-def]
    from ifcoord.errors import IfcoordError

    while not stop.requested:
        try:
            report(arbitrate_once(ws))
        except IfcoordError as exc:
            report({"error": exc.line()})
        stop.sleep(jitter(interval))
