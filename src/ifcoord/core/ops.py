"""The task lifecycle: each operation turns a snapshot into board edits and a status update, or
refuses with the reason (protocol section 3). Pure: no git, no clock, no files.

Where is a claim decided? In `claim_task`, from the snapshot at the branch tip it will commit on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ifcoord.core.scheduler import describe_unmet, may_take, next_for, resolve_dependencies
from ifcoord.errors import ConflictError, LeaseLost, NotReady, UsageError
from ifcoord.files.board import BoardEdit
from ifcoord.models import Snapshot, State, Task

OPS = ("claim", "progress", "block", "unblock", "complete", "release", "reclaim", "heartbeat")


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
        return out


def iso(ts: datetime) -> str:
    """UTC, second precision, `Z`: the one timestamp form ifcoord writes."""
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hhmm(ts: datetime | None) -> str:
    return ts.astimezone(timezone.utc).strftime("%H:%M UTC") if ts else "an unknown time"


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


# -- the fencing check ------------------------------------------------------------------------


def check_holder(task: Task, ctx: OpContext) -> None:
    """Refuse unless ctx.session holds the task's current lease (its current epoch)."""
    if ctx.force:
        return
    if task.owner == ctx.session:
        if ctx.held_epoch is not None and ctx.held_epoch != task.epoch:
            raise LeaseLost(
                f"lease lost: {task.id} is at epoch {task.epoch}, {ctx.session} holds epoch {ctx.held_epoch}",
                hint="the task was reclaimed and claimed again; claim it anew or take another",
            )
        return
    if task.owner and (task.previous_owner == ctx.session or ctx.held_epoch is not None):
        raise LeaseLost(
            f"lease lost: {task.id} now belongs to {task.owner} (epoch {task.epoch}), not {ctx.session}",
            hint="stop work on it and run `ifcoord claim --next`",
        )
    who = f"claimed by {task.owner}" if task.owner else "not claimed by anyone"
    raise ConflictError(
        f"{task.id} is {who}, not by {ctx.session}",
        hint=f"claim it first (`ifcoord claim {task.id}`); a person fixing the board may use --force",
    )


def lease_refusal(task: Task, ctx: OpContext, snapshot: Snapshot | None = None) -> ConflictError:
    if snapshot is not None and task.owner and task.owner not in snapshot.statuses:
        # No heartbeat to go stale: waiting would be forever. Say what ends it.
        path = snapshot.status_paths.get(task.owner)
        why = f"its STATUS file {path} cannot be read" if path else "it has no STATUS file"
        return ConflictError(
            f"{task.id} is held by {task.owner}, and {why}, "
            "so the claim reads as a person's and never goes stale",
            hint=(f"fix {path} (`ifcoord lint` says what is wrong)" if path else
                  f"if {task.owner} is a session that is gone, a person may take the task with `--force`")
            + "; or pick another task (`ifcoord claim --next`)",
        )  # fmt: skip
    return ConflictError(
        f"{task.id} is claimed by {task.owner} since {hhmm(task.claimed_at)} (lease live)",
        hint="pick another task (`ifcoord claim --next`) or wait for the lease to go stale",
    )


# -- operations -------------------------------------------------------------------------------


def claim_task(snapshot: Snapshot, task_id: str, ctx: OpContext, op: str = "claim") -> OpResult:
    """Claim (or, with op="reclaim", take over from a stale owner) one task."""
    task = find_task(snapshot, task_id)
    tasks = snapshot.tasks()
    if task.owner == ctx.session and task.state in ("claimed", "in_progress", "blocked", "review"):
        return OpResult(
            op, task.id, f"{ctx.session} already holds {task.id}", epoch=task.epoch, changed=False
        )
    stale_owner = bool(task.owner) and task.owner in ctx.stale
    if not ctx.force:
        if not may_take(task, ctx.session):
            raise ConflictError(
                f"{task.id} is reserved for {', '.join(task.sessions)}, not {ctx.session}",
                hint="take a task meant for this session (`ifcoord next`)",
            )
        if task.state in ("done", "cancelled"):
            raise NotReady(
                f"{task.id} is {task.state}", hint="nothing to claim there; try `ifcoord claim --next`"
            )
        if task.owner and task.owner != ctx.session and not stale_owner:
            raise lease_refusal(task, ctx, snapshot)
        if op == "reclaim" and not stale_owner:
            raise ConflictError(
                f"{task.id} has no stale lease to reclaim"
                + (f" ({task.owner}'s lease is live)" if task.owner else " (it is not claimed)"),
                hint="use `ifcoord claim` for a free task",
            )
        if task.state not in ("open",) and not stale_owner:
            raise NotReady(f"{task.id} is {task.state}", hint="only open tasks can be claimed")
        unmet = [
            d
            for d in resolve_dependencies(tasks).get(task.id, [])
            if d not in tasks or tasks[d].state != "done"
        ]
        if unmet:
            raise NotReady(
                f"{task.id} depends on {describe_unmet(unmet, tasks)}",
                hint="claim a ready task instead (`ifcoord next`)",
            )
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
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state="in_progress")],
        status_updates={
            "status": "working",
            "current_task": task.id,
            "epoch": epoch,
            "progress": 0,
            "milestone": None,
            "blocked_on": None,
            "last_poll": ctx.now,
        },
        epoch=epoch,
        forced=ctx.force,
    )


