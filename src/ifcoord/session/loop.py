"""`ifcoord poll`: the cycle every session runs (docs/protocol.md, section 7).

Each cycle: a cheap look at the remote tip (one ls-remote; objects are fetched only when it
moved), notice lost leases, claim the next task when the session holds none (a filler task
while its own are blocked), heartbeat only when due or when the session's state changed, and
report what the session should do now. A cycle with nothing to do writes nothing.

One loop runs per session per clone (a file lock under .git/ifcoord/). Every event carries a
`seq` that only grows, and is also appended to .git/ifcoord/events.jsonl (`ifcoord events
--since SEQ`), so an agent never has to count lines of a file it redirected output to.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ifcoord.core import lifecycle
from ifcoord.core.derived import derived
from ifcoord.core.leases import heartbeat_due, heartbeat_may_wait
from ifcoord.core.ops import KEEP, claim_next, heartbeat, iso
from ifcoord.core.snapshot import BranchState
from ifcoord.errors import IfcoordError, NotReady, RemoteUnreachable, UsageError
from ifcoord.git.transaction import jitter, now
from ifcoord.models import Snapshot, Task
from ifcoord.ownbranch.proposals import Proposed, pending_json
from ifcoord.session.now import live_sessions, primary_assignments, require_branch
from ifcoord.session.stopping import StopSignal

if TYPE_CHECKING:
    from ifcoord.session.workspace import Workspace

MAX_BACKOFF = 300.0
# Seconds of a loop's life between two `git gc --auto` of its clone: each commit of a busy team
# arrives as loose objects (about 15 KB each in the team bench, 100 MB an hour per clone).
TIDY_EVERY = 600.0


@dataclass
class Event:
    name: str
    session: str
    task: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=now)
    seq: int | None = None  # set when the event is logged

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "event": self.name,
            "time": iso(self.time),
            "session": self.session,
            "task": self.task,
            "message": self.message,
        }
        out.update(self.data)
        return out


class EventLog:
    """The loop's events in this clone, one JSON object a line, each with the next `seq`.

    Appends happen under a file lock and the last `seq` is kept in a file of its own, so two
    loops of different sessions in one clone never hand out the same number.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / "events.jsonl"
        self.counter = home / "events.seq"

    def append(self, event: Event) -> Event:
        from filelock import FileLock

        self.home.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.home / "events.lock")):
            try:
                last = int(self.counter.read_text().strip() or 0)
            except (OSError, ValueError):
                last = 0
            event.seq = last + 1
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(event.to_json(), ensure_ascii=False, default=str) + "\n")
            tmp = self.counter.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(str(event.seq))
            os.replace(tmp, self.counter)
        return event

    def read(self, since: int = 0, session: str | None = None) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash mid-write
            if int(event.get("seq") or 0) > since and (session is None or event.get("session") == session):
                out.append(event)
        return out


@contextmanager
def loop_lock(home: Path, session: str) -> Iterator[None]:
    """Hold this session's loop lock in this clone; a second loop is refused, naming the first."""
    from filelock import FileLock, Timeout

    home.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(home / f"loop-{session}.lock"))
    holder = home / f"loop-{session}.json"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            info = json.loads(holder.read_text())
            who = f"process {info.get('pid')}, started {info.get('started')}"
        except (OSError, ValueError):
            who = "another process"
        raise UsageError(
            f"a loop for session {session} already runs in this clone ({who})",
            hint="stop that one first, or read its events with `ifcoord events --since SEQ`",
        ) from None
    try:
        holder.write_text(json.dumps({"pid": os.getpid(), "started": iso(now())}))
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


@dataclass
class LoopMemory:
    """What the loop carries from one cycle to the next."""

    held: set[str] = field(default_factory=set)  # tasks this session held at the last look
    announced: set[str] = field(default_factory=set)  # primaries this session was told to switch to
    stuck: set[str] = field(default_factory=set)  # held tasks that were stuck at the last look
    remote_down: bool = False
    failures: int = 0
    first: bool = True
    proposed: dict[str, int] = field(default_factory=dict)  # own-branch: task -> claim awaiting the arbiter
    heartbeats_deferred: int = 0  # due heartbeats that gave way to others' work at the branch


# -- pure decisions ---------------------------------------------------------------------------


def session_state(held: list[Task], stuck: set[str]) -> str:
    if not held:
        return "idle"
    if all(t.id in stuck for t in held):
        return "blocked"
    return "working"


# -- the cycle --------------------------------------------------------------------------------


