"""The `team` scenario: many sessions run the poll loop against one remote over `git daemon`, on a
compressed clock, claiming, heartbeating and completing tasks of a big board for a fixed time.

Each session is what `ifcoord poll` runs: a Workspace on its own clone and a PollLoop, here one
thread per session in WORKERS processes forked after the setup (200 interpreters would not fit
2 cores; one interpreter lock for all 200 measured that lock). The clock is the
defaults (poll 30 s, heartbeat 120 s, lease 600 s) divided by one factor, and so is the time a
task takes. Sessions join over one mean task time, so that claims come at the rate they keep
in the steady state (a team started all in one instant is the `contention` scenario). A
session that holds a task works on it for a random time, then completes it; its loop then
claims the next. The history of the branch is the judge: double claims and heartbeat commits
are counted from its trailers.
"""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from harness import Row, git, ms, objects_bytes, packed_size
from lab import Lab

if TYPE_CHECKING:
    from ifcoord.session.workspace import Workspace

BRANCH = "ifcoord"
# The defaults the clock compresses (ifcoord.models.Config; docs/protocol.md).
POLL, HEARTBEAT, LEASE = 30.0, 120.0, 600.0


@dataclass(frozen=True)
class TeamSizes:
    sessions: int
    files: int
    per_file: int
    seconds: float  # how long the team runs (compressed time)
    compression: float  # the defaults and the task times are divided by this
    work: tuple[float, float]  # uncompressed seconds a session works on a task before completing it
    # 1: a session finishes a task with `complete --next` (its next claim in the completion's turn,
    # as docs/agents.md tells agents); 0: `complete`, and the loop claims at its next cycle
    then_next: int = 1

    @property
    def poll(self) -> float:
        return POLL / self.compression

    @property
    def heartbeat(self) -> float:
        return HEARTBEAT / self.compression

    @property
    def lease(self) -> float:
        return LEASE / self.compression

    @property
    def ramp(self) -> float:
        """Sessions join over one mean task time (compressed)."""
        return sum(self.work) / 2 / self.compression


# 200 sessions at the default clock heartbeat 200 / 120 s = 1.7 commits/s, half of what one
# branch carries here (docs/scaling.md section 1): compressing the clock further would ask the
# branch for more than it carries and measure the overload, not the team. Tasks of 2-4 minutes
# (short for an agent, so that a run of a few minutes completes many).
FULL_TEAM = TeamSizes(sessions=200, files=4, per_file=500, seconds=420, compression=1.0, work=(120.0, 240.0))
QUICK_TEAM = TeamSizes(sessions=4, files=1, per_file=30, seconds=8, compression=30.0, work=(30.0, 60.0))


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    claim_seconds: list[float] = field(default_factory=list)
    claim_attempts: list[int] = field(default_factory=list)
    completes: int = 0
    queue_waits: list[float] = field(default_factory=list)
    queue_asked: list[float] = field(default_factory=list)  # when each wait began (monotonic)
    queue_holds: list[float] = field(default_factory=list)
    queue_missed: int = 0
    deferred: int = 0  # heartbeats that gave way to others' work (session/loop.py)
    queue_waited: int = 0  # turns another session of the machine held first
    turn_parts: dict[str, list[float]] = field(default_factory=dict)  # seconds, by part of a turn
    events: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    cycles: list[float] = field(default_factory=list)  # wall seconds of each loop cycle
    cycle_cpu: list[float] = field(default_factory=list)  # CPU seconds of the cycle's own thread
    claim_cpu: list[float] = field(default_factory=list)  # CPU seconds of the claim's thread
    finishes: list[float] = field(default_factory=list)  # seconds of each completion (with --next: and claim)
    applies: list[tuple[float, str]] = field(default_factory=list)  # when each operation began, its op
    # each landed claim: its seconds, when it ended (seconds into the run) and its turns
    # (wait, held, the parts of the turn, whether another's turn came first)
    claim_turns: list[tuple[float, float, list[tuple[float, float, dict[str, float], bool]]]] = field(
        default_factory=list
    )


