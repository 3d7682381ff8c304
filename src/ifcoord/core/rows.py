"""Each task with what the whole branch says about it (readiness, unmet dependencies, a stale
owner), and the JSON shapes agents read (docs/protocol.md, section 10): a stable contract."""

from __future__ import annotations

from typing import Any, NamedTuple

from ifcoord.core import lifecycle
from ifcoord.core.scheduler import readiness, resolve_dependencies, task_dependencies
from ifcoord.models import SessionStatus, Snapshot, Task


class TaskRow(NamedTuple):
    """A task with what the whole branch says about it (a tuple: views build one per task)."""

    task: Task
    depends_on: list[str]
    unmet: list[str]
    ready: bool
    stale_owner: bool


def task_rows(
    snapshot: Snapshot, stale: frozenset[str] = frozenset(), deps: dict[str, list[str]] | None = None
) -> list[TaskRow]:
    """Every task's row; `deps`: `resolve_dependencies(snapshot.tasks())` when the caller has it."""
    tasks = snapshot.tasks()
    deps = resolve_dependencies(tasks) if deps is None else deps
    rows = []
    for board in snapshot.boards:
        for task in board.tasks:
            if tasks.get(task.id) is not task:
                continue  # a duplicate ID; lint reports it
            r = readiness(task, tasks, deps, stale)
            rows.append(
                TaskRow(
                    task,
                    deps.get(task.id, []),
                    list(r.unmet),
                    r.ready,
                    lifecycle.owner_is_stale(task, stale),
                )
            )
    return rows


def task_json(row: TaskRow, full: bool = False) -> dict[str, Any]:
    t = row.task
    out: dict[str, Any] = {
        "id": t.id,
        "title": t.title,
        "phase": t.phase,
        "kind": t.kind,
        "state": t.state,
        "owner": t.owner,
        "depends_on": row.depends_on,
        "unmet": row.unmet,
        "ready": row.ready,
        "progress": t.progress,
        "priority": t.priority,
        "epoch": t.epoch,
        "stale": row.stale_owner,
        "file": t.file,
        "line": t.line,
    }
    if full:
        out.update(
            {
                "sessions": t.sessions,
                "estimate": t.estimate,
                "deliverable": t.deliverable,
                "risk": t.risk,
                "model": t.model,
                "claimed_at": t.claimed_at.isoformat() if t.claimed_at else None,
                "previous_owner": t.previous_owner,
                "waiting_on": t.waiting_on,
                "block_reason": t.block_reason,
                "note": t.note,
                "tests": t.tests,
                "completed_at": t.completed_at.isoformat() if t.completed_at else None,
                "cancel_reason": t.cancel_reason,
                "milestones": [
                    {"text": m.text, "percent": m.percent, "done": m.done, "line": m.line}
                    for m in t.milestones
                ],
                "lists": t.lists,
                "extra": t.extra,
                "end_line": t.end_line,
            }
        )
    return out


def row_for(snapshot: Snapshot, task_id: str, stale: frozenset[str] = frozenset()) -> TaskRow | None:
    """`task_rows`' row for one task (the first task with that ID), without the rows of every
    other task: `next` and an operation's answer show one task of thousands."""
    tasks = snapshot.tasks()
    task = tasks.get(task_id)
    if task is None:
        return None
    deps = {task_id: task_dependencies(task, tasks)}
    r = readiness(task, tasks, deps, stale)
    return TaskRow(task, deps[task_id], list(r.unmet), r.ready, lifecycle.owner_is_stale(task, stale))


def status_json(status: SessionStatus, age: float | None, stale: bool) -> dict[str, Any]:
    data = status.model_dump(mode="json", exclude_none=False)
    data["heartbeat_age"] = None if age is None else round(age, 1)
    data["stale"] = stale
    return data
