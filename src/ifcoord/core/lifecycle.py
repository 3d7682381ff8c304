"""The task lifecycle as one table: which operation may run from which state, by whom, and
the state it leaves (docs/protocol.md, section 4). Every command, the scheduler, the loop, the
views and own-branch settling ask this module; nothing else decides.

Who acts, in the table's terms:
- `owner`: the session that holds the task (its name is the task's owner);
- `session`: any other session, taking the task as the board allows (`Session:` field);
- `person`: someone with `--force`, recorded as forced in the commit.

Pure: no git, no clock. Staleness of sessions is decided by core/leases.py and passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from ifcoord.errors import ConflictError, IfcoordError, LeaseLost, NotReady, UsageError
from ifcoord.models import STATES, State, Task

Actor = Literal["owner", "session", "person"]
ACTORS: tuple[Actor, ...] = ("owner", "session", "person")

#: A task in one of these states has an owner working on it (or lost to a stale lease).
HELD: frozenset[State] = frozenset({"claimed", "in_progress", "blocked", "review"})
#: Finished work: only a person's forced reopen moves it again.
FINISHED: frozenset[State] = frozenset({"done", "cancelled"})
#: Not finished: open or held.
UNFINISHED: frozenset[State] = frozenset(STATES) - FINISHED


@dataclass(frozen=True)
class Rule:
    """One row of the lifecycle table."""

    op: str
    sources: frozenset[State]  # states the operation may start from
    actors: frozenset[Actor]  # who may run it without --force
    target: State | None  # the state it leaves; None: unchanged
    summary: str


def _rule(
    op: str, sources: Iterable[State], actors: Iterable[Actor], target: State | None, summary: str
) -> Rule:
    return Rule(op, frozenset(sources), frozenset(actors), target, summary)


# Claiming needs more than a state: the task must be free (no owner, or the owner's lease stale)
# and ready (dependencies done). `claimable` below says which; the table lists the states.
TABLE: dict[str, Rule] = {
    r.op: r
    for r in (
        _rule("claim", ["open", *HELD], ["session"], "in_progress",
              "an open task, or a held one whose owner's lease is stale; dependencies done"),
        _rule("reclaim", ["open", *HELD], ["session"], "in_progress",
              "as claim, only from an owner whose lease is stale; the previous owner is recorded"),
        _rule("progress", HELD, ["owner"], None,
              "milestones ticked, percent and note; a claimed task becomes in progress"),
        _rule("block", HELD, ["owner"], "blocked", "waits on existing tasks, with a reason"),
        _rule("unblock", ["blocked"], ["owner"], "in_progress", "back to work"),
        _rule("complete", HELD, ["owner"], "done",
              "deliverable and tests recorded; dependants may become ready"),
        _rule("release", HELD, ["owner"], "open",
              "owner cleared; the epoch stays, fencing the old holder out"),
        _rule("cancel", ["open", *HELD], ["person"], "cancelled", "dropped by a person, with a reason"),
        _rule("reopen", FINISHED, ["person"], "open", "finished work reopened by a person"),
    )
}  # fmt: skip
OPERATIONS: tuple[str, ...] = tuple(TABLE)

# When the operation is asked again of a task it already left in its target state, by the
# same actor, it is a "no change" (exit 0), so an agent can repeat a call whose answer it missed.
_ALREADY: dict[str, frozenset[State]] = {
    "claim": HELD,  # by its owner
    "reclaim": HELD,  # by its owner
    "complete": frozenset({"done"}),  # by the session that completed it
    "release": frozenset({"open"}),  # of a task nobody holds
    "unblock": frozenset({"claimed", "in_progress", "review"}),  # by its owner
    "cancel": frozenset({"cancelled"}),
    "reopen": frozenset({"open"}),
}


def owner_is_stale(task: Task, stale: frozenset[str] | set[str]) -> bool:
    """The one stale-owner test: the task's owner is a session whose lease is stale. Finished
    tasks are never stale: their owner is history, not a lease."""
    return task.state not in FINISHED and bool(task.owner) and task.owner in stale


def holds(task: Task, session: str) -> bool:
    """`session` holds `task`: it owns it in a held state."""
    return task.owner == session and task.state in HELD


def held_by(tasks: Iterable[Task], session: str) -> list[Task]:
    return [t for t in tasks if holds(t, session)]


def unmet_dependencies(task: Task, tasks: dict[str, Task], deps: dict[str, list[str]]) -> list[str]:
    """Dependencies that are not done, and for a blocked task the tasks it waits on that are not
    done; one on no board is unmet (lint reports it)."""
    waits = task.waiting_on if task.state == "blocked" else []
    own = deps.get(task.id)
    if not own and not waits:
        return []  # most tasks of a big board: asked for each of them by every view
    unmet: dict[str, None] = {}  # ordered, O(1) to test: a group dependency holds thousands
    for d in [*(own or []), *waits]:
        if d not in unmet and (d not in tasks or tasks[d].state != "done"):
            unmet[d] = None
    return list(unmet)


def waits_met(task: Task, tasks: dict[str, Task]) -> bool:
    """A blocked task whose `Waiting on:` tasks are all done can go back to work."""
    return (
        task.state == "blocked"
        and bool(task.waiting_on)
        and all(w in tasks and tasks[w].state == "done" for w in task.waiting_on)
    )


def describe_unmet(unmet: Iterable[str], tasks: dict[str, Task]) -> str:
    """`P0.1.4 (open), X9 (not on any board)`: each unmet dependency with its state."""
    return ", ".join(f"{d} ({tasks[d].state})" if d in tasks else f"{d} (not on any board)" for d in unmet)


def is_stuck(task: Task, tasks: dict[str, Task], deps: dict[str, list[str]]) -> bool:
    """A held task its owner cannot work on: blocked, or a dependency is no longer done."""
    return task.state == "blocked" or bool(unmet_dependencies(task, tasks, deps))


def claimable(task: Task, stale: frozenset[str] | set[str]) -> str | None:
    """None when the task's state and owner let a session claim it; else why not.

    The stale-owner rule (the same in every view and command): a task whose owner's lease is
    stale is free again, whatever held state it was left in. `board` marks it reclaimable,
    `next` and `poll` offer it once its dependencies are done, `claim` takes it (recorded as a
    reclaim from the previous owner), and the dashboard lists it under "needs attention". Why one
    rule for every held state: a dead session's blocked or in-review task is as orphaned as its
    in-progress one, and offering some but not others is what made the views disagree.
    """
    if task.state in FINISHED:
        return f"state is {task.state}"
    if owner_is_stale(task, stale):
        return None
    if task.state != "open":
        # Held with no owner (a person wrote the status by hand) or by a live owner.
        held = task.state.replace("_", " ")
        return f"{task.owner} holds it ({held})" if task.owner else f"state is {task.state}"
    return f"owned by {task.owner}" if task.owner else None


@dataclass(frozen=True)
class Verdict:
    """The table's answer for one (operation, task, actor)."""

    op: str
    actor: Actor
    target: State | None
    no_change: bool = False
    reason: str = ""