def percentile99(ranked: list[float]) -> float:
    """The p99 of sorted values, the one rule of every p99 here (nan when there are none)."""
    return ranked[min(len(ranked) - 1, int(0.99 * len(ranked)))] if ranked else float("nan")


def p50_p99(values: list[float]) -> str:
    """"p50 / p99" of the values, or "-" when there are none."""
    ranked = sorted(values)
    return f"{ms(statistics.median(ranked))} / {ms(percentile99(ranked))}" if ranked else "-"


def config_text(sizes: TeamSizes) -> str:
    from ifcoord.files.config import render_default_config

    text = render_default_config()
    for key, value in (("lease_seconds", sizes.lease), ("heartbeat_seconds", sizes.heartbeat),
                       ("poll_seconds", sizes.poll)):  # fmt: skip
        lines = text.splitlines()
        text = "\n".join(f"{key}: {value:g}" if line.startswith(f"{key}:") else line for line in lines) + "\n"
    return text


def history(bare: Path, since: str | None = None) -> tuple[Counter[str], Counter[str]]:
    """Claims per task and commits per operation, from the trailers of the branch history (the
    commits after `since`; claims over the whole history, where a double claim would show)."""
    revs = BRANCH if since is None else f"{since}..{BRANCH}"
    out = git(f"--git-dir={bare}", "log", "--format=%B%x1e", revs)
    claims: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    for body in out.split("\x1e"):
        trailers = dict(
            line.split(": ", 1)
            for line in body.strip().splitlines()
            if line.startswith("Ifcoord-") and ": " in line
        )
        op = trailers.get("Ifcoord-Op")
        if op:
            ops[op] += 1
        if op == "claim" and "Ifcoord-Task" in trailers:
            claims[trailers["Ifcoord-Task"]] += 1
    return claims, ops


def write_gaps(bare: Path, since: str) -> list[float]:
    """For each session, the longest time between two of its commits after `since` (what a
    lease must outlast: its heartbeats, and its claims and completions, which also mark it live)."""
    out = git(f"--git-dir={bare}", "log", "--format=%ct %(trailers:key=Ifcoord-Session,valueonly)%x1e",
              f"{since}..{BRANCH}")  # fmt: skip
    times: dict[str, list[int]] = {}
    for record in out.split("\x1e"):
        stamp, _, session = record.strip().partition(" ")
        if stamp and session.strip():
            times.setdefault(session.strip(), []).append(int(stamp))
    ordered = (sorted(v) for v in times.values())
    return [max((b - a for a, b in zip(t, t[1:], strict=False)), default=0) for t in ordered]


def session_clone(lab: Lab, template: Path, url: str, i: int) -> Path:
    """A clone of its own per session: a copy of an empty repository with `origin` set."""
    where = lab.root / "team" / f"s{i:03d}"
    shutil.copytree(template, where, symlinks=True)
    return where


