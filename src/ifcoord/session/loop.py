"""`ifcoord poll`: the cycle every session runs (docs/protocol.md, section 7).

Each cycle: a cheap look at the remote tip (one ls-remote; objects are fetched only when it
moved), notice lost leases, claim the next task when the session holds none (a filler task
while its own are blocked), heartbeat only when due or when the session's state changed, and
report what the session should do now. A cycle with nothing to do writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ifcoord.core import lifecycle
from ifcoord.core.leases import heartbeat_due
from ifcoord.core.ops import KEEP, claim_task, heartbeat, iso
from ifcoord.core.scheduler import next_for, ready_tasks, resolve_dependencies
from ifcoord.errors import IfcoordError, NotReady, RemoteUnreachable
from ifcoord.files.config import phase_sort_key
from ifcoord.git.transaction import jitter, now
from ifcoord.models import Snapshot, Task
from ifcoord.session.stopping import StopSignal

EVENTS = (
    "claimed", "working", "heartbeat", "idle", "switch-to-primary", "blocked",
    "remote-down", "remote-up", "lease-lost", "stopped", "error",
)  # fmt: skip
MAX_BACKOFF = 300.0


@dataclass
class Event:
    name: str
    session: str
    task: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=now)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": self.name,
            "time": iso(self.time),
            "session": self.session,
            "task": self.task,
            "message": self.message,
        }
        out.update(self.data)
        return out


@dataclass
class LoopMemory:
    """What the loop carries from one cycle to the next."""

    held: set[str] = field(default_factory=set)  # tasks this session held at the last look
    announced: set[str] = field(default_factory=set)  # primaries already announced as ready
    remote_down: bool = False
    failures: int = 0
    first: bool = True


# -- pure decisions ---------------------------------------------------------------------------


def session_state(held: list[Task], stuck: set[str]) -> str:
    if not held:
        return "idle"
    if all(t.id in stuck for t in held):
        return "blocked"
    return "working"


def newly_ready_primaries(
    tasks: dict[str, Task],
    deps: dict[str, list[str]],
    session: str,
    stale: frozenset[str],
    announced: set[str],
) -> list[Task]:
    """Primary tasks ready for a session that is on a filler task, not yet announced."""
    ready = ready_tasks(tasks, stale, session=session, deps=deps)
    return [t for t in ready if t.kind == "primary" and t.id not in announced]


# -- the cycle --------------------------------------------------------------------------------


class PollLoop:
    def __init__(
        self,
        ws,  # type: ignore[no-untyped-def]
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
        self.config_interval = 30.0  # the branch's poll_seconds, as last read

    def event(self, name: str, task: str | None = None, message: str = "", **data: Any) -> None:
        self.emit(Event(name, self.session, task, message, data))

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

    def _cycle(self) -> None:
        state = self.ws.poll_state()  # RemoteUnreachable: the caller reports remote-down
        if self.memory.remote_down:
            self.memory.remote_down = False
            self.event("remote-up", message=f"{self.ws.remote} answers again")
        self.memory.failures = 0
        self.config_interval = state.snapshot.config.poll_seconds
        self.decide(state.snapshot)

    def decide(self, snapshot: Snapshot) -> None:
        session = self.session
        stale = self.ws.stale(snapshot)
        tasks = snapshot.tasks()
        deps = resolve_dependencies(tasks)
        held = lifecycle.held_by(tasks.values(), session)
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
        self.memory.held = held_ids
        stuck = {t.id for t in held if lifecycle.is_stuck(t, tasks, deps)}
        active = [t for t in held if t.id not in stuck]
        on_filler = bool(active) and all(t.kind == "filler" for t in active)
        if on_filler or (held and not active):
            for t in newly_ready_primaries(tasks, deps, session, stale, self.memory.announced):
                self.memory.announced.add(t.id)
                if on_filler:
                    self.event(
                        "switch-to-primary",
                        t.id,
                        f"primary task {t.id} is ready: finish or release your filler task and claim it",
                        filler=[x.id for x in active],
                    )
        if not active and self.claim:
            self.claim_next(snapshot, stale, exclude=held_ids, blocked=sorted(stuck))
            return
        if self.memory.first and active:
            current = sorted(active, key=lambda t: (t.kind != "primary", t.file, t.position))[0]
            self.event("working", current.id, f"continue {current.id}: {current.title}", kind=current.kind)
        elif not active and stuck:
            self.event(
                "blocked", sorted(stuck)[0], "every task this session holds is blocked", blocked=sorted(stuck)
            )
        elif not active and self.memory.first:
            self.event("idle", message="holding no task (--no-claim)")
        self.memory.first = False
        self.maybe_heartbeat(snapshot, session_state(held, stuck), active)

    def claim_next(
        self, snapshot: Snapshot, stale: frozenset[str], exclude: set[str], blocked: list[str]
    ) -> None:
        """Claim the scheduler's pick (primary, else filler); a lost race just means: pick again."""
        phase_key = lambda p: phase_sort_key(snapshot.config, p)  # noqa: E731
        tried: set[str] = set(exclude)
        for _ in range(5):
            pick = next_for(
                self.session,
                snapshot.tasks(),
                stale,
                phase_key,
                exclude=tried,
            )
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
            task_id = pick.task.id
            try:
                result, tx = self.ws.apply(lambda s, c, tid=task_id: claim_task(s, tid, c), task_id=task_id)
            except IfcoordError as exc:
                if isinstance(exc, RemoteUnreachable):
                    self.memory.remote_down = True
                    self.event("remote-down", message=exc.line())
                    return
                tried.add(task_id)  # someone else got it first, or it stopped being ready
                snapshot = self.ws.read(fetch=False).snapshot
                continue
            self.memory.held.add(task_id)
            self.memory.first = False
            task = snapshot.tasks()[task_id]
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
        if not heartbeat_due(status, now(), snapshot.config.heartbeat_seconds, bool(changed)):
            return
        try:
            self.ws.apply(lambda s, c: heartbeat(s, c, state, current), fetch_first=False)
        except NotReady:
            return
        except IfcoordError as exc:
            self.event("error", message=exc.line())
            return
        self.event("heartbeat", current, f"heartbeat ({state})", state=state)

    # -- running ------------------------------------------------------------------------------

    def next_delay(self, snapshot_interval: float) -> float:
        base = self.interval if self.interval is not None else snapshot_interval
        if self.memory.remote_down:
            return min(MAX_BACKOFF, base * 2 ** min(self.memory.failures, 6))
        return jitter(base)

    def run(self, once: bool = False) -> int:
        """Cycles until stopped (SIGINT/SIGTERM): the cycle under way finishes, then a last
        heartbeat marks the session offline."""
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