def actor_of(task: Task, session: str, force: bool) -> Actor:
    if task.owner == session and task.state not in FINISHED:
        return "owner"
    return "person" if force else "session"


def hhmm(ts: datetime | None) -> str:
    return ts.astimezone(timezone.utc).strftime("%H:%M UTC") if ts else "an unknown time"


def finished_refusal(task: Task) -> NotReady:
    if task.state == "done":
        by = f"completed by {task.owner}" if task.owner else "completed"
        when = f" at {hhmm(task.completed_at)}" if task.completed_at else ""
        what = f"{task.id} is done ({by}{when})"
    else:
        what = f"{task.id} is cancelled" + (f" ({task.block_reason})" if task.block_reason else "")
    return NotReady(what, hint=f"a person may reopen it with `ifcoord task reopen {task.id}`")


def check(
    op: str,
    task: Task,
    session: str,
    *,
    stale: frozenset[str] | set[str] = frozenset(),
    force: bool = False,
    held_epoch: int | None = None,
    unmet: Iterable[str] = (),
    tasks: dict[str, Task] | None = None,
) -> Verdict:
    """May `session` run `op` on `task`? A Verdict, or the refusal as an IfcoordError with the
    documented exit code (3 conflict, 4 not ready, 2 usage).

    The steps, in order:
    0. fencing: a caller that lost the task (it holds an older epoch, or it was the previous
       owner) is told "lease lost" whatever became of the task since;
    1. finished work takes only a forced reopen (a repeat by its completer is "no change");
    2. an operation already in effect is "no change" (claim by the owner, release of a free task);
    3. the owner's operations need the current lease: the right owner, at the current epoch;
    4. claims need a free task (claimable) and done dependencies;
    5. the state must be one the table lists for the operation.
    """
    unmet = list(unmet)
    rule = TABLE.get(op)
    if rule is None:
        raise UsageError(f"unknown operation {op!r}", hint="one of " + ", ".join(OPERATIONS))
    actor = actor_of(task, session, force)
    # 0.
    if "owner" in rule.actors and not force and _lost_lease(task, session, held_epoch):
        raise (
            _not_owner(task, session, held_epoch)
            if task.owner != session
            else LeaseLost(
                f"lease lost: {task.id} is at epoch {task.epoch}, {session} holds epoch {held_epoch}",
                hint="it was reclaimed and claimed again; stop work on it, run `ifcoord claim --next`",
            )
        )
    # 1.
    if task.state in FINISHED and op != "reopen":
        if op in _ALREADY and task.state in _ALREADY[op] and task.owner == session:
            return Verdict(op, actor, None, no_change=True, reason=f"{task.id} is already {task.state}")
        if op == "cancel" and task.state == "cancelled":
            return Verdict(op, actor, None, no_change=True, reason=f"{task.id} is already cancelled")
        raise finished_refusal(task)
    # 2.
    if op in ("claim", "reclaim") and holds(task, session):
        return Verdict(op, "owner", None, no_change=True, reason=f"{session} already holds {task.id}")
    if op == "release" and task.state == "open" and not task.owner:
        return Verdict(op, actor, None, no_change=True, reason=f"{task.id} is not held by anyone")
    if op == "reopen" and task.state == "open":
        return Verdict(op, "person", None, no_change=True, reason=f"{task.id} is already open")
    if op in ("cancel", "reopen"):
        _check_source(rule, task)
        if not force:
            raise UsageError(
                f"{op} is for people: it needs --force",
                hint=f"`ifcoord task {op} {task.id}` records it as forced",
            )
        return Verdict(op, "person", rule.target)
    # 3.
    if "owner" in rule.actors:
        if actor == "owner":
            if held_epoch is not None and held_epoch != task.epoch and not force:
                raise LeaseLost(
                    f"lease lost: {task.id} is at epoch {task.epoch}, {session} holds epoch {held_epoch}",
                    hint="it was reclaimed and claimed again; stop work on it, run `ifcoord claim --next`",
                )
            return _owner_verdict(rule, task, "owner")
        if force:
            return _owner_verdict(rule, task, "person")
        raise _not_owner(task, session, held_epoch)
    # 4. claim / reclaim
    why = claimable(task, stale)
    stale_owner = owner_is_stale(task, stale)
    if op == "reclaim" and not stale_owner and not force:
        held = bool(task.owner) and task.state in HELD
        live = f": {task.owner} holds it (lease live)" if held else " (it is not held)"
        hint = (
            f"use `ifcoord claim {task.id}`"
            if why is None and not unmet
            else "take a ready task instead (`ifcoord claim --next`)"
        )
        raise ConflictError(f"{task.id} has no stale lease to reclaim{live}", hint=hint)
    if why is not None and not force:
        if task.state in HELD and task.owner:
            what = f"{task.id} is claimed by {task.owner} since {hhmm(task.claimed_at)} (lease live)"
        else:
            what = f"{task.id} is not free: {why}"
        raise ConflictError(
            what,
            hint="take a ready task instead (`ifcoord claim --next`); a person may use --force",
        )
    if unmet and not force:
        raise NotReady(
            f"{task.id} depends on {describe_unmet(unmet, tasks or {})}",
            hint="take a ready task instead (`ifcoord claim --next`)",
        )
    _check_source(rule, task)
    return Verdict(op, "person" if force and (why or unmet) else "session", rule.target)


