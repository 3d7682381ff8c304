"""The `team` scenario: many sessions run the poll loop against one remote over `git daemon`, on a
compressed clock, claiming, heartbeating and completing tasks of a big board for a fixed time.

Each session is what `ifcoord poll` runs: a Workspace on its own clone and a PollLoop, here one
thread per session in this process (200 interpreters would not fit 2 cores). Sessions start
spread over one poll interval, as a team does. A session that holds a task works on it for a
random time, then completes it; its loop then claims the next. The history of the branch is
the judge: double claims and heartbeat commits are counted from its trailers.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness import Row, git, ms, objects_bytes, packed_size
from lab import Lab

BRANCH = "ifcoord"


@dataclass(frozen=True)
class TeamSizes:
    sessions: int
    files: int
    per_file: int
    seconds: float  # how long the team runs
    poll: float  # compressed poll interval (the default is 30 s)
    heartbeat: float  # compressed heartbeat interval (the default is 120 s)
    lease: float
    work: tuple[float, float]  # seconds a session works on a task before completing it


FULL_TEAM = TeamSizes(sessions=200, files=4, per_file=500, seconds=90, poll=6.0, heartbeat=24.0, lease=240.0,
                      work=(30.0, 60.0))  # fmt: skip
QUICK_TEAM = TeamSizes(sessions=4, files=1, per_file=30, seconds=6, poll=0.5, heartbeat=2.0, lease=60.0,
                       work=(1.0, 2.0))  # fmt: skip


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    claim_seconds: list[float] = field(default_factory=list)
    claim_attempts: list[int] = field(default_factory=list)
    completes: int = 0
    events: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


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
            held[event.task] = time.monotonic() + rng.uniform(*sizes.work)

    apply = ws.apply

    def timed_apply(operation, task_id=None, **kw):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        result, tx = apply(operation, task_id=task_id, **kw)
        if result.op == "claim" and tx.landed:
            with tally.lock:
                tally.claim_seconds.append(time.perf_counter() - began)
                tally.claim_attempts.append(tx.attempts)
        return result, tx

    ws.apply = timed_apply  # type: ignore[method-assign]
    loop = PollLoop(ws, emit, interval=sizes.poll)
    time.sleep(max(0.0, start + rng.uniform(0, sizes.poll) - time.monotonic()))
    try:
        while time.monotonic() < stop:
            for task, done_at in list(held.items()):
                if time.monotonic() >= done_at:
                    del held[task]
                    try:
                        ws.apply(lambda s, c, t=task: complete_task(s, t, c), task_id=task)
                        with tally.lock:
                            tally.completes += 1
                    except Exception as exc:  # noqa: BLE001 - counted, the session goes on
                        with tally.lock:
                            tally.errors.append(f"{name}: complete {task}: {exc}")
            loop.cycle()
            time.sleep(min(loop.next_delay(sizes.poll), max(0.0, stop - time.monotonic())))
    finally:
        ws.store.close()


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


def team(lab: Lab, quick: bool) -> list[Row]:
    sizes = QUICK_TEAM if quick else FULL_TEAM
    rows: list[Row] = ceiling(lab, 2 if quick else 8, 2 if quick else 30)
    # Threads share one process: the on-disk parse cache would only write the same boards 200
    # times to one disk (a real session, on its own machine, keeps it on).
    saved = os.environ.get("IFCOORD_PARSE_CACHE")
    os.environ["IFCOORD_PARSE_CACHE"] = "0"
    try:
        with lab.daemon() as (prefix, served):
            bare = lab.bare("team", served)
            url = f"{prefix}/{bare.name}"
            boards = lab.boards_folder(sizes.files, sizes.per_file)
            lab.fast_import_branch(bare, boards, 1, config=config_text(sizes))
            template = lab.light_clone(url, "team-template")

            # Baseline: one claim with nobody else about, in a warm workspace.
            from ifcoord.core.ops import claim_task
            from ifcoord.session.workspace import Workspace
            from ifcoord.views.dashboard import render_dashboard

            solo = Workspace(start=lab.light_clone(url, "solo"), session="solo", remote=url, branch=BRANCH,
                             dashboard=render_dashboard)  # fmt: skip
            solo.read()
            alone: list[float] = []
            for j in range(3):
                task = f"T{sizes.files - 1}.{sizes.per_file - j}"
                began = time.perf_counter()
                solo.apply(lambda s, c, t=task: claim_task(s, t, c), task_id=task)
                alone.append(time.perf_counter() - began)
            solo.store.close()
            uncontended = statistics.median(alone)

            clones = [session_clone(lab, template, url, i) for i in range(sizes.sessions)]
            old_tip = git(f"--git-dir={bare}", "rev-parse", BRANCH)
            old_bytes = objects_bytes(bare)
            tally = Tally()
            start = time.monotonic()
            stop = start + sizes.seconds
            threads = [
                threading.Thread(target=run_session, args=(i, c, url, sizes, start, stop, tally), daemon=True)
                for i, c in enumerate(clones)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=sizes.seconds + 120)
            elapsed = time.monotonic() - start
            new_tip = git(f"--git-dir={bare}", "rev-parse", BRANCH)
            claims, _ = history(bare)
            _, ops = history(bare, since=old_tip)
            commits = int(git(f"--git-dir={bare}", "rev-list", "--count", f"{old_tip}..{new_tip}"))
            grown = objects_bytes(bare) - old_bytes
            packed = packed_size(bare, new_tip, old_tip)
    finally:
        if saved is None:
            os.environ.pop("IFCOORD_PARSE_CACHE", None)
        else:
            os.environ["IFCOORD_PARSE_CACHE"] = saved

    doubles = sum(c - 1 for c in claims.values() if c > 1)
    lat = sorted(tally.claim_seconds)
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
    pushes = sum(tally.claim_attempts) / len(tally.claim_attempts) if tally.claim_attempts else float("nan")
    lost = tally.events["lease-lost"]
    label = f"{sizes.sessions} sessions, {sizes.files * sizes.per_file} tasks, {elapsed:.0f} s"
    rows.append(Row("team", f"{label}: claims p50 / p99 (landed)",
                    f"{ms(p50)} / {ms(p99)} ({len(lat)})", f"{ms(uncontended)} one claim alone",
                    f"{p99 / uncontended:.2f}x (p99)", "p99 <= 5x, 0 double, 0 lease lost",
                    p99 <= 5 * uncontended and doubles == 0 and lost == 0))  # fmt: skip
    rows.append(Row("team", "pushes per claim / double claims / leases lost / errors",
                    f"{pushes:.1f} / {doubles} / {lost} / {len(tally.errors)}"))  # fmt: skip
    rows.append(Row("team", "commits/s on the branch: all / heartbeats / claims / completes",
                    f"{commits / elapsed:.1f} / {ops['heartbeat'] / elapsed:.1f} / "
                    f"{ops['claim'] / elapsed:.2f} / {ops['complete'] / elapsed:.2f}"))  # fmt: skip
    per = max(commits, 1)
    rows.append(Row("team", "remote growth: per commit packed / loose; total",
                    f"{packed / per:.0f} B / {grown / per:.0f} B; {grown / 1e6:.1f} MB"))  # fmt: skip
    if tally.errors:
        print("team: first errors:\n  " + "\n  ".join(tally.errors[:5]), flush=True)
    return rows
