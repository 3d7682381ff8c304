"""Which task is ready, and which one a session should take next (docs/protocol.md, section 6).

Pure functions over the tasks of a snapshot. Whether a task's state and owner let it be claimed
is the lifecycle's answer (core/lifecycle.py); which sessions are stale is passed in.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from ifcoord.core import lifecycle
from ifcoord.models import Task

PRIORITY_RANK = {"CRITICAL": 0, "P0": 0, "HIGH": 1, "P1": 1, "MEDIUM": 2, "P2": 2, "LOW": 3, "P3": 3}
ABSENT_PRIORITY = 4


def priority_rank(priority: str | None) -> int:
    """CRITICAL > HIGH > MEDIUM > LOW (P0..P3); the first word counts ("HIGH (blocks x)")."""
    if not priority:
        return ABSENT_PRIORITY
    return _priority_rank(priority)


@functools.lru_cache(maxsize=1024)
def _priority_rank(priority: str) -> int:
    # asked for every ready task when thousands are ordered; boards repeat a few words
    word = priority.strip().split()[0].strip("*_`:,.").upper() if priority.strip() else ""
    return PRIORITY_RANK.get(word, ABSENT_PRIORITY)


def resolve_dependencies(tasks: dict[str, Task]) -> dict[str, list[str]]:
    """Each task's dependencies as task IDs: group prefixes (`P2A`) expand to their members."""
    group = _group_finder(tasks)
    return {
        task_id: _expand(task, tasks, group) if task.depends_tokens else [] for task_id, task in tasks.items()
    }


def task_dependencies(task: Task, tasks: dict[str, Task]) -> list[str]:
    """`resolve_dependencies(tasks)[task.id]`, for one task."""
    return _expand(task, tasks, _group_finder(tasks)) if task.depends_tokens else []


def _group_finder(tasks: dict[str, Task]) -> Callable[[str], list[str] | None]:
    """A group prefix's member tasks (`P2A` -> `P2A.1`, `P2A.2.1`, ...), the groups built when a
    token first names no task: most boards never need them."""
    groups: dict[str, list[str]] | None = None

    def group(token: str) -> list[str] | None:
        nonlocal groups
        if groups is None:
            groups = {}
            for task_id in tasks:
                parts = task_id.split(".")
                for i in range(1, len(parts)):
                    groups.setdefault(".".join(parts[:i]), []).append(task_id)
        return groups.get(token)

    return group


def _expand(task: Task, tasks: dict[str, Task], group: Callable[[str], list[str] | None]) -> list[str]:
    deps: dict[str, None] = {}  # ordered and O(1) to test: a group holds thousands of tasks
    for token in task.depends_tokens:
        members = [token] if token in tasks else (group(token) or [token])
        deps.update((m, None) for m in members if m != task.id)
    return list(deps)


class _Dependants(Mapping[str, set[str]]):
    """Each task's transitive dependants, walked when asked: the scheduler asks only about the
    ready tasks, and holding every set at once is quadratic (a 10,000-task chain took 3 GB)."""

    def __init__(self, deps: dict[str, list[str]]) -> None:
        self._keys = deps
        self._direct: dict[str, list[str]] = {}
        for tid, ds in deps.items():
            for d in ds:
                self._direct.setdefault(d, []).append(tid)

    def __getitem__(self, tid: str) -> set[str]:
        if tid not in self._keys:
            raise KeyError(tid)
        seen: set[str] = set()
        stack = list(self._direct.get(tid, ()))
        while stack:
            nxt = stack.pop()
            if nxt not in seen:
                seen.add(nxt)
                stack.extend(self._direct.get(nxt, ()))
        seen.discard(tid)
        return seen

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def dependants(deps: dict[str, list[str]]) -> Mapping[str, set[str]]:
    """For each task, every task that waits on it directly or indirectly (computed on lookup)."""
    return _Dependants(deps)


def may_take(task: Task, session: str) -> bool:
    """No `Session:` field, or one naming (or matching, as a glob) this session."""
    if not task.sessions:
        return True
    return any(fnmatch.fnmatchcase(session.lower(), s.lower()) for s in task.sessions)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    unmet: tuple[str, ...] = ()  # dependencies that are not done
    reason: str = ""


_READY = Readiness(True)  # one answer shared by the thousands of ready tasks (it is frozen)


def readiness(
    task: Task, tasks: dict[str, Task], deps: dict[str, list[str]], stale: frozenset[str] = frozenset()
) -> Readiness:
    """Ready: the lifecycle lets a session claim it (free, or its owner's lease is stale) and
    nothing it depends on or waits for is unfinished. The same test `claim` applies."""
    unmet = tuple(lifecycle.unmet_dependencies(task, tasks, deps))
    why = lifecycle.claimable(task, stale)
    if why is not None:
        return Readiness(False, unmet, why)
    if unmet:
        return Readiness(False, unmet, "depends on " + lifecycle.describe_unmet(unmet, tasks))
    return _READY


def is_ready(
    task: Task, tasks: dict[str, Task], deps: dict[str, list[str]], stale: frozenset[str] = frozenset()
) -> bool:
    """`readiness(...).ready` without the reasons (asked for every task when a session picks)."""
    return lifecycle.claimable(task, stale) is None and not lifecycle.unmet_dependencies(task, tasks, deps)


@dataclass
class Pick:
    """The scheduler's answer for one session."""

    task: Task | None
    kind: str  # "current", "primary", "filler" or "none"
    reason: str
    candidates: list[Task] = field(default_factory=list)
    # Unfinished primary tasks the session may take that are not ready (filler picks say why).
    blocked: list[str] = field(default_factory=list)


