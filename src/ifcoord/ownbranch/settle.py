"""Own-branch mode, the pure part: claims that live in each session's STATUS file on its own
branch, and the one rule every reader uses to settle them (docs/modes.md).

A session records each operation on a task as a *claim entry* in its STATUS file:

    clock: 7                      # the session's logical clock (Lamport)
    claims:
      - task: T1
        clock: 5                  # the clock at which the claim was made
        state: in_progress
        fields: {owner: s1, epoch: '1', progress: 50%}
        ticked: 50                # milestones ticked up to this percent

The entry is the same edit the shared mode would make to the board. Settling is then just
"apply the winning entries to the board", which readers do in memory and the arbiter does
for real on the coordination branch, so both always agree.

The winner for a task, computed alike by every reader and trusting no wall clock:
1. a board owner who is a live session is a settled fact: only their entry counts;
2. otherwise the entries of live sessions, and completed entries of any session, compete;
   an entry made by taking over from a stale owner voids that owner's older entry;
3. the lowest (clock, session name) wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ifcoord.core.ops import OpResult
from ifcoord.files.board import BoardEdit, apply_edits
from ifcoord.models import SessionStatus, Snapshot

CLAIMING_OPS = ("claim", "reclaim")


@dataclass(frozen=True)
class Entry:
    session: str
    task: str
    clock: int
    state: str | None
    fields: dict[str, str]
    ticked: int | None

    def as_edit(self) -> BoardEdit:
        return BoardEdit(
            task_id=self.task,
            fields=dict(self.fields),
            state=self.state,  # type: ignore[arg-type]
            tick_milestones_upto=self.ticked,
        )


def entries_of(status: SessionStatus) -> list[Entry]:
    out = []
    for raw in status.claims:
        if not isinstance(raw, dict) or not raw.get("task"):
            continue
        fields = raw.get("fields") or {}
        out.append(
            Entry(
                session=status.session,
                task=str(raw["task"]),
                clock=int(raw.get("clock") or 0),
                state=raw.get("state"),
                fields={str(k): str(v) for k, v in fields.items() if v is not None},
                ticked=int(raw["ticked"]) if raw.get("ticked") is not None else None,
            )
        )
    return out


def next_clock(statuses: Iterable[SessionStatus]) -> int:
    """One more than the largest clock seen anywhere (Lamport)."""
    seen = [0]
    for status in statuses:
        seen.append(status.clock or 0)
        seen.extend(e.clock for e in entries_of(status))
    return max(seen) + 1


def record(claims: list[dict[str, Any]], result: OpResult, clock: int) -> list[dict[str, Any]]:
    """The session's claim entries after `result`: what shared mode would write to the board."""
    out = [dict(c) for c in claims if isinstance(c, dict)]
    for edit in result.board_edits:
        entry = next((c for c in out if c.get("task") == edit.task_id), None)
        if "owner" in edit.fields and edit.fields["owner"] is None:
            if entry is not None:
                out.remove(entry)  # released: the claim is withdrawn
            continue
        if entry is None or result.op in CLAIMING_OPS:
            if entry is not None:
                out.remove(entry)
            entry = {"task": edit.task_id, "clock": clock, "fields": {}}
            out.append(entry)
        fields = dict(entry.get("fields") or {})
        for key, value in edit.fields.items():
            if value is None:
                fields.pop(key, None)
            else:
                fields[key] = value
        entry["fields"] = fields
        if edit.state:
            entry["state"] = edit.state
        if edit.tick_milestones_upto is not None:
            entry["ticked"] = max(int(entry.get("ticked") or 0), edit.tick_milestones_upto)
    return out


def drop(claims: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    return [c for c in claims if not (isinstance(c, dict) and c.get("task") == task_id)]


def winners(snapshot: Snapshot, stale: frozenset[str]) -> dict[str, Entry]:
    """The settled claim entry of every task that has one."""
    tasks = snapshot.tasks()
    by_task: dict[str, list[Entry]] = {}
    for status in snapshot.statuses.values():
        for entry in entries_of(status):
            if entry.task in tasks:
                by_task.setdefault(entry.task, []).append(entry)
    out: dict[str, Entry] = {}
    for task_id, entries in by_task.items():
        task = tasks[task_id]
        owner = task.owner
        if owner and owner in snapshot.statuses and owner not in stale:
            entries = [e for e in entries if e.session == owner]
        superseded = {
            (e.fields["previous_owner"], e.clock) for e in entries if e.fields.get("previous_owner")
        }
        alive = [
            e for e in entries
            if (e.state == "done" or e.session not in stale)
            and not any(prev == e.session and e.clock < clock for prev, clock in superseded)
        ]  # fmt: skip
        if alive:
            out[task_id] = min(alive, key=lambda e: (e.clock, e.session))
    return out


def fold_edits(snapshot: Snapshot, stale: frozenset[str]) -> list[BoardEdit]:
    """Board edits that make the boards say what the settled claims say."""
    won = winners(snapshot, stale)
    edits = [entry.as_edit() for entry in won.values()]
    for task in snapshot.tasks().values():
        if task.id in won or not task.owner or task.state in ("done", "cancelled"):
            continue
        status = snapshot.statuses.get(task.owner)
        if status is not None and task.owner not in stale:
            # A session the board names, that no longer claims the task: it released it.
            edits.append(BoardEdit(task_id=task.id, fields={"owner": None, "claimed_at": None}, state="open"))
    return edits


def folded_boards(snapshot: Snapshot, raw: dict[str, bytes], stale: frozenset[str]) -> dict[str, bytes]:
    """New bytes of every board whose text changes when the settled claims are folded in."""
    by_path: dict[str, list[BoardEdit]] = {}
    for edit in fold_edits(snapshot, stale):
        board = snapshot.board_of(edit.task_id)
        if board is not None:
            by_path.setdefault(board.path, []).append(edit)
    out: dict[str, bytes] = {}
    for path, edits in by_path.items():
        old = raw[path]
        new = apply_edits(path, old.decode("utf-8"), edits).encode("utf-8")
        if new != old:
            out[path] = new
    return out
