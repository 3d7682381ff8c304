"""What every session computes from one snapshot, computed once per snapshot: the tasks by ID,
their resolved dependencies, which session holds which tasks, and the scheduler's ranking of the
ready tasks for a set of stale sessions.

A loader shares the state at a commit with every Workspace of the process (core/snapshot.py), so
the 200 poll loops of one process that look at the same tip share these answers too: the work a
new commit costs the process no longer grows with the number of sessions. The decisions stay
where they are (core/scheduler.py, core/lifecycle.py); this only remembers their answers, which
is sound because a snapshot is read-only once built.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from ifcoord.core import lifecycle
from ifcoord.core.scheduler import Pick, next_for, ready_tasks, resolve_dependencies
from ifcoord.files.config import phase_sort_key
from ifcoord.models import Snapshot, Task

# Rankings kept per snapshot, one per set of stale sessions: clones judge staleness from their
# own sightings, so a few sets can coexist for one tip; rarely more than two.
_RANKINGS_MAX = 8


class Derived:
    """The answers computed from one snapshot (treat every value as read-only)."""

    def __init__(self, snapshot: Snapshot) -> None:
        # weak: the registry below keeps this object only as long as the snapshot lives
        self._snapshot = weakref.ref(snapshot)
        self._tasks: dict[str, Task] | None = None
        self._deps: dict[str, list[str]] | None = None
        self._holders: dict[str, list[Task]] | None = None
        self._rankings: dict[frozenset[str], list[Task]] = {}
        self._answers: dict[tuple[Any, ...], Any] = {}

    @property
    def snapshot(self) -> Snapshot:
        snapshot = self._snapshot()
        assert snapshot is not None, "a Derived outlived its snapshot"
        return snapshot

    @property
    def tasks(self) -> dict[str, Task]:
        if self._tasks is None:
            self._tasks = self.snapshot.tasks()
        return self._tasks

    @property
    def deps(self) -> dict[str, list[str]]:
        if self._deps is None:
            self._deps = resolve_dependencies(self.tasks)
        return self._deps

    def phase_key(self, phase: str) -> tuple[Any, ...]:
        return phase_sort_key(self.snapshot.config, phase)

    def held(self, session: str) -> list[Task]:
        """`lifecycle.held_by(tasks, session)`, from one pass over the tasks for every session."""
        if self._holders is None:
            holders: dict[str, list[Task]] = {}
            for t in self.tasks.values():
                if t.owner and lifecycle.holds(t, t.owner):
                    holders.setdefault(t.owner, []).append(t)
            self._holders = holders
        return list(self._holders.get(session, ()))

    def ranked(self, stale: frozenset[str]) -> list[Task]:
        """`scheduler.ready_tasks` for every session (the caller keeps those it may take)."""
        ranking = self._rankings.get(stale)
        if ranking is None:
            ranking = ready_tasks(self.tasks, stale, self.phase_key, None, self.deps)
            if len(self._rankings) >= _RANKINGS_MAX:
                self._rankings.clear()
            self._rankings[stale] = ranking
        return ranking

    def pick(self, session: str, stale: frozenset[str], exclude: Iterable[str] = ()) -> Pick:
        """`scheduler.next_for(session, ...)` from these shared answers: what the loop shows and
        what a claim of the next task takes are the one pick."""
        return next_for(
            session, self.tasks, stale, self.phase_key, exclude=exclude,
            deps=self.deps, ranked=self.ranked(stale), held=self.held(session),
        )  # fmt: skip

    def answer(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """`compute()`, once per snapshot and `key`, for a pure decision made in a layer above
        (the loop's primary assignments): `key` must name everything it depends on besides the
        snapshot. Bounded like the rankings."""
        if key not in self._answers:
            if len(self._answers) >= _RANKINGS_MAX:
                self._answers.clear()
            self._answers[key] = compute()
        return self._answers[key]


# One Derived per live snapshot, found by identity (a Snapshot is a pydantic model: neither
# hashable nor a place for private state, which its equality would compare). The entry goes
# when the snapshot does.
_by_snapshot: dict[int, tuple[weakref.ref[Snapshot], Derived]] = {}
_lock = threading.RLock()  # reentrant: a weakref callback may run while it is held
COUNTS = {"built": 0}  # Derived objects made in this process (tests count them)


def derived(snapshot: Snapshot) -> Derived:
    """The shared Derived of `snapshot`."""
    key = id(snapshot)
    with _lock:
        hit = _by_snapshot.get(key)
        if hit is not None and hit[0]() is snapshot:
            return hit[1]
        made = Derived(snapshot)
        _by_snapshot[key] = (weakref.ref(snapshot, _forget(key)), made)
        COUNTS["built"] += 1
        return made


def _forget(key: int) -> Callable[[weakref.ref[Snapshot]], None]:
    def drop(ref: weakref.ref[Snapshot]) -> None:
        with _lock:
            hit = _by_snapshot.get(key)
            if hit is not None and hit[0] is ref:
                del _by_snapshot[key]

    return drop