def run_session(
    i: int, clone: Path, url: str, sizes: TeamSizes, start: float, stop: float, tally: Tally
) -> None:
    from ifcoord.core.ops import complete_task
    from ifcoord.session.loop import Event, PollLoop
    from ifcoord.session.now import then_ask
    from ifcoord.session.workspace import Workspace
    from ifcoord.views.dashboard import render_dashboard

    rng = random.Random(i)
    name = f"team-{i:03d}"
    ws = Workspace(start=clone, session=name, remote=url, branch=BRANCH, dashboard=render_dashboard)
    held: dict[str, float] = {}  # task -> when its work is finished

    def emit(event: Event) -> None:
        with tally.lock:
            tally.events[event.name] += 1
            if event.name in ("error", "lease-lost"):
                tally.errors.append(f"{name}: {event.name}: {event.message}")
        if event.name == "claimed" and event.task:
            took(event.task)

    def took(task: str) -> None:
        held[task] = time.monotonic() + rng.uniform(*sizes.work) / sizes.compression

    apply = ws.apply

    def timed_apply(operation, task_id=None, **kw):  # type: ignore[no-untyped-def]
        began, cpu = time.perf_counter(), time.thread_time()
        TURNS.log = []
        result, tx = apply(operation, task_id=task_id, **kw)
        turns, TURNS.log = TURNS.log, None
        with tally.lock:
            tally.applies.append((began - (time.perf_counter() - time.monotonic()) - start, result.op))
        if result.op == "claim" and tx.landed:
            with tally.lock:
                tally.claim_turns.append((time.perf_counter() - began, time.monotonic() - start, turns))
                tally.claim_cpu.append(time.thread_time() - cpu)
                tally.claim_seconds.append(time.perf_counter() - began)
                tally.claim_attempts.append(tx.attempts)
        return result, tx

    ws.apply = timed_apply  # type: ignore[method-assign]
    loop = PollLoop(ws, emit, interval=sizes.poll)
    time.sleep(max(0.0, start + sizes.ramp * i / sizes.sessions - time.monotonic()))
    try:
        while time.monotonic() < stop:
            for task, done_at in list(held.items()):
                if time.monotonic() >= done_at:
                    del held[task]
                    began = time.perf_counter()
                    try:
                        finish = lambda s, c, t=task: complete_task(s, t, c)  # noqa: E731
                        if sizes.then_next:  # `complete --next`
                            _, _, (answer, _, _) = then_ask(ws, finish, task)
                            if answer.claimed and answer.task is not None:
                                took(answer.task.id)
                        else:
                            ws.apply(finish, task_id=task)
                        with tally.lock:
                            tally.completes += 1
                            tally.finishes.append(time.perf_counter() - began)
                    except Exception as exc:  # noqa: BLE001 - counted, the session goes on
                        with tally.lock:
                            tally.errors.append(f"{name}: complete {task}: {exc}")
            began, cpu = time.perf_counter(), time.thread_time()
            loop.cycle()
            spent, used = time.perf_counter() - began, time.thread_time() - cpu
            with tally.lock:
                tally.cycles.append(spent)
                tally.cycle_cpu.append(used)
            time.sleep(min(loop.next_delay(sizes.poll), max(0.0, stop - time.monotonic())))
    finally:
        with tally.lock:
            tally.deferred += loop.memory.heartbeats_deferred
        ws.store.close()


# Processes the sessions are spread over. A real team is one process per session; 200 threads
# under one interpreter lock measured the lock's queue (a thread back from a git call waited
# behind every other runnable thread), and used one of the two cores. IFCOORD_BENCH_WORKERS
# changes it (fewer threads per process: a turn handed to a waiting thread waits less for its
# process's interpreter lock).
WORKERS = int(os.environ.get("IFCOORD_BENCH_WORKERS", "4"))
ALONE = 9  # claims timed for the baseline
TURNS = threading.local()  # .log: the turns of the operation this thread is applying


