"""The randomized checker for shared mode: several sessions run random operations against a real
remote while faults strike (SIGKILLed ifcoord processes, pushes cut after the server took them,
lapsed leases, a person rewinding the branch, skewed clocks); then the branch history is replayed
and checked.

What must hold, read back from history (the first-parent chain of the final branch):
  - every operation that exited 0 having changed something is on the branch exactly once (by its
    Ifcoord-Op-Id), unless a person's rewind removed it; no op id is on the branch twice;
  - no double owner: an owned task changes hands only by `reclaim` (or a recorded --force);
  - no completion by a non-owner;
  - a task's epoch never decreases;
  - no done task is reopened.

    python testing/chaos.py --ops 2000 --server daemon --cut 0.1
    python testing/chaos.py --ops 2000 --server http
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from servers import free_port, smart_http, wait_for_git  # noqa: E402

from testing.proxy import FaultProxy  # noqa: E402

OPS = ("claim", "claim-next", "progress", "block", "unblock", "complete", "complete-next", "release",
       "reclaim", "heartbeat")  # fmt: skip
WEIGHTS = (14, 10, 14, 5, 5, 6, 5, 7, 6, 8)
# --flow agents: sessions as the agents' snippet runs them (ask `now`, work, `complete --next`)
AGENT_OPS = ("now", "complete-next", "progress", "release", "heartbeat")
AGENT_WEIGHTS = (25, 40, 20, 5, 10)


def git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout


@contextmanager
def git_daemon(tmp: Path):  # type: ignore[no-untyped-def]
    base = tmp / "served"
    base.mkdir()
    bare = base / "remote.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp)
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--export-all", "--enable=receive-pack", "--reuseaddr", f"--base-path={base}",
         "--listen=127.0.0.1", f"--port={port}", "--max-connections=64", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"git://127.0.0.1:{port}/remote.git"
    try:
        wait_for_git(url, what="git daemon")
        yield url, bare, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Record:
    session: str
    op: str
    args: list[str]
    code: int | None
    killed: bool
    op_id: str | None = None
    changed: bool = False
    message: str = ""


@dataclass
class Run:
    records: list[Record] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    removed_ops: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def board(n: int) -> str:
    return "# Phase 0\n\n" + "".join(f"## T{i}: Task {i}\n**Status:** open\n\n" for i in range(1, n + 1))


def ifcoord(args: list[str], cwd: Path, env: dict[str, str], rng: random.Random, kill_p: float,
            run: Run) -> tuple[int | None, str, str, bool]:  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ifcoord", *args], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    killed = False
    if rng.random() < kill_p:
        try:
            proc.wait(timeout=rng.uniform(0.05, 0.6))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the process and its git children
            killed = True
            with run.lock:
                run.faults["SIGKILL of an ifcoord process"] += 1
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out, "timed out after 120 s", True
    return (None if killed else proc.returncode), out, err, killed


def worker(name: str, clone: Path, url: str, tasks: int, ops: int, rng: random.Random, run: Run,
           kill_p: float, skew: float, stop: threading.Event, flow: str = "random") -> None:  # fmt: skip
    env = {**os.environ, "IFCOORD_DEADLINE": "20", "IFCOORD_CLOCK_OFFSET": str(skew)}
    env = {k: v for k, v in env.items() if k != "IFCOORD_SESSION"}
    claimed: list[str] = []  # tasks this session's claims landed on (it may have lost them since)
    current: str | None = None  # agents flow: the task the last answer said to work on
    ops_, weights = (AGENT_OPS, AGENT_WEIGHTS) if flow == "agents" else (OPS, WEIGHTS)
    for _ in range(ops):
        if stop.is_set():
            return
        op = rng.choices(ops_, weights)[0]
        task = f"T{rng.randint(1, tasks)}"
        if flow == "agents" and current is not None and rng.random() < 0.9:
            task = current  # an agent acts on the task it was given (now and then on a stale one)
        elif op == "complete-next" and claimed and rng.random() < 0.8:
            task = rng.choice(claimed)  # mostly one it claimed, so that the next claim happens
        base = ["--session", name, "--remote", url, "--json"]
        args = {
            "now": ["now"],
            "claim": ["claim", task],
            "claim-next": ["claim", "--next"],
            "progress": ["progress", task, str(rng.choice([10, 25, 50, 75, 90]))],
            "block": ["block", task, "--reason", "waiting"],
            "unblock": ["unblock", task],
            "complete": ["complete", task],
            # the completion and, in the same turn at the branch, the claim `now` makes after it
            "complete-next": ["complete", task, "--next"],
            "release": ["release", task],
            "reclaim": ["reclaim", task],
            "heartbeat": ["heartbeat", "--state", rng.choice(["working", "idle", "polling"])],
        }[op] + base
        code, out, err, killed = ifcoord(args, clone, env, rng, kill_p, run)
        rec = Record(name, op, args, code, killed, message=(err.strip().splitlines() or [""])[-1][:200])
        if code == 0:
            try:
                doc = json.loads(out)
                rec.op_id = doc.get("op_id")
                rec.changed = bool(doc.get("changed"))
                if op == "now":  # an answer; a claim when `claimed`, checked as any operation
                    rec.changed = bool(doc.get("claimed"))
                    current = doc["task"]["id"] if doc.get("action") == "work" and doc.get("task") else None
                if rec.changed and doc.get("op") in ("claim", "reclaim") and doc.get("task"):
                    claimed.append(doc["task"]["id"])
                if op in ("complete-next", "release"):
                    current = None
                then = doc.get("next") or {}
                if then.get("action") == "work" and then.get("task"):
                    current = then["task"]["id"]
                if then.get("claimed"):  # the claim that followed: an operation of its own
                    claimed.append(then["task"]["id"])
                    after = ["claim", f"(after complete {task} --next)"]
                    chained = Record(name, "complete-next", after, code, killed, then.get("op_id"), True)
                    with run.lock:
                        run.records.append(chained)
            except ValueError:
                rec.message = f"unparsable output: {out[:200]}"
        with run.lock:
            run.records.append(rec)
        if rng.random() < 0.02:
            # this session goes quiet past its lease: others may reclaim its tasks
            with run.lock:
                run.faults["lapsed lease (session paused past its lease)"] += 1
            stop.wait(4.5)


def rewinder(bare: Path, rng: random.Random, run: Run, stop: threading.Event, every: float) -> None:
    """A person moves the branch back one to three commits now and then (on the server)."""
    while not stop.wait(rng.uniform(every * 0.5, every * 1.5)):
        try:
            tip = git("rev-parse", "ifcoord", cwd=bare).strip()
            count = int(git("rev-list", "--count", "--first-parent", tip, cwd=bare))
            back = min(rng.randint(1, 3), count - 2)
            if back < 1:
                continue
            target = git("rev-parse", f"{tip}~{back}", cwd=bare).strip()
            ids = git("log", "--format=%(trailers:key=Ifcoord-Op-Id,valueonly)", f"{target}..{tip}", cwd=bare)
            git("update-ref", "refs/heads/ifcoord", target, tip, cwd=bare)
        except RuntimeError:
            continue  # the branch moved under us: try later
        with run.lock:
            run.removed_ops.update(x.strip() for x in ids.split() if x.strip())
            run.faults["rewind by a person (1-3 commits)"] += 1


def replay(bare: Path) -> tuple[list[str], Counter[str], int]:
    """Check the branch history; returns (violations, op ids counted, commits)."""
    from ifcoord.core.snapshot import build_snapshot
    from ifcoord.git.history import parse_trailers

    shas = git("rev-list", "--first-parent", "--reverse", "ifcoord", cwd=bare).split()
    violations: list[str] = []
    ids: Counter[str] = Counter()
    before: dict[str, Any] | None = None
    for sha in shas:
        message = git("log", "-1", "--format=%B", sha, cwd=bare)
        trailers = parse_trailers(message)
        if trailers.get("op-id"):
            ids[trailers["op-id"]] += 1
        files = {}
        for path in git("ls-tree", "-r", "--name-only", sha, "boards/", cwd=bare).split():
            files[path] = git("show", f"{sha}:{path}", cwd=bare).encode()
        tasks = build_snapshot(files, sha).tasks()
        now = {tid: (t.owner, t.state, t.epoch) for tid, t in tasks.items()}
        if before is not None:
            op, who, forced = trailers.get("op"), trailers.get("session"), trailers.get("forced") == "true"
            for tid, (owner, state, epoch) in now.items():
                if tid not in before:
                    continue
                old_owner, old_state, old_epoch = before[tid]
                where = f"{sha[:10]} ({op} by {who})"
                if old_owner and owner and owner != old_owner and op != "reclaim" and not forced:
                    violations.append(f"{where}: {tid} passed from {old_owner} to {owner} without a reclaim")
                if state == "done" and old_state != "done" and op == "complete" and not forced:
                    if old_owner != who:
                        violations.append(f"{where}: {tid} completed by {who}, owner was {old_owner}")
                if (epoch or 0) < (old_epoch or 0):
                    violations.append(f"{where}: {tid} epoch went down from {old_epoch} to {epoch}")
                if old_state == "done" and state != "done":
                    violations.append(f"{where}: done task {tid} reopened ({state})")
        before = now
    for op_id, n in ids.items():
        if n > 1:
            violations.append(f"operation {op_id} is on the branch {n} times")
    return violations, ids, len(shas)


def chaos(ops: int, sessions: int, server: str, cut: float, kill: float, rewind_every: float,
          skew: float, seed: int, tasks: int, flow: str = "random") -> dict[str, Any]:  # fmt: skip
    rng = random.Random(seed)
    run = Run()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ifcoord-chaos-") as tmp_, ExitStack() as stack:
        tmp = Path(tmp_)
        home = tmp / "home"
        home.mkdir()
        os.environ["HOME"] = str(home)
        os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
        for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
            os.environ[var] = "Chaos"
        for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
            os.environ[var] = "chaos@example.invalid"
        if server == "http":
            url, bare, port = stack.enter_context(smart_http(tmp))
            prefix = "http://127.0.0.1:{port}/remote.git"
        else:
            url, bare, port = stack.enter_context(git_daemon(tmp))
            prefix = "git://127.0.0.1:{port}/remote.git"
        proxy = FaultProxy(port, seed=seed)
        proxy.cut_probability = cut
        proxied = prefix.format(port=proxy.port)
        admin = tmp / "admin"
        git("init", "-q", str(admin), cwd=tmp)
        git("commit", "-q", "--allow-empty", "-m", "initial", cwd=admin)
        (admin / "PHASE-0.md").write_text(board(tasks))
        (admin / "ifcoord.yaml").write_text("lease_seconds: 4\nheartbeat_seconds: 1\nskew_seconds: 0\n")
        done = subprocess.run(
            [sys.executable, "-m", "ifcoord", "init", "--remote", url, "--board", "PHASE-0.md",
             "--config", "ifcoord.yaml"], cwd=admin, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"init failed: {done.stderr}")
        stop = threading.Event()
        threads = []
        per = max(1, ops // sessions)
        for i in range(sessions):
            clone = tmp / f"s{i}"
            git("init", "-q", str(clone), cwd=tmp)
            offset = rng.choice([0.0, skew, -skew]) if skew else 0.0
            if offset:
                run.faults[f"clock skew ({offset:+.0f} s on one session)"] += 1
            t = threading.Thread(
                target=worker,
                args=(
                    f"s{i}",
                    clone,
                    proxied,
                    tasks,
                    per,
                    random.Random(rng.random()),
                    run,
                    kill,
                    offset,
                    stop,
                    flow,
                ),
            )
            threads.append(t)
        if rewind_every > 0:
            rw = threading.Thread(
                target=rewinder, args=(bare, random.Random(seed + 1), run, stop, rewind_every)
            )
            rw.daemon = True
            rw.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        run.faults["push cut after the server took it"] = proxy.cuts
        proxy.close()
        violations, ids, commits = replay(bare)
        for rec in run.records:
            if rec.code == 0 and rec.changed:
                if not rec.op_id:
                    violations.append(
                        f"{rec.session} {' '.join(rec.args[:2])}: exit 0, changed, but no op id"
                    )
                elif ids[rec.op_id] != 1 and rec.op_id not in run.removed_ops:
                    what = f"{rec.session} {' '.join(rec.args[:2])}"
                    violations.append(f"{what}: exit 0 but on the branch {ids[rec.op_id]} times")
            if rec.code == 1:
                violations.append(f"{rec.session} {' '.join(rec.args[:2])}: unexpected error: {rec.message}")
    codes = Counter("killed" if r.killed else str(r.code) for r in run.records)
    return {
        "server": server,
        "operations": len(run.records),
        "sessions": sessions,
        "seed": seed,
        "exit_codes": dict(sorted(codes.items())),
        "landed": sum(1 for r in run.records if r.code == 0 and r.changed),
        "claims by complete --next": sum(
            r.op == "complete-next" and r.args[0] == "claim" for r in run.records
        ),
        "commits_on_branch": commits,
        "faults": dict(run.faults),
        "removed_by_rewinds": len(run.removed_ops),
        "violations": violations,
        "seconds": round(time.monotonic() - started, 1),
    }


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"chaos over {result['server']}: {result['operations']} operations by {result['sessions']} sessions "
        f"(seed {result['seed']}) in {result['seconds']} s",
        f"  exit codes: {result['exit_codes']}; landed: {result['landed']} (of them claims by "
        f"complete --next: {result['claims by complete --next']}); commits on the branch: "
        f"{result['commits_on_branch']}",
        "  faults: " + (", ".join(f"{k}: {v}" for k, v in result["faults"].items()) or "none"),
        f"  operations removed by rewinds: {result['removed_by_rewinds']}",
        f"  violations: {len(result['violations'])}",
    ]
    lines += [f"    - {v}" for v in result["violations"][:50]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", type=int, default=200)
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--server", choices=["daemon", "http"], default="daemon")
    p.add_argument("--cut", type=float, default=0.1, help="share of pushes cut after the server took them")
    p.add_argument("--kill", type=float, default=0.08, help="share of ifcoord processes SIGKILLed")
    p.add_argument("--rewind-every", type=float, default=20.0, help="seconds between rewinds (0: none)")
    p.add_argument("--skew", type=float, default=900.0, help="clock offset of skewed sessions (s)")
    p.add_argument("--tasks", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--flow", choices=["random", "agents"], default="random",
                   help="random operations and tasks, or agents: now, complete --next, ...")  # fmt: skip
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    result = chaos(
        a.ops, a.sessions, a.server, a.cut, a.kill, a.rewind_every, a.skew, a.seed, a.tasks, a.flow
    )
    print(json.dumps(result) if a.json else summary(result), flush=True)
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