def _lost_lease(task: Task, session: str, held_epoch: int | None) -> bool:
    if task.owner == session:
        return held_epoch is not None and held_epoch != task.epoch
    return bool(task.owner) and (task.previous_owner == session or held_epoch is not None)


def _owner_verdict(rule: Rule, task: Task, actor: Actor) -> Verdict:
    if rule.op == "unblock" and task.state in HELD - {"blocked"}:
        return Verdict(rule.op, actor, None, no_change=True, reason=f"{task.id} is not blocked")
    _check_source(rule, task)
    return Verdict(rule.op, actor, rule.target)


def _check_source(rule: Rule, task: Task) -> None:
    if task.state not in rule.sources:
        allowed = ", ".join(s.replace("_", " ") for s in STATES if s in rule.sources)
        raise NotReady(
            f"{task.id} is {task.state.replace('_', ' ')}; {rule.op} works on a task that is {allowed}",
            hint="see `ifcoord show " + task.id + "`",
        )


def _not_owner(task: Task, session: str, held_epoch: int | None) -> IfcoordError:
    if task.owner and (task.previous_owner == session or held_epoch is not None):
        return LeaseLost(
            f"lease lost: {task.id} now belongs to {task.owner} (epoch {task.epoch}), not {session}",
            hint="stop work on it and run `ifcoord claim --next`",
        )
    if task.owner:
        return ConflictError(
            f"{task.id} is claimed by {task.owner}, not by {session}",
            hint="work on your own task (`ifcoord now`); a person fixing the board may use --force",
        )
    return ConflictError(
        f"{task.id} is not claimed by anyone, not by {session}",
        hint=f"claim it first (`ifcoord claim {task.id}`)"
        if task.state == "open"
        else "see `ifcoord show " + task.id + "`",
    )


def table_rows() -> list[tuple[str, str, str, str, str]]:
    """The table as printed in docs/protocol.md (a test checks that the docs say the same)."""
    rows: list[tuple[str, str, str, str, str]] = []
    for rule in TABLE.values():
        sources = ", ".join(s for s in STATES if s in rule.sources)
        actors = ", ".join(a for a in ACTORS if a in rule.actors)
        rows.append((rule.op, sources, actors, str(rule.target or "unchanged"), rule.summary))
    return rows


def table_markdown() -> str:
    lines = ["| operation | from states | who | leaves | what |", "|---|---|---|---|---|"]
    lines += [f"| {op} | {src} | {who} | {to} | {what} |" for op, src, who, to, what in table_rows()]
    return "\n".join(lines) + "\n"