def measure_queue(tally: Tally) -> None:
    """Time each turn at the machine queue (git/queue.py) in this process: the wait for it, how
    long it was held, how many went ahead without it, and the parts of the turn (the fetch, the
    reading of the new state, the push; the rest is deciding and writing the commit)."""
    from contextlib import contextmanager

    from ifcoord.git import queue, store, transaction

    original = queue.MachineQueue.turn
    inside = threading.local()

    @contextmanager
    def turn(self, deadline_at, wait=None):  # type: ignore[no-untyped-def]
        asked = time.perf_counter()
        with original(self, deadline_at, wait) as had:
            got = time.perf_counter()
            inside.parts = {}
            try:
                yield had
            finally:
                held = time.perf_counter() - got
                parts, inside.parts = inside.parts, None
                with tally.lock:
                    tally.queue_waits.append(got - asked)
                    tally.queue_asked.append(time.monotonic() - (time.perf_counter() - asked))
                    tally.queue_holds.append(held)
                    tally.queue_missed += not had
                    tally.queue_waited += had.waited
                    parts["rest"] = held - sum(parts.values())
                    for name, seconds in parts.items():
                        tally.turn_parts.setdefault(name, []).append(seconds)
                log = getattr(TURNS, "log", None)
                if log is not None:
                    log.append((got - asked, held, parts, had.waited))

    def timed(owner, name, part):  # type: ignore[no-untyped-def]
        method = getattr(owner, name)

        def wrapper(*args, **kw):  # type: ignore[no-untyped-def]
            parts = getattr(inside, "parts", None)
            if parts is None:
                return method(*args, **kw)
            began = time.perf_counter()
            try:
                return method(*args, **kw)
            finally:
                parts[part] = parts.get(part, 0.0) + time.perf_counter() - began

        setattr(owner, name, wrapper)

    queue.MachineQueue.turn = turn  # type: ignore[method-assign]
    timed(store.BranchStore, "fetch", "fetch")
    timed(store.BranchStore, "push", "push")
    timed(transaction.Transactor, "load", "read")


def run_worker(
    conn: Connection, assigned: list[tuple[int, Path]], url: str, sizes: TeamSizes, start: float, stop: float
) -> None:
    """One process's share of the team; sends back its tally and what it cost."""
    from ifcoord.core import derived, snapshot

    tally = Tally()
    collecting = {"seconds": 0.0, "since": 0.0}

    def collector(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting["since"] = time.perf_counter()
        else:
            collecting["seconds"] += time.perf_counter() - collecting["since"]

    gc.callbacks.append(collector)
    if os.environ.get("IFCOORD_BENCH_GC", "") != "default":
        # One process holds 50 sessions' parsed boards and allocates for all of them: the
        # collector's passes over that heap cost as the square of the sessions per process
        # (with the default thresholds they held the interpreter lock most of the time, cycles
        # took 96 s; with only full passes put off, half the CPU). A session's own process
        # holds one session's. Here only the young generation is collected.
        gc.freeze()  # what the parent built stays out of every collection
        gc.set_threshold(100_000, 1_000_000_000, 1_000_000_000)
    measure_queue(tally)
    cpu, children = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    built = snapshot.BUILDS["commits"], derived.COUNTS["built"]  # the parent's, before the fork
    threads = [
        threading.Thread(target=run_session, args=(i, c, url, sizes, start, stop, tally), daemon=True)
        for i, c in assigned
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, stop - time.monotonic()) + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    conn.send({
        "claim_seconds": tally.claim_seconds, "claim_attempts": tally.claim_attempts,
        "completes": tally.completes, "events": dict(tally.events), "errors": tally.errors[:20],
        "cycles": tally.cycles, "cycle_cpu": tally.cycle_cpu, "claim_cpu": tally.claim_cpu,
        "finishes": tally.finishes,
        "queue_waits": tally.queue_waits, "queue_holds": tally.queue_holds, "queue_asked": tally.queue_asked,
        "queue_missed": tally.queue_missed, "queue_waited": tally.queue_waited, "deferred": tally.deferred,
        "turn_parts": tally.turn_parts, "claim_turns": tally.claim_turns, "applies": tally.applies,
        "python": time.process_time() - cpu, "gc": collecting["seconds"],
        "git": after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime,
        "builds": snapshot.BUILDS["commits"] - built[0], "derived": derived.COUNTS["built"] - built[1],
    })  # fmt: skip
    conn.close()


def ceiling(lab: Lab, writers: int, seconds: float) -> list[Row]:
    """What one branch carries: `writers` sessions heartbeat back to back (each a state change,
    so each is a commit) on a 20-task branch over git daemon; commits landed per second."""
    from ifcoord.core.ops import heartbeat
    from ifcoord.session.workspace import Workspace

    with lab.daemon() as (prefix, served):
        bare = lab.bare("ceiling", served)
        url = f"{prefix}/{bare.name}"
        lab.fast_import_branch(bare, lab.boards_folder(1, 20), 1)
        landed: list[int] = [0] * writers
        pushes: list[int] = [0] * writers
        stop = time.monotonic() + seconds

        def write(i: int) -> None:
            clone = lab.light_clone(url, f"ceiling-{i}")
            ws = Workspace(start=clone, session=f"w{i}", remote=url, branch=BRANCH)
            n = 0
            try:
                while time.monotonic() < stop:
                    n += 1
                    state = "working" if n % 2 else "idle"  # a change each time: always a commit
                    _, tx = ws.apply(lambda s, c, st=state: heartbeat(s, c, st))
                    if tx.landed:
                        landed[i] += 1
                        pushes[i] += tx.attempts
            finally:
                ws.store.close()

        started = time.monotonic()
        threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 120)
        elapsed = time.monotonic() - started
    total = sum(landed)
    return [Row("team", f"branch ceiling: {writers} writers back to back, {elapsed:.0f} s (git daemon)",
                f"{total / elapsed:.1f} commits/s; {sum(pushes) / max(total, 1):.1f} pushes/commit",
                "", "", "")]  # fmt: skip