def claim_next(
    snapshot: Snapshot, ctx: OpContext, phase_key: Any = None, exclude: tuple[str, ...] = ()
) -> OpResult:
    """Claim the scheduler's pick for the session: a primary task, else a filler task."""
    kwargs = {"phase_key": phase_key} if phase_key else {}
    pick = next_for(
        ctx.session,
        snapshot.tasks(),
        lambda t: bool(t.owner) and t.owner in ctx.stale,
        exclude=exclude,
        **kwargs,
    )
    if pick.task is None:
        raise NotReady(pick.reason, hint="wait for dependencies, or add filler tasks to the board")
    if pick.kind == "current":
        return OpResult("claim", pick.task.id, pick.reason, epoch=pick.task.epoch, changed=False)
    result = claim_task(snapshot, pick.task.id, ctx)
    result.reason = f"{result.reason}: {pick.reason}"
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
    check_holder(task, ctx)
    fields: dict[str, str | None] = {"progress": f"{percent}%"}
    if note:
        fields["note"] = note
    tests = tests_line(tests_passed, tests_failed)
    if tests:
        fields["tests"] = tests
    reached = [m for m in task.milestones if m.percent is not None and m.percent <= percent]
    updates: dict[str, Any] = {
        "status": "working",
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
    state: State | None = "in_progress" if task.state in ("claimed", "open") else None
    return OpResult(
        "progress",
        task.id,
        f"{task.id} at {percent}%",
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state=state, tick_milestones_upto=percent)],
        status_updates=updates,
        epoch=task.epoch,
        forced=ctx.force,
    )


def tests_line(passed: int | None, failed: int | None) -> str | None:
    if passed is None and failed is None:
        return None
    return f"{passed or 0} passed, {failed or 0} failed"


def block_task(
    snapshot: Snapshot, task_id: str, on: list[str], ctx: OpContext, reason: str | None = None
) -> OpResult:
    task = find_task(snapshot, task_id)
    check_holder(task, ctx)
    fields: dict[str, str | None] = {"waiting_on": ", ".join(on) if on else None, "block_reason": reason}
    return OpResult(
        "block",
        task.id,
        f"{task.id} blocked" + (f" on {', '.join(on)}" if on else "") + (f": {reason}" if reason else ""),
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state="blocked")],
        status_updates={
            "status": "blocked",
            "current_task": task.id,
            "blocked_on": ", ".join(on) if on else task.id,
            "next_action": reason or f"waiting on {', '.join(on) or 'a blocker'}",
            "last_poll": ctx.now,
        },
        epoch=task.epoch,
        forced=ctx.force,
    )


def unblock_task(snapshot: Snapshot, task_id: str, ctx: OpContext) -> OpResult:
    task = find_task(snapshot, task_id)
    check_holder(task, ctx)
    if task.state != "blocked" and not ctx.force:
        return OpResult("unblock", task.id, f"{task.id} is not blocked", epoch=task.epoch, changed=False)
    return OpResult(
        "unblock",
        task.id,
        f"{task.id} unblocked",
        board_edits=[
            BoardEdit(task_id=task.id, fields={"waiting_on": None, "block_reason": None}, state="in_progress")
        ],
        status_updates={
            "status": "working",
            "current_task": task.id,
            "blocked_on": None,
            "next_action": None,  # it said what the block waited for
            "last_poll": ctx.now,
        },
        epoch=task.epoch,
        forced=ctx.force,
    )


def complete_task(
    snapshot: Snapshot,
    task_id: str,
    ctx: OpContext,
    deliverable: str | None = None,
    tests_passed: int | None = None,
    tests_failed: int | None = None,
) -> OpResult:
    task = find_task(snapshot, task_id)
    if task.state == "done" and task.owner == ctx.session and not ctx.force:
        return OpResult("complete", task.id, f"{task.id} is already done", epoch=task.epoch, changed=False)
    check_holder(task, ctx)
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
        "next_action": None,  # about the task just finished
        "completed": completed,
        "last_poll": ctx.now,
    }
    if tests_passed is not None:
        updates["tests_passed"] = tests_passed
    if tests_failed is not None:
        updates["tests_failed"] = tests_failed
    return OpResult(
        "complete",
        task.id,
        f"{task.id} done by {ctx.session}",
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state="done", tick_milestones_upto=100)],
        status_updates=updates,
        epoch=task.epoch,
        forced=ctx.force,
    )


def release_task(snapshot: Snapshot, task_id: str, ctx: OpContext) -> OpResult:
    task = find_task(snapshot, task_id)
    check_holder(task, ctx)
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
        board_edits=[BoardEdit(task_id=task.id, fields=fields, state="open")],
        status_updates={
            "status": "idle",
            "current_task": None,
            "progress": None,
            "milestone": None,
            "blocked_on": None,  # a released blocked task must not leave the session "blocked on" it
            "last_poll": ctx.now,
        },
        epoch=task.epoch,
        forced=ctx.force,
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