class PollLoop:
    def __init__(
        self,
        ws: Workspace,
        emit: Callable[[Event], None],
        claim: bool = True,
        interval: float | None = None,
    ) -> None:
        self.ws = ws
        self.session: str = ws.session
        self.emit = emit
        self.claim = claim
        self.interval = interval
        self.memory = LoopMemory()
        self.stop = StopSignal()
        self._looked: BranchState | None = None  # a look taken by check_branch, not yet decided on
        self.config_interval = 30.0  # the branch's poll_seconds, as last read
        self.log = EventLog(ws.home)
        self._tidy_at = time.monotonic() + TIDY_EVERY

    def event(self, name: str, task: str | None = None, message: str = "", **data: Any) -> None:
        self.emit(self.log.append(Event(name, self.session, task, message, data)))

    def cycle(self) -> None:
        """One cycle. It never raises: an agent's loop must outlive a bad cycle."""
        try:
            self._cycle()
        except RemoteUnreachable as exc:
            self.memory.failures += 1
            if not self.memory.remote_down:
                self.memory.remote_down = True
                self.event("remote-down", message=exc.line())
        except IfcoordError as exc:
            self.event("error", message=exc.line())
        except Exception as exc:  # noqa: BLE001 - reported as an event; the next cycle tries again
            self.event("error", message=f"unexpected error: {type(exc).__name__}: {exc}")
        if time.monotonic() >= self._tidy_at:
            self._tidy_at = time.monotonic() + TIDY_EVERY
            self.ws.store.tidy()

    def _cycle(self) -> None:
        state, self._looked = self._looked or self.ws.poll_state(), None  # RemoteUnreachable: reported
        if self.memory.remote_down:
            self.memory.remote_down = False
            self.event("remote-up", message=f"{self.ws.remote} answers again")
        self.memory.failures = 0
        rewind = getattr(self.ws, "rewind", None)
        if rewind:  # a person moved the branch back: say so, and which of our tasks changed
            self.event("rewound", message=f"{self.ws.branch} went back to {rewind['to'][:10]}", **rewind)
        self.config_interval = state.snapshot.config.poll_seconds
        self.decide(state.snapshot)

    def decide(self, snapshot: Snapshot) -> None:
        session = self.session
        stale = self.ws.stale(snapshot)
        shared = derived(snapshot)  # computed once per tip for every loop of this process
        tasks = shared.tasks
        if self.awaiting_arbiter(snapshot):
            return
        deps = shared.deps
        held = shared.held(session)
        held_ids = {t.id for t in held}
        previous = set(self.memory.held)
        status = snapshot.statuses.get(session)
        if self.memory.first and status and status.current_task:
            previous.add(status.current_task)  # a revived session learns what it lost
        for lost in sorted(previous - held_ids):
            t = tasks.get(lost)
            if t is not None and t.owner and t.owner != session:
                self.event(
                    "lease-lost",
                    lost,
                    f"{lost} now belongs to {t.owner}; stop work on it",
                    owner=t.owner,
                    epoch=t.epoch,
                )
                try:
                    self.ws.drop_claim(lost)
                except IfcoordError as exc:
                    self.event("error", lost, f"could not withdraw the claim: {exc.line()}")
        if not self.memory.first:
            for found in sorted(held_ids - previous):  # held, never announced (a lost answer)
                self.event("claimed", found, f"work on {found}: {tasks[found].title}", discovered=True)
        self.memory.held = held_ids
        stuck = {t.id for t in held if lifecycle.is_stuck(t, tasks, deps)}
        active = [t for t in held if t.id not in stuck]
        for t in active:
            if t.id in self.memory.stuck:  # unblocked (by `ifcoord unblock` or its blocker done)
                self.event("unblocked", t.id, f"{t.id} is no longer blocked: continue it", kind=t.kind)
        self.memory.stuck = stuck
        if self.memory.first and active:
            current = sorted(active, key=lambda t: (t.kind != "primary", t.file, t.position))[0]
            self.event("working", current.id, f"continue {current.id}: {current.title}", kind=current.kind)
        self.tell_switch(snapshot, tasks, deps, stale, active)
        if not active and self.claim:
            self.claim_next(snapshot, stale, exclude=held_ids, blocked=sorted(stuck))
            return
        if not active and stuck:
            self.event(
                "blocked", sorted(stuck)[0], "every task this session holds is blocked", blocked=sorted(stuck)
            )
        elif not active and self.memory.first:
            self.event("idle", message="holding no task (--no-claim)")
        self.memory.first = False
        self.maybe_heartbeat(snapshot, session_state(held, stuck), active)

    def awaiting_arbiter(self, snapshot: Snapshot) -> bool:
        """Own-branch mode: report the arbiter's verdicts on this session's claim proposals;
        True while one is still pending (the session works on nothing new until then)."""
        if self.memory.first:
            for p in self.ws.mode.pending_claims(snapshot):
                if p.task not in self.memory.proposed:  # a revived loop waits for its own
                    self.memory.proposed[p.task] = p.seq
                    self.event("proposed", p.task, f"proposed {p.task}, waiting for the arbiter", seq=p.seq)
        tasks = derived(snapshot).tasks
        for task_id, seq in sorted(self.memory.proposed.items()):
            verdict = self.ws.mode.decision(snapshot, seq)
            if verdict is None:
                continue
            del self.memory.proposed[task_id]
            task = tasks.get(task_id)
            if verdict.get("verdict") == "accepted" and task is not None and task.owner == self.session:
                self.memory.held.add(task_id)
                self.event("claimed", task_id, f"work on {task_id}: {task.title}", kind=task.kind,
                           reason="decided by the arbiter", epoch=task.epoch, blocked=[])  # fmt: skip
            else:
                owner = task.owner if task is not None else None
                why = verdict.get("reason", "")
                self.event("lost", task_id, f"{task_id} went to {owner or 'nobody'}: {why}", owner=owner)
        if not self.memory.proposed:
            return False
        self.memory.first = False
        self.maybe_heartbeat(snapshot, "idle", [])
        return True

    def tell_switch(
        self,
        snapshot: Snapshot,
        tasks: dict[str, Task],
        deps: dict[str, list[str]],
        stale: frozenset[str],
        active: list[Task],
    ) -> None:
        """On a filler: say when a primary is ready for this session (and for no other session
        first), once; withdraw it when it was taken or done, or went to another session."""
        on_filler = bool(active) and all(t.kind == "filler" for t in active)
        mine: set[str] = set()
        if on_filler:
            shared = derived(snapshot)
            sessions = live_sessions(snapshot, self.session)
            # the same mapping for every reader of this tip: computed once per process
            mapping = shared.answer(
                ("primary-assignments", tuple(sorted(set(sessions))), stale),
                lambda: primary_assignments(shared.tasks, shared.deps, sessions, stale, shared.phase_key),
            )
            mine = {tid for tid, s in mapping.items() if s == self.session}
        for tid in sorted(self.memory.announced - mine):
            self.memory.announced.discard(tid)
            t = tasks.get(tid)
            if t is not None and t.owner == self.session:
                continue  # it took the task itself: the claim says so
            why = (
                f"{tid} is {t.state}" + (f" ({t.owner})" if t.owner else "")
                if t is not None and t.state != "open"
                else f"{tid} went to another session"
            )
            self.event("withdrawn", tid, f"forget the switch to {tid}: {why}", state=t.state if t else None)
        for tid in sorted(mine - self.memory.announced):
            self.memory.announced.add(tid)
            self.event(
                "switch-to-primary",
                tid,
                f"primary task {tid} is ready: finish or release your filler task and claim it",
                filler=[x.id for x in active],
            )

    def claim_next(
        self, snapshot: Snapshot, stale: frozenset[str], exclude: set[str], blocked: list[str]
    ) -> None:
        """Claim the scheduler's pick (primary, else filler); a lost race just means: pick again."""
        tried: set[str] = set(exclude)
        # own-branch: a task another session has already proposed to claim is not worth a race
        others = [p for p in pending_json(snapshot) if p["session"] != self.session and p["op"] == "claim"]
        tried |= {p["task"] for p in others}
        for _ in range(5):
            pick = derived(snapshot).pick(self.session, stale, tried)
            if pick.task is None or pick.kind == "current":
                if blocked:
                    self.event(
                        "blocked",
                        blocked[0],
                        f"every task this session holds is blocked; {pick.reason}",
                        blocked=blocked,
                    )
                elif self.memory.first or pick.task is None:
                    self.event("idle", message=pick.reason)
                self.memory.first = False
                state = "blocked" if blocked else "idle"
                self.maybe_heartbeat(snapshot, state, [])
                return
            # The pick above says there is work; which task is decided again on the state the
            # claim is written on: sessions that saw the same tip take different tasks one after
            # the other, rather than all racing for the same one.
            skip = tuple(sorted(tried))
            try:
                # on the tip this cycle just looked at: a push that finds the tip moved looks
                # again within the same turn (git/transaction.py)
                result, tx = self.ws.apply(partial(claim_next, exclude=skip), fetch_first=False)
            except NotReady:
                # taken by others since this cycle looked: look again at what the claim saw
                snapshot = self.ws.read(fetch=False).snapshot
                continue
            except IfcoordError as exc:
                if isinstance(exc, RemoteUnreachable):
                    self.memory.remote_down = True
                    self.event("remote-down", message=exc.line())
                    return
                tried.add(pick.task.id)  # refused (it stopped being ready, or is not ours to take)
                snapshot = self.ws.read(fetch=False).snapshot
                continue
            if not result.changed or result.pick is None or result.pick.task is None:
                return  # it holds a task after all (decided on the newer state): the next cycle says
            pick = result.pick
            task = pick.task
            task_id = task.id
            self.memory.first = False
            if isinstance(tx.payload, Proposed):
                self.memory.proposed[task_id] = tx.payload.seq
                waiting = f"proposed {task_id}, waiting for the arbiter"
                self.event("proposed", task_id, waiting, seq=tx.payload.seq)
                return
            self.memory.held.add(task_id)
            self.event(
                "claimed",
                task_id,
                f"work on {task_id}: {task.title}",
                kind=pick.kind,
                reason=pick.reason,
                epoch=result.epoch,
                blocked=sorted({*blocked, *pick.blocked}),  # what the reason says is blocked
            )
            return
        self.event("idle", message="every ready task was taken by others this cycle")

    def maybe_heartbeat(self, snapshot: Snapshot, state: str, active: list[Task]) -> None:
        status = snapshot.statuses.get(self.session)
        current = active[0].id if active else None
        changed = status is None or status.status != state or status.current_task != current
        config, at = snapshot.config, now()
        if not heartbeat_due(status, at, config.heartbeat_seconds, bool(changed)):
            return
        if (
            heartbeat_may_wait(status, at, config.heartbeat_seconds, config.lease_seconds, bool(changed))
            and self.ws.mode.others_waiting()
        ):
            # Others of this machine wait for the branch with work (a claim, a completion): a
            # heartbeat only due by time gives way, and the next cycle tries again.
            self.memory.heartbeats_deferred += 1
            return
        try:
            self.ws.apply(lambda s, c: heartbeat(s, c, state, current), fetch_first=False)
        except NotReady:
            return
        except IfcoordError as exc:
            self.event("error", message=exc.line())
            return
        # No `task` here: only claimed/working/unblocked/switch-to-primary name what to work on.
        self.event("heartbeat", None, f"heartbeat ({state})", state=state, current_task=current)

    # -- running ------------------------------------------------------------------------------

    def next_delay(self, snapshot_interval: float) -> float:
        base = self.interval if self.interval is not None else snapshot_interval
        if self.memory.remote_down:
            return min(MAX_BACKOFF, base * 2 ** min(self.memory.failures, 6))
        return jitter(base)

    def run(self, once: bool = False) -> int:
        """Cycles until stopped (SIGINT/SIGTERM): the cycle under way finishes, then a last
        heartbeat marks the session offline. A second loop of the session is refused before it
        does anything, so its exit can never mark the running one's session offline."""
        with loop_lock(self.ws.home, self.session):
            self.check_branch()
            return self._run(once)

    def check_branch(self) -> None:
        """Refuse a branch that does not exist (a typo in --branch): only `init` creates it."""
        try:
            state = self.ws.poll_state()
        except RemoteUnreachable:
            return  # the loop reports remote-down and keeps trying
        require_branch(self.ws, state)
        self._looked = state  # the first cycle decides on this look instead of taking another

    def _run(self, once: bool) -> int:
        self.install_signal_handlers()
        while True:
            self.cycle()
            if once or self.stop.requested:
                break
            if self.stop.sleep(self.next_delay(self.config_interval)):
                break
        if not once:
            self.say_goodbye()
        return 0

    def say_goodbye(self) -> None:
        try:
            self.ws.apply(lambda s, c: heartbeat(s, c, "offline", KEEP))
        except IfcoordError as exc:
            self.event("error", message=f"could not mark the session offline: {exc.line()}")
        except Exception as exc:  # noqa: BLE001 - stopping must not crash on the way out
            self.event("error", message=f"could not mark the session offline: {type(exc).__name__}: {exc}")
        self.event("stopped", message="stopped; session marked offline")

    def install_signal_handlers(self) -> None:
        self.stop.install()
