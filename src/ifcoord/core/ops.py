"""The operations: each turns a snapshot into board edits and a status update, or refuses with
the reason (docs/protocol.md, section 4). Pure: no git, no clock, no files.

Whether an operation may run at all is decided by the lifecycle table (core/lifecycle.py); this
module says what each one writes. Where is a claim decided? `lifecycle.check`, called by
`claim_task` on the snapshot at the branch tip it will commit on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ifcoord.core import lifecycle
from ifcoord.core.scheduler import may_take, task_dependencies
from ifcoord.errors import ConflictError, NotReady, UsageError
from ifcoord.files.board import BoardEdit
from ifcoord.models import Snapshot, State, Task


@dataclass(frozen=True)
class OpContext:
    """Who acts, when, and what they know (passed in by the shell)."""

    session: str
    now: datetime
    stale: frozenset[str] = frozenset()  # sessions whose lease is stale
    held_epoch: int | None = None  # the fencing number this session holds for the task, if known
    force: bool = False


@dataclass
class OpResult:
    """What an operation decided: edits to make, and what to tell the caller."""

    op: str
    task_id: str | None
    reason: str
    board_edits: list[BoardEdit] = field(default_factory=list)
    status_updates: dict[str, Any] = field(default_factory=dict)
    status_remove: list[str] = field(default_factory=list)
    epoch: int | None = None
    forced: bool = False
    changed: bool = True  # False: nothing to write (e.g. claiming a task already held)
    extra_trailers: dict[str, str] = field(default_factory=dict)
    pick: Any = None  # claim_next: the scheduler's Pick it took

    def subject(self, session: str) -> str:
        what = f" {self.task_id}" if self.task_id else ""
        return f"ifcoord: {self.op}{what} by {session}"

    def trailers(self, session: str) -> dict[str, str]:
        out = {"Ifcoord-Op": self.op}
        if self.task_id:
            out["Ifcoord-Task"] = self.task_id
        out["Ifcoord-Session"] = session
        if self.epoch is not None:
            out["Ifcoord-Epoch"] = str(self.epoch)
        if self.forced:
            out["Ifcoord-Forced"] = "true"
        out.update(self.extra_trailers)
        return out


def iso(ts: datetime) -> str:
    """UTC, second precision, `Z`: the one timestamp form ifcoord writes."""
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_task(snapshot: Snapshot, task_id: str) -> Task:
    tasks = snapshot.tasks()
    if task_id in tasks:
        return tasks[task_id]
    folded = {k.lower(): v for k, v in tasks.items()}
    if task_id.lower() in folded:
        return folded[task_id.lower()]
    raise UsageError(
        f"no task {task_id} on any board",
        hint="run `ifcoord board` to list task IDs",
    )


def verdict(
    op: str, snapshot: Snapshot, task: Task, ctx: OpContext, unmet: list[str] | None = None
) -> lifecycle.Verdict:
    """Ask the lifecycle table; raises the refusal."""
    return lifecycle.check(
        op,
        task,
        ctx.session,
        stale=ctx.stale,
        force=ctx.force,
        held_epoch=ctx.held_epoch,
        unmet=unmet or (),
        tasks=snapshot.tasks(),
    )


def no_status_refusal(snapshot: Snapshot, task: Task, ctx: OpContext) -> ConflictError | None:
    """A claim of a task whose owner has no readable STATUS file: no heartbeat can ever go
    stale, so "wait for the lease" would be forever; say what ends it instead."""
    if ctx.force or not task.owner or task.owner == ctx.session or task.state not in lifecycle.HELD:
        return None
    if task.owner in snapshot.statuses or task.owner in ctx.stale:
        return None
    path = snapshot.status_paths.get(task.owner)
    why = f"its STATUS file {path} cannot be read" if path else "it has no STATUS file"
    return ConflictError(
        f"{task.id} is held by {task.owner}, and {why}, "
        "so the claim reads as a person's and never goes stale",
        hint=(f"fix {path} (`ifcoord lint` says what is wrong)" if path else
              f"if {task.owner} is a session that is gone, a person may take the task with --force")
        + "; or take a ready task (`ifcoord claim --next`)",
    )  # fmt: skip


def unchanged(op: str, task: Task, why: lifecycle.Verdict) -> OpResult:
    return OpResult(op, task.id, why.reason, epoch=task.epoch, changed=False)


# -- operations -------------------------------------------------------------------------------


def claim_task(snapshot: Snapshot, task_id: str, ctx: OpContext, op: str = "claim") -> OpResult:
    """Claim (or, with op="reclaim", take over from a stale owner) one task."""
    task = find_task(snapshot, task_id)
    tasks = snapshot.tasks()
    if not ctx.force and not lifecycle.holds(task, ctx.session) and not may_take(task, ctx.session):
        raise ConflictError(
            f"{task.id} is reserved for {', '.join(task.sessions)}, not {ctx.session}",
            hint="take a task meant for this session (`ifcoord next`)",
        )
    if (refusal := no_status_refusal(snapshot, task, ctx)) is not None:
        raise refusal
    unmet = lifecycle.unmet_dependencies(task, tasks, {task.id: task_dependencies(task, tasks)})
    v = verdict(op, snapshot, task, ctx, unmet)
    if v.no_change:
        return unchanged(op, task, v)
    stale_owner = lifecycle.owner_is_stale(task, ctx.stale)
    epoch = task.epoch + 1
    fields: dict[str, str | None] = {
        "owner": ctx.session,
        "claimed_at": iso(ctx.now),
        "epoch": str(epoch),
        "waiting_on": None,
        "block_reason": None,
    }
    previous = task.owner if task.owner and task.owner != ctx.session else None
    if previous:
        fields["previous_owner"] = previous
    how = "lease stale" if stale_owner else "forced"  # a forced take-over of a live lease is not "stale"
    reason = f"{ctx.session} claimed {task.id}" + (f" from {previous} ({how})" if previous else "")
    return OpResult(
        "reclaim" if previous and op == "claim" else op,
        task.id,
        reason,
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state=v.target)],
        status_updates={
            "status": "working",
            "current_task": task.id,
            "epoch": epoch,
            "progress": 0,
            "milestone": None,
            "blocked_on": None,
            "next_action": None,
            "last_poll": ctx.now,
        },
        epoch=epoch,
        forced=v.actor == "person",
    )


def claiming(task_id: str) -> Callable[[Snapshot, OpContext], OpResult]:
    """The claim of one task as an operation for `Workspace.apply`."""

    def claim(snapshot: Snapshot, ctx: OpContext) -> OpResult:
        return claim_task(snapshot, task_id, ctx)

    return claim


def claim_next(snapshot: Snapshot, ctx: OpContext, exclude: tuple[str, ...] = ()) -> OpResult:
    """Claim the scheduler's pick for the session: a primary task, else a filler task.

    Decided on the state the claim is written on (inside the machine's turn at the branch), so
    sessions that looked at the same tip and would all pick the same task each claim a
    different one, one after the other, instead of all but one losing a turn on it. The pick
    rides on the result (`pick`), for callers that report why."""
    from ifcoord.core.derived import derived

    pick = derived(snapshot).pick(ctx.session, ctx.stale, exclude)
    if pick.task is None:
        raise NotReady(pick.reason, hint="wait for dependencies, or add filler tasks to the board")
    if pick.kind == "current":
        return OpResult("claim", pick.task.id, pick.reason, epoch=pick.task.epoch, changed=False, pick=pick)
    result = claim_task(snapshot, pick.task.id, ctx)
    result.reason = f"{result.reason}: {pick.reason}"
    result.pick = pick
    return result


def progress_task(
    snapshot: Snapshot,
    task_id: str,
    percent: int,
    ctx: OpContext,
    note: str | None = None,
    tests_passed: int | None = None,
    tests_failed: int | None = None,
) -> OpResult:
    if not 0 <= percent <= 100:
        raise UsageError(f"progress {percent} is not a percentage", hint="give a number from 0 to 100")
    task = find_task(snapshot, task_id)
    v = verdict("progress", snapshot, task, ctx)
    fields: dict[str, str | None] = {"progress": f"{percent}%"}
    if note:
        fields["note"] = note
    tests = tests_line(tests_passed, tests_failed)
    if tests:
        fields["tests"] = tests
    reached = [m for m in task.milestones if m.percent is not None and m.percent <= percent]
    updates: dict[str, Any] = {
        "status": "blocked" if task.state == "blocked" else "working",
        "current_task": task.id,
        "progress": percent,
        "last_poll": ctx.now,
    }
    if reached:
        updates["milestone"] = reached[-1].text
    if tests_passed is not None:
        updates["tests_passed"] = tests_passed
    if tests_failed is not None:
        updates["tests_failed"] = tests_failed
    if note:
        updates["next_action"] = note
    # Reporting progress starts the work: a claimed task is in progress; other states stay.
    state: State | None = "in_progress" if task.state == "claimed" else v.target
    return OpResult(
        "progress",
        task.id,
        f"{task.id} at {percent}%",
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state=state, tick_milestones_upto=percent)],
        status_updates=updates,
        epoch=task.epoch,
        forced=v.actor == "person",
    )


def tests_line(passed: int | None, failed: int | None) -> str | None:
    if passed is None and failed is None:
        return None
    return f"{passed or 0} passed, {failed or 0} failed"


def waits_for(snapshot: Snapshot, task: Task, on: list[str]) -> list[str]:
    """The IDs a `block --on` names, checked: tasks on the branch, not the task itself, not done."""
    tasks = snapshot.tasks()
    folded = {k.casefold(): k for k in tasks}
    out: list[str] = []
    for raw in on:
        tid = folded.get(raw.casefold())
        if tid is None:
            raise UsageError(
                f"cannot block {task.id} on {raw}: there is no task {raw} on any board",
                hint="give the IDs of existing tasks (`ifcoord board` lists them)",
            )
        if tid == task.id:
            raise UsageError(f"{task.id} cannot wait on itself", hint="name the tasks it waits for")
        if tasks[tid].state == "done":
            raise UsageError(
                f"{tid} is already done: {task.id} has nothing to wait for there",
                hint="leave it out of --on",
            )
        if tid not in out:
            out.append(tid)
    return out


def block_task(
    snapshot: Snapshot, task_id: str, on: list[str], ctx: OpContext, reason: str | None = None
) -> OpResult:
    task = find_task(snapshot, task_id)
    v = verdict("block", snapshot, task, ctx)
    on = waits_for(snapshot, task, on)
    if task.state == "blocked" and task.waiting_on == on and (task.block_reason or None) == (reason or None):
        return OpResult("block", task.id, f"{task.id} is already blocked so", epoch=task.epoch, changed=False)
    fields: dict[str, str | None] = {"waiting_on": ", ".join(on) if on else None, "block_reason": reason}
    return OpResult(
        "block",
        task.id,
        f"{task.id} blocked" + (f" on {', '.join(on)}" if on else "") + (f": {reason}" if reason else ""),
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state=v.target)],
        status_updates={
            "status": "blocked",
            "current_task": task.id,
            "blocked_on": ", ".join(on) if on else task.id,
            "next_action": reason or f"waiting on {', '.join(on) or 'a blocker'}",
            "last_poll": ctx.now,
        },
        epoch=task.epoch,
        forced=v.actor == "person",
    )


UNBLOCK_FIELDS: dict[str, str | None] = {"waiting_on": None, "block_reason": None}


def unblock_task(snapshot: Snapshot, task_id: str, ctx: OpContext) -> OpResult:
    task = find_task(snapshot, task_id)
    v = verdict("unblock", snapshot, task, ctx)
    if v.no_change:
        return unchanged("unblock", task, v)
    return OpResult(
        "unblock",
        task.id,
        f"{task.id} unblocked",
        board_edits=[BoardEdit(task_id=task.id, fields=dict(UNBLOCK_FIELDS), state=v.target)],
        status_updates={
            "status": "working",
            "current_task": task.id,
            "blocked_on": None,
            "next_action": None,
            "last_poll": ctx.now,
        },
        epoch=task.epoch,
        forced=v.actor == "person",
    )


def unblocked_by(tasks: dict[str, Task], done: str) -> list[Task]:
    """Blocked tasks that waited on `done` and wait on nothing else unfinished: once `done` is
    done they go back to work, in the same commit that completes it."""
    after = {**tasks, done: tasks[done].model_copy(update={"state": "done"})}
    return [t for t in tasks.values() if done in t.waiting_on and lifecycle.waits_met(t, after)]


def complete_task(
    snapshot: Snapshot,
    task_id: str,
    ctx: OpContext,
    deliverable: str | None = None,
    tests_passed: int | None = None,
    tests_failed: int | None = None,
) -> OpResult:
    task = find_task(snapshot, task_id)
    v = verdict("complete", snapshot, task, ctx)
    if v.no_change:
        return unchanged("complete", task, v)
    fields: dict[str, str | None] = {
        "progress": "100%",
        "completed_at": iso(ctx.now),
        "waiting_on": None,
        "block_reason": None,
    }
    if deliverable:
        fields["deliverable"] = deliverable
    tests = tests_line(tests_passed, tests_failed)
    if tests:
        fields["tests"] = tests
    status = snapshot.statuses.get(ctx.session)
    completed = list(status.completed) if status else []
    if task.id not in completed:
        completed.append(task.id)
    updates: dict[str, Any] = {
        "status": "idle",
        "current_task": None,
        "progress": None,
        "milestone": None,
        "blocked_on": None,
        "next_action": None,
        "completed": completed,
        "last_poll": ctx.now,
    }
    if tests_passed is not None:
        updates["tests_passed"] = tests_passed
    if tests_failed is not None:
        updates["tests_failed"] = tests_failed
    edits = [BoardEdit(task_id=task.id, fields=fields, state=v.target, tick_milestones_upto=100)]
    freed = unblocked_by(snapshot.tasks(), task.id)
    edits += [BoardEdit(task_id=t.id, fields=dict(UNBLOCK_FIELDS), state="in_progress") for t in freed]
    reason = f"{task.id} done by {ctx.session}"
    if freed:
        reason += "; unblocked " + ", ".join(t.id for t in freed)
    return OpResult(
        "complete",
        task.id,
        reason,
        board_edits=edits,
        status_updates=updates,
        epoch=task.epoch,
        forced=v.actor == "person",
        extra_trailers={"Ifcoord-Unblocked": ", ".join(t.id for t in freed)} if freed else {},
    )


def release_task(snapshot: Snapshot, task_id: str, ctx: OpContext) -> OpResult:
    task = find_task(snapshot, task_id)
    v = verdict("release", snapshot, task, ctx)
    if v.no_change:
        return unchanged("release", task, v)
    # The epoch stays: fencing numbers only grow, so an old holder stays fenced out.
    fields: dict[str, str | None] = {
        "owner": None,
        "claimed_at": None,
        "waiting_on": None,
        "block_reason": None,
    }
    return OpResult(
        "release",
        task.id,
        f"{ctx.session} released {task.id}",
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state=v.target)],
        status_updates={
            "status": "idle",
            "current_task": None,
            "progress": None,
            "milestone": None,
            "blocked_on": None,  # a released blocked task must not leave the session "blocked on" it
            "next_action": None,
            "last_poll": ctx.now,
        },
        epoch=task.epoch,
        forced=v.actor == "person",
    )


def cancel_task(snapshot: Snapshot, task_id: str, ctx: OpContext, reason: str | None = None) -> OpResult:
    """A person drops a task that is not finished (needs force; recorded as forced)."""
    task = find_task(snapshot, task_id)
    v = verdict("cancel", snapshot, task, ctx)
    if v.no_change:
        return unchanged("cancel", task, v)
    fields: dict[str, str | None] = {
        "owner": None,
        "claimed_at": None,
        "waiting_on": None,
        "block_reason": None,
        "cancel_reason": reason,
    }
    return OpResult(
        "cancel",
        task.id,
        f"{task.id} cancelled by {ctx.session}" + (f": {reason}" if reason else ""),
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state=v.target)],
        epoch=task.epoch,
        forced=True,
    )


def reopen_task(snapshot: Snapshot, task_id: str, ctx: OpContext) -> OpResult:
    """A person reopens finished work (needs force; recorded as forced). The epoch stays, so the
    session that finished it cannot write to it again without a new claim."""
    task = find_task(snapshot, task_id)
    v = verdict("reopen", snapshot, task, ctx)
    if v.no_change:
        return unchanged("reopen", task, v)
    fields: dict[str, str | None] = {
        "owner": None,
        "claimed_at": None,
        "completed_at": None,
        "cancel_reason": None,
    }
    return OpResult(
        "reopen",
        task.id,
        f"{task.id} reopened by {ctx.session} (was {task.state})",
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state=v.target)],
        epoch=task.epoch,
        forced=True,
    )


KEEP = "keep"  # heartbeat: leave current_task as it is


def heartbeat(
    snapshot: Snapshot, ctx: OpContext, state: str | None = None, current_task: str | None = KEEP
) -> OpResult:
    """The session's STATUS `last_poll` (and state, and current task when given) only."""
    updates: dict[str, Any] = {"last_poll": ctx.now}
    if state:
        updates["status"] = state
    if current_task != KEEP:
        updates["current_task"] = current_task
    return OpResult("heartbeat", None, f"heartbeat from {ctx.session}", status_updates=updates)