def team_sizes(quick: bool) -> TeamSizes:
    """FULL_TEAM or QUICK_TEAM; IFCOORD_BENCH_TEAM="sessions=50,compression=2,seconds=120" changes
    fields of it (to explore where the target stops being met; the table says what ran)."""
    sizes = QUICK_TEAM if quick else FULL_TEAM
    spec = os.environ.get("IFCOORD_BENCH_TEAM", "")
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        kind = type(getattr(sizes, key))
        sizes = dataclasses.replace(sizes, **{key: kind(value)})
    return sizes


def daemon_cpu(prefix_port: str) -> float:
    """CPU seconds of `git daemon` and the upload-pack/receive-pack processes it has reaped."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            if b"daemon" not in cmd or prefix_port.encode() not in cmd:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def claims_alone(solo: Workspace, tasks: Iterator[str]) -> list[float]:
    """ALONE claims by `solo` with nobody else about, as the loop makes them (decided on the
    look just taken, then pushed), of the next tasks of `tasks` that are still free: seconds each."""
    from ifcoord.core.ops import claim_task
    from ifcoord.errors import IfcoordError

    times: list[float] = []
    for task in tasks:
        state = solo.poll_state()
        found = state.snapshot.tasks().get(task)
        if found is None or found.owner or found.state != "open":
            continue  # the team took it
        began = time.perf_counter()
        try:
            solo.apply(lambda s, c, t=task: claim_task(s, t, c), task_id=task, fetch_first=False)
        except IfcoordError:
            continue
        times.append(time.perf_counter() - began)
        if len(times) == ALONE:
            break
    return times


def team(lab: Lab, quick: bool) -> list[Row]:
    sizes = team_sizes(quick)
    rows: list[Row] = ceiling(lab, 2 if quick else 8, 2 if quick else 30)
    # The parse cache is on, in the lab's HOME (~/.cache/ifcoord/parses): one for the machine,
    # as for real sessions; whoever lands a commit leaves the parses of the boards it wrote there.
    with lab.daemon() as (prefix, served):
        bare = lab.bare("team", served)
        url = f"{prefix}/{bare.name}"
        boards = lab.boards_folder(sizes.files, sizes.per_file)
        lab.fast_import_branch(bare, boards, 1, config=config_text(sizes))
        template = lab.light_clone(url, "team-template")

        # Baseline: a claim with nobody else about, in a warm workspace, made as the team's are
        # (the loop's claim: decided on the look the cycle just took, then pushed): ALONE claims
        # before the team starts and ALONE after it stops, the median of all. One moment's
        # baseline moved with the machine (64 to 119 ms for the same code in one morning).
        from ifcoord.session.workspace import Workspace
        from ifcoord.views.dashboard import render_dashboard

        solo = Workspace(start=lab.light_clone(url, "solo"), session="solo", remote=url, branch=BRANCH,
                         dashboard=render_dashboard)  # fmt: skip
        solo.read()
        last_tasks = (f"T{sizes.files - 1}.{sizes.per_file - j}" for j in range(sizes.per_file))
        alone_before = claims_alone(solo, last_tasks)

        clones = [session_clone(lab, template, url, i) for i in range(sizes.sessions)]
        old_tip = git(f"--git-dir={bare}", "rev-parse", BRANCH)
        old_bytes = objects_bytes(bare)
        tally = Tally()
        daemon_before = daemon_cpu(prefix.rsplit(":", 1)[1])
        start = time.monotonic()
        stop = start + sizes.seconds
        # forked after the setup: every worker starts with this process's imports and memory
        fork = multiprocessing.get_context("fork")
        pipes, workers = [], []
        for w in range(min(WORKERS, sizes.sessions)):
            assigned = [(i, c) for i, c in enumerate(clones) if i % WORKERS == w]
            receive, send = fork.Pipe(duplex=False)
            proc = fork.Process(
                target=run_worker, args=(send, assigned, url, sizes, start, stop), daemon=True
            )
            proc.start()
            pipes.append(receive)
            workers.append(proc)
        used = {"sessions (Python)": 0.0, "of it garbage collection": 0.0, "their git processes": 0.0}
        built = (0, 0)
        for receive in pipes:
            if not receive.poll(sizes.seconds + 240):
                tally.errors.append("a worker process did not report")
                continue
            part = receive.recv()
            tally.claim_seconds += part["claim_seconds"]
            tally.claim_attempts += part["claim_attempts"]
            tally.completes += part["completes"]
            tally.events.update(part["events"])
            tally.errors += part["errors"]
            tally.cycles += part["cycles"]
            tally.cycle_cpu += part["cycle_cpu"]
            tally.claim_cpu += part["claim_cpu"]
            tally.finishes += part["finishes"]
            tally.queue_waits += part["queue_waits"]
            tally.queue_asked += part["queue_asked"]
            tally.queue_holds += part["queue_holds"]
            tally.queue_missed += part["queue_missed"]
            tally.queue_waited += part["queue_waited"]
            tally.deferred += part["deferred"]
            tally.claim_turns += part["claim_turns"]
            tally.applies += part["applies"]
            for name, seconds in part["turn_parts"].items():
                tally.turn_parts.setdefault(name, []).extend(seconds)
            used["sessions (Python)"] += part["python"]
            used["of it garbage collection"] += part["gc"]
            used["their git processes"] += part["git"]
            built = built[0] + part["builds"], built[1] + part["derived"]
        for proc in workers:
            proc.join(timeout=30)
        elapsed = time.monotonic() - start
        alone_after = claims_alone(solo, last_tasks)  # the same claims, the team gone
        solo.store.close()
        uncontended = statistics.median(alone_before + alone_after)
        used["git daemon"] = daemon_cpu(prefix.rsplit(":", 1)[1]) - daemon_before
        new_tip = git(f"--git-dir={bare}", "rev-parse", BRANCH)
        claims, _ = history(bare)
        _, ops = history(bare, since=old_tip)
        commits = int(git(f"--git-dir={bare}", "rev-list", "--count", f"{old_tip}..{new_tip}"))
        grown = objects_bytes(bare) - old_bytes
        gaps = sorted(write_gaps(bare, old_tip))
        packed = packed_size(bare, new_tip, old_tip)

    doubles = sum(c - 1 for c in claims.values() if c > 1)
    lat = sorted(tally.claim_seconds)
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = percentile99(lat)
    pushes = sum(tally.claim_attempts) / len(tally.claim_attempts) if tally.claim_attempts else float("nan")
    lost = tally.events["lease-lost"]
    label = f"{sizes.sessions} sessions, {sizes.files * sizes.per_file} tasks, {elapsed:.0f} s"
    if sizes.then_next:
        label += ", finishing with complete --next"
    rows.append(Row("team", f"{label}: claims p50 / p99 (landed)",
                    f"{ms(p50)} / {ms(p99)} ({len(lat)})",
                    f"{ms(uncontended)} one claim alone ({ms(statistics.median(alone_before))} before, "
                    f"{ms(statistics.median(alone_after))} after)",
                    f"{p99 / uncontended:.2f}x (p99)", "p99 <= 5x, 0 double, 0 lease lost",
                    p99 <= 5 * uncontended and doubles == 0 and lost == 0))  # fmt: skip
    rows.append(Row("team", "pushes per claim / double claims / leases lost / errors",
                    f"{pushes:.1f} / {doubles} / {lost} / {len(tally.errors)}"))  # fmt: skip

    # A claim made inside a completion's turn (`complete --next`) queued for no turn of its own.
    own = [seconds for seconds, _, turns in tally.claim_turns if turns]
    chained = [seconds for seconds, _, turns in tally.claim_turns if not turns]
    rows.append(Row("team", "claims p50 / p99: on a turn of their own; in the completion's turn "
                    f"({'complete --next' if sizes.then_next else 'not used'})",
                    f"{p50_p99(own)} ({len(own)}); {p50_p99(chained)} ({len(chained)})"))  # fmt: skip
    after = " (with the claim after them)" if sizes.then_next else ""
    rows.append(Row("team", f"completions p50 / p99{after}",
                    f"{p50_p99(tally.finishes)} ({len(tally.finishes)})"))  # fmt: skip
    rows.append(Row("team", "heartbeats that gave way to others' work; a session's longest silence on the "
                    "branch, p50 / max (the lease outlasts it)",
                    f"{tally.deferred}; {statistics.median(gaps) if gaps else 0:.0f} s / "
                    f"{gaps[-1] if gaps else 0:.0f} s (lease {sizes.lease:g} s)"))  # fmt: skip
    label = (
        f"clock: defaults / {sizes.compression:g} (poll {sizes.poll:g} s, heartbeat {sizes.heartbeat:g} s, "
        f"lease {sizes.lease:g} s); tasks {sizes.work[0] / sizes.compression:g}-"
        f"{sizes.work[1] / sizes.compression:g} s; joins over {sizes.ramp:g} s"
    )
    rows.append(Row("team", label, f"{ops['claim']} claimed / {ops['complete']} completed"))
    rows.append(Row("team", "commits/s on the branch: all / heartbeats / claims / completes",
                    f"{commits / elapsed:.1f} / {ops['heartbeat'] / elapsed:.1f} / "
                    f"{ops['claim'] / elapsed:.2f} / {ops['complete'] / elapsed:.2f}"))  # fmt: skip
    per = max(commits, 1)
    rows.append(Row("team", "remote growth: per commit packed / loose; total",
                    f"{packed / per:.0f} B / {grown / per:.0f} B; {grown / 1e6:.1f} MB"))  # fmt: skip
    cycles = sorted(tally.cycles)
    rows.append(Row("team", f"loop cycles: count, p50 / p99; states built per commit ({WORKERS} processes)",
                    f"{len(cycles)}, {ms(statistics.median(cycles)) if cycles else '-'} / "
                    f"{ms(percentile99(cycles)) if cycles else '-'}; "
                    f"{built[0] / per:.2f} (snapshot), {built[1] / per:.2f} (derived)"))  # fmt: skip
    own = sorted(tally.cycle_cpu) or [float("nan")]
    claim_cpu = sum(tally.claim_cpu) / len(tally.claim_cpu) if tally.claim_cpu else float("nan")
    rows.append(Row("team", "CPU of a session's own thread: per cycle (mean, p99) / per landed claim (mean)",
                    f"{ms(sum(own) / len(own))}, {ms(percentile99(own))} / "
                    f"{ms(claim_cpu)}"))  # fmt: skip
    def spread(values: list[float]) -> str:
        ranked = sorted(values) or [float("nan")]
        return f"{p50_p99(ranked)} / {ms(ranked[-1])}"

    rows.append(Row("team", "machine queue: turns; wait p50 / p99 / max; held p50 / p99 / max; gone ahead",
                    f"{len(tally.queue_waits)} ({len(tally.queue_waits) / elapsed:.1f}/s); "
                    f"{spread(tally.queue_waits)}; {spread(tally.queue_holds)}; "
                    f"{tally.queue_missed}"))  # fmt: skip
    parts = tally.turn_parts
    turns = max(len(tally.queue_holds), 1)
    rows.append(Row("team", "a turn: fetch / read / push / the rest, p50 / p99 (share of turns with it); "
                    "turns after another's",
                    "; ".join(f"{name} {spread(parts[name]).rsplit(' / ', 1)[0]} "
                              f"({len(parts[name]) / turns:.0%})"
                              for name in ("fetch", "read", "push", "rest") if parts.get(name))
                    + f"; {tally.queue_waited / turns:.0%}"))  # fmt: skip
    # when the long waits were: seconds into the run, by 10 s
    asked = zip(tally.queue_asked, tally.queue_waits, strict=True)
    late = Counter(int((a - start) // 10) * 10 for a, w in asked if w > 1.0)
    if late:
        when = ", ".join(f"{k} s: {n}" for k, n in sorted(late.items()))
        print(f"team: waits over 1 s, by 10 s of the run: {when}", flush=True)
        # what those 10 s windows held: turns asked, and how long turns were held (mean, max)
        windows: dict[int, list[float]] = {}
        for a, held in zip(tally.queue_asked, tally.queue_holds, strict=True):
            windows.setdefault(int((a - start) // 10) * 10, []).append(held)
        print("team: turns asked / held mean / held max, by 10 s: " + ", ".join(
            f"{k} s: {len(v)} / {ms(sum(v) / len(v))} / {ms(max(v))}" for k, v in sorted(windows.items())
        ), flush=True)  # fmt: skip
    slowest = sorted(tally.claim_turns, key=lambda c: c[0], reverse=True)[: max(3, len(lat) // 50)]
    if slowest:
        print("team: the slowest claims (seconds into the run: total = turns of wait + held [parts]):",
              flush=True)
        for total, at, turns in slowest:
            told = "in the completion's turn (complete --next)" if not turns else "; ".join(
                f"wait {ms(w)} + held {ms(h)} [" + ", ".join(f"{k} {ms(v)}" for k, v in p.items())
                + ("; after another's" if after else "") + "]"
                for w, h, p, after in turns
            )
            print(f"  {at:5.0f} s: {ms(total)} = {told}", flush=True)
        by_window: dict[int, Counter[str]] = {}
        for at, op in tally.applies:
            by_window.setdefault(int(at // 10) * 10, Counter())[op] += 1
        print("team: operations begun, by 10 s: " + ", ".join(
            f"{k} s: " + " ".join(f"{op} {n}" for op, n in sorted(c.items()))
            for k, c in sorted(by_window.items())
        ), flush=True)  # fmt: skip
    cores = ", ".join(f"{k} {v / elapsed:.2f}" for k, v in used.items())
    rows.append(Row("team", "CPU cores used (2 here)", cores))
    if tally.errors:
        print("team: first errors:\n  " + "\n  ".join(tally.errors[:5]), flush=True)
    return rows