def order_key(task: Task, unblocks: Mapping[str, set[str]], phase_key: Callable[[str], tuple]) -> tuple:
    return (
        priority_rank(task.priority),
        -len(unblocks.get(task.id, ())),
        phase_key(task.phase),
        task.file,
        task.position,
    )


def ready_tasks(
    tasks: dict[str, Task],
    stale: frozenset[str] = frozenset(),
    phase_key: Callable[[str], tuple] = lambda p: (p,),
    session: str | None = None,
    deps: dict[str, list[str]] | None = None,
) -> list[Task]:
    """Ready tasks in the spec's order (primary before filler); only those `session` may take."""
    deps = resolve_dependencies(tasks) if deps is None else deps
    unblocks = dependants(deps)
    ready = [
        t for t in tasks.values()
        if is_ready(t, tasks, deps, stale) and (session is None or may_take(t, session))
    ]  # fmt: skip
    return sorted(ready, key=lambda t: (t.kind != "primary", order_key(t, unblocks, phase_key)))


def next_for(
    session: str,
    tasks: dict[str, Task],
    stale: frozenset[str] = frozenset(),
    phase_key: Callable[[str], tuple] = lambda p: (p,),
    exclude: Iterable[str] = (),
    deps: dict[str, list[str]] | None = None,
    ranked: list[Task] | None = None,
    held: list[Task] | None = None,
) -> Pick:
    """What `session` should work on now: its current task, else a primary, else a filler task.

    `deps`, `ranked` (`ready_tasks` for every session, with these `stale`) and `held` (what
    `session` holds) are the same answers computed once per snapshot (core/derived.py)."""
    skip = set(exclude)
    deps = resolve_dependencies(tasks) if deps is None else deps
    holding = lifecycle.held_by(tasks.values(), session) if held is None else held
    active = [t for t in holding if not lifecycle.is_stuck(t, tasks, deps)]
    if active:
        current = sorted(active, key=lambda t: (t.kind != "primary", t.file, t.position))[0]
        return Pick(current, "current", f"{session} already holds {current.id} ({current.state})")
    everyone = ready_tasks(tasks, stale, phase_key, None, deps) if ranked is None else ranked
    # the same order as ready_tasks(..., session): keeping a sorted list's members keeps its order
    ready = [t for t in everyone if t.id not in skip and may_take(t, session)]
    primaries = [t for t in ready if t.kind == "primary"]
    fillers = [t for t in ready if t.kind == "filler"]
    if primaries:
        pick = primaries[0]
        why_first = explain_order(primaries, deps, phase_key)
        return Pick(pick, "primary", f"{pick.id} is the ready primary task to take first: {why_first}", ready)
    waiting = blocked_primaries(session, tasks, stale, deps)
    # a reason is one line for a person: the first few, not every task times its dependencies
    shown = "; ".join(f"{t.id} {_clip(r)}" for t, r in waiting[:5])
    more = f"; and {len(waiting) - 5} more" if len(waiting) > 5 else ""
    why = f"its primary tasks are blocked: {shown}{more}" if waiting else "no primary task is ready for it"
    blocked = [t.id for t, _ in waiting]
    if fillers:
        pick = fillers[0]
        why_first = explain_order(fillers, deps, phase_key)
        return Pick(
            pick, "filler", f"filler {pick.id}, because {why}; among fillers: {why_first}", ready, blocked
        )
    return Pick(
        None, "none", f"nothing to do for {session}: {why}, and no filler task is ready", blocked=blocked
    )


def explain_order(ordered: list[Task], deps: dict[str, list[str]], phase_key: Callable[[str], tuple]) -> str:
    """Why the first of `ordered` (sorted by `order_key`) comes before the second: the first part
    of the key where they differ, said in words. The order itself is `order_key`'s alone."""
    first = ordered[0]
    if len(ordered) == 1:
        return "the only one ready"
    second = ordered[1]
    unblocks = dependants(deps)
    a, b = order_key(first, unblocks, phase_key), order_key(second, unblocks, phase_key)
    n = len(unblocks.get(first.id, ()))
    if a[0] != b[0]:
        return f"priority {first.priority or 'none'} is above {second.id}'s {second.priority or 'none'}"
    if a[1] != b[1]:
        m = len(unblocks.get(second.id, ()))
        return f"it unblocks {n} task{'s' * (n != 1)}, {second.id} unblocks {m}"
    if a[2] != b[2]:
        return f"phase {first.phase} comes before {second.id}'s phase {second.phase}"
    if a[3] != b[3]:
        return f"its board {first.file} comes before {second.file}"
    return f"same priority, unblocks {n}, same phase: it comes before {second.id} on {first.file}"


def _clip(reason: str, limit: int = 300) -> str:
    return reason if len(reason) <= limit else reason[:limit].rsplit(", ", 1)[0] + ", ..."


def blocked_primaries(
    session: str,
    tasks: dict[str, Task],
    stale: frozenset[str],
    deps: dict[str, list[str]] | None = None,
) -> list[tuple[Task, str]]:
    """Unfinished primary tasks this session may take that are not ready, with the reason."""
    deps = resolve_dependencies(tasks) if deps is None else deps
    out = []
    for t in tasks.values():
        if t.kind != "primary" or t.state in lifecycle.FINISHED or not may_take(t, session):
            continue
        if t.state == "blocked":
            out.append((t, "is blocked" + (f" on {', '.join(t.waiting_on)}" if t.waiting_on else "")))
        elif t.state == "open":
            r = readiness(t, tasks, deps, stale)
            if r.unmet and not r.ready:
                out.append((t, r.reason))
    return out
