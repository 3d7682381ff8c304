"""`ifcoord now`: what one session should do at this moment, decided from the branch alone.

An agent that cannot keep a loop running asks this instead of remembering events (protocol
section 6). `decide` is pure; `ask` is the shell around it that reads the branch and claims when
the session holds nothing. The loop, the Claude Code hooks and the MCP server all use it, so
every front end gives a session the same answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ifcoord.core import lifecycle
from ifcoord.core.rows import row_for, task_json
from ifcoord.core.scheduler import blocked_primaries, may_take, next_for, ready_tasks, resolve_dependencies
from ifcoord.models import Snapshot, Task

if TYPE_CHECKING:
    from ifcoord.core.ops import OpContext, OpResult
    from ifcoord.core.snapshot import BranchState
    from ifcoord.git.transaction import TxResult
    from ifcoord.session.workspace import Workspace

    Operation = Callable[[Snapshot, OpContext], OpResult]

# What the session should do; the order is the order of urgency.
ACTIONS = ("unblock", "switch", "work", "claim", "wait", "done")
CLAIM_ATTEMPTS = 5


@dataclass
class NowAnswer:
    """The answer for one session. `task` is what to act on; `primary` the one to switch to."""

    action: str
    session: str
    task: Task | None
    reason: str
    primary: Task | None = None
    waiting_on: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    claimed: bool = False
    epoch: int | None = None
    op_id: str | None = None  # the claim's operation id, when this answer claimed


# -- pure decisions ---------------------------------------------------------------------------


def can_unblock(task: Task, tasks: dict[str, Task], deps: dict[str, list[str]]) -> bool:
    """A blocked task whose `block --on` tasks and dependencies are all done. One blocked
    without IDs is blocked for a reason only its owner knows: it decides when to unblock."""
    return lifecycle.waits_met(task, tasks) and not lifecycle.unmet_dependencies(task, tasks, deps)


def current_of(active: list[Task]) -> Task:
    return sorted(active, key=lambda t: (t.kind != "primary", t.file, t.position))[0]


def primary_assignments(
    tasks: dict[str, Task],
    deps: dict[str, list[str]],
    sessions: list[str],
    stale: frozenset[str],
    phase_key: Callable[[str], tuple] = lambda p: (p,),
) -> dict[str, str]:
    """Which running session each ready primary task goes to next.

    One session per primary, so that a primary never pulls two sessions off their fillers at
    once, and every reader computes the same mapping from the same tip. Ready primaries in the
    scheduler's order go first to sessions holding no active task (they claim it themselves
    at their next look), then to sessions on a filler task (they are told to switch); within
    each group, sessions the task names explicitly first, then by name.
    """
    idle, on_filler = [], []
    for s in sorted(set(sessions)):
        if s in stale:
            continue
        held = lifecycle.held_by(tasks.values(), s)
        if any(can_unblock(t, tasks, deps) for t in held):
            continue  # about to go back to its own blocked task: not free for another one
        active = [t for t in held if not lifecycle.is_stuck(t, tasks, deps)]
        if not active:
            idle.append(s)
        elif all(t.kind == "filler" for t in active):
            on_filler.append(s)
    out: dict[str, str] = {}
    taken: set[str] = set()
    for task in ready_tasks(tasks, stale, phase_key, deps=deps):
        if task.kind != "primary":
            continue
        named = [x.lower() for x in task.sessions]
        for group in (idle, on_filler):
            fitting = sorted(
                (s for s in group if s not in taken and may_take(task, s)), key=lambda s: (s not in named, s)
            )
            if fitting:
                out[task.id] = fitting[0]
                taken.add(fitting[0])
                break
    return out


def live_sessions(snapshot: Snapshot, session: str) -> list[str]:
    """Sessions that will act on an answer: not offline, not stopped (`done`), and the asking one."""
    names = [n for n, st in snapshot.statuses.items() if st.status not in ("offline", "done")]
    return sorted(set(names) | {session})


def decide(
    snapshot: Snapshot,
    session: str,
    stale: frozenset[str] = frozenset(),
    phase_key: Callable[[str], tuple] = lambda p: (p,),
) -> NowAnswer:
    """What `session` should do now, from this snapshot alone."""
    tasks = snapshot.tasks()
    deps = resolve_dependencies(tasks)
    held = lifecycle.held_by(tasks.values(), session)
    held_ids = [t.id for t in held]
    # 1. A task it blocked whose blockers are done: unblocking it comes first.
    for t in held:
        if can_unblock(t, tasks, deps):
            why = f"what {t.id} waited on is done ({', '.join(t.waiting_on)})"
            return NowAnswer("unblock", session, t, why, held=held_ids)
    active = [t for t in held if not lifecycle.is_stuck(t, tasks, deps)]
    # 2. On a filler while a primary is ready for it (and for no other session first).
    if active:
        current = current_of(active)
        if current.kind == "filler":
            mapping = primary_assignments(tasks, deps, live_sessions(snapshot, session), stale, phase_key)
            mine = [tid for tid, s in mapping.items() if s == session]
            if mine:
                primary = tasks[mine[0]]
                why = f"primary task {primary.id} is ready for {session}"
                return NowAnswer("switch", session, current, why, primary=primary, held=held_ids)
        # 3. Keep working on what it holds.
        why = f"{session} holds {current.id} ({current.state})"
        return NowAnswer("work", session, current, why, held=held_ids)
    # 4. Nothing active: the scheduler's pick, primary first, else filler.
    pick = next_for(session, tasks, stale, phase_key)
    if pick.task is not None and pick.kind != "current":
        return NowAnswer("claim", session, pick.task, pick.reason, held=held_ids)
    if tasks and all(t.state in lifecycle.FINISHED for t in tasks.values()):
        return NowAnswer("done", session, None, "every task on the board is done", held=held_ids)
    waiting = waiting_on(tasks, deps, session, stale, held)
    return NowAnswer("wait", session, None, pick.reason, waiting_on=waiting, held=held_ids)


def waiting_on(
    tasks: dict[str, Task],
    deps: dict[str, list[str]],
    session: str,
    stale: frozenset[str],
    held: list[Task],
) -> list[str]:
    """The unfinished tasks whose completion would give this session work."""
    out: list[str] = []
    for t, _ in blocked_primaries(session, tasks, stale, deps):
        for d in list(t.waiting_on) + deps.get(t.id, []):
            if d in tasks and tasks[d].state != "done" and d not in out:
                out.append(d)
    for t in held:
        for d in t.waiting_on:
            if d not in out:
                out.append(d)
    if not out:  # nothing it waits on directly: whatever is still under way
        out = [t.id for t in tasks.values() if t.state in lifecycle.HELD and t.owner != session]
    return out


# -- rendering --------------------------------------------------------------------------------


def next_milestone(task: Task) -> str | None:
    return next((m.text for m in task.milestones if not m.done), None)


def unblocks(snapshot: Snapshot, task_id: str) -> list[str]:
    """The tasks that wait on this one directly."""
    deps = resolve_dependencies(snapshot.tasks())
    return sorted(tid for tid, ds in deps.items() if task_id in ds)


def describe(task: Task) -> str:
    pct = f"{task.progress or 0}%"
    nxt = next_milestone(task)
    return f"{task.id} ({pct}" + (f", next milestone: {nxt})" if nxt else ")")


def fenced(task: Task) -> str:
    """The `--epoch` an agent passes with every command on a task it holds: a process left over
    from an older claim of the same session (same clone, same name) then follows instructions
    that carry the older epoch, and is refused "lease lost" (docs/protocol.md, section 5)."""
    return f" --epoch {task.epoch}" if task.epoch else ""


def message(answer: NowAnswer, snapshot: Snapshot) -> str:
    """The answer as instructions for an agent (what the hooks and `now` print); every command
    on a held task carries its epoch."""
    t = answer.task
    if answer.action == "unblock" and t is not None:
        run = f"`ifcoord unblock {t.id}{fenced(t)}`"
        return f"ifcoord: unblock {t.id}: {answer.reason}. Run {run}, then continue it."
    if answer.action == "switch" and t is not None and answer.primary is not None:
        p = answer.primary
        return (
            f"ifcoord: finish or release filler {t.id}: your primary {p.id} is ready ({p.title}). "
            f"Either complete {t.id} (`ifcoord complete {t.id}{fenced(t)}`) or release it "
            f"(`ifcoord release {t.id}{fenced(t)}`); then `ifcoord now` claims {p.id} for you."
        )
    if answer.action in ("work", "claim") and t is not None:
        where = f", phase {t.phase}" if t.phase else ""
        lines = [f"ifcoord: work on {t.id}: {t.title} ({t.kind} task{where})."]
        lines.append(f"Why: {answer.reason}.")
        if t.deliverable:
            lines.append(f"Deliverable: {t.deliverable}")
        if t.milestones:
            lines.append("Milestones:")
            lines += [f"- [{'x' if m.done else ' '}] {m.text}" for m in t.milestones]
        after = unblocks(snapshot, t.id)
        if after:
            lines.append(f"Unblocks: {', '.join(after)}")
        tasks = snapshot.tasks()
        deps = resolve_dependencies(tasks)
        others = [
            x.id
            for x in lifecycle.held_by(tasks.values(), answer.session)
            if x.id != t.id and not lifecycle.is_stuck(x, tasks, deps)
        ]
        if others:
            lines.append(
                f"You also hold {', '.join(others)}: finish it after {t.id}, or give it back "
                f"(`ifcoord release ID`)."
            )
        e = fenced(t)
        lines.append(
            f"Report with `ifcoord progress {t.id} PERCENT --note ...{e}`; when finished "
            f"`ifcoord complete {t.id}{e} --next` (it also answers what to do next); if stuck "
            f"`ifcoord block {t.id} --on ID{e}` or `ifcoord release {t.id}{e}`, then ask "
            f"`ifcoord now` again."
        )
        return "\n".join(lines)
    if answer.action == "done":
        return "ifcoord: every task on the board is done; nothing left to do."
    waits = ", ".join(answer.waiting_on) or "other sessions"
    return f"ifcoord: nothing ready for {answer.session}: waiting on {waits}."


def continue_message(task: Task) -> str:
    """What the Stop hook says when the session stops with an unfinished task."""
    e = fenced(task)
    return (
        f"ifcoord: continue {describe(task)} or block/release it: "
        f"`ifcoord progress {task.id} PERCENT{e}`, `ifcoord complete {task.id}{e} --next` when done, "
        f"`ifcoord block {task.id} --on ID{e}` or `ifcoord release {task.id}{e}`."
    )


def answer_json(answer: NowAnswer, snapshot: Snapshot, stale: frozenset[str]) -> dict[str, Any]:
    """The stable JSON shape of an answer (protocol section 9: `task` and `reason` first)."""

    def full(task: Task | None) -> dict[str, Any] | None:
        if task is None:
            return None
        row = row_for(snapshot, task.id, stale)
        if row is None:
            return None
        out = task_json(row, full=True)
        out["unblocks"] = unblocks(snapshot, task.id)
        out["next_milestone"] = next_milestone(row.task)
        return out

    return {
        "task": full(answer.task),
        "reason": answer.reason,
        "action": answer.action,
        "session": answer.session,
        "primary": full(answer.primary),
        "waiting_on": answer.waiting_on,
        "held": answer.held,
        "claimed": answer.claimed,
        "epoch": answer.epoch,
        "op_id": answer.op_id,
        "message": message(answer, snapshot),
        "commit": snapshot.commit,
    }


# -- the shell: read the branch, claim when holding nothing -----------------------------------


def ask(ws: Workspace, claim: bool = True, fresh: bool = True) -> tuple[NowAnswer, Snapshot, frozenset[str]]:
    """Read the branch and answer; when the answer is "claim" (and claiming is on), claim the
    pick so that one call both claims and tells. The answer is decided again on the state the
    claim is written on (inside the machine's turn at the branch): sessions that read the same
    tip take different tasks, one after the other, instead of racing for the same one.
    fresh=False: start from the state this clone has (an operation of this call just landed
    it); the claim still lands only on the remote's tip."""
    from ifcoord.core.ops import claim_task
    from ifcoord.errors import ConflictError, NotReady
    from ifcoord.files.config import phase_sort_key

    session = ws.session
    state = ws.read(fetch=fresh)
    require_branch(ws, state)

    def answer_for(snapshot: Snapshot, stale: frozenset[str]) -> NowAnswer:
        return decide(snapshot, session, stale, functools.partial(phase_sort_key, snapshot.config))

    decided: list[NowAnswer] = []

    def claim_answer(snapshot: Snapshot, ctx: Any) -> Any:
        answer = answer_for(snapshot, ctx.stale)
        decided.append(answer)
        if answer.action != "claim" or answer.task is None:
            raise NotReady(answer.reason)  # nothing to claim on this state after all
        return claim_task(snapshot, answer.task.id, ctx)

    for _ in range(CLAIM_ATTEMPTS):
        snapshot = state.snapshot
        stale = ws.stale(snapshot)
        answer = answer_for(snapshot, stale)
        if answer.action != "claim" or not claim or answer.task is None:
            return answer, snapshot, stale
        try:
            result, tx = ws.apply(claim_answer)
        except (ConflictError, NotReady):
            state = ws.read(fetch=False)
            continue
        answer = decided[-1]
        assert answer.task is not None
        task_id = answer.task.id
        state = ws.read(fetch=False) if tx.landed else state
        snapshot = state.snapshot
        stale = ws.stale(snapshot)
        task = snapshot.tasks().get(task_id, answer.task)
        claimed = NowAnswer(
            "work", session, task, answer.reason, held=answer.held + [task_id], claimed=True,
            epoch=result.epoch, op_id=tx.op_id,
        )  # fmt: skip
        return claimed, snapshot, stale
    snapshot = state.snapshot
    stale = ws.stale(snapshot)
    return answer_for(snapshot, stale), snapshot, stale


def then_ask(
    ws: Workspace, operation: Operation, task_id: str, force: bool = False, epoch: int | None = None
) -> tuple[OpResult, TxResult, tuple[NowAnswer, Snapshot, frozenset[str]] | None]:
    """`complete --next`, `release --next`: the operation, then `now`'s answer (with the claim
    it makes when the session then holds nothing), in one turn at the branch: the claim follows
    the operation's commit at once instead of queueing again behind the sessions of this
    machine that asked meanwhile (docs/protocol.md, section 3). Two commits, as two commands
    would make; a refused operation raises before anything is claimed. In own-branch mode the
    operation is only a proposal until the arbiter decides it, so there is no answer yet (None):
    `now` would still name the task."""
    from ifcoord.ownbranch.proposals import Proposed

    with ws.one_turn():
        result, tx = ws.apply(operation, task_id=task_id, force=force, epoch=epoch)
        if isinstance(tx.payload, Proposed):
            return result, tx, None
        return result, tx, ask(ws, fresh=False)


def awaiting_message(task_id: str) -> str:
    """What `complete --next` says in own-branch mode, where the completion is a proposal."""
    return (
        f"ifcoord: {task_id} is proposed to the arbiter; ask `ifcoord now` once it has decided "
        "(`ifcoord now --wait 600`)."
    )


def require_branch(ws: Workspace, state: BranchState) -> None:
    """Only `ifcoord init` creates the coordination branch; everything else refuses without it."""
    from ifcoord.errors import UsageError

    if state.commit is None:
        raise UsageError(
            f"no coordination branch {ws.branch} on {ws.remote}",
            hint="create it with `ifcoord init`, or pass the right --branch/--remote",
        )
