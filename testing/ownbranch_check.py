"""A randomized checker for own-branch mode (issue 11): drive sessions with random operations,
SIGKILLs and lapsed leases over a real remote, then replay the coordination branch and every
session branch and check what docs/modes.md section 5 promises.

    python testing/ownbranch_check.py --sessions 3 --ops 40 --seed 7

Not shipped. Prints one JSON report; exit 1 when a property is violated.
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testing.ownbranch_world import (  # noqa: E402
    ARBITER_ENV,
    config_text,
    git,
    guarded_remote,
    init_coordination,
    reader_clone,
    session_clone,
    session_env,
)

BOARD = (
    "# Phase 0\n\n## T1: Base\n\n## T2: Left\n**Depends on:** T1\n\n## T3: Right\n\n## T4: Top\n"
    "**Depends on:** T2, T3\n\n## Filler work\n\n### F1: Docs\n\n### F2: Fixtures\n"
)
TASKS = ("T1", "T2", "T3", "T4", "F1", "F2")


@dataclass
class Report:
    seed: int
    operations: int = 0
    kills: int = 0
    arbiter_rounds: int = 0
    decisions: int = 0
    accepted: int = 0
    commits: int = 0
    views_compared: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return self.__dict__


def cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ifcoord", *args], cwd=cwd, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(proc: subprocess.Popen[str], rng: random.Random, kill_rate: float, report: Report) -> str:
    """Let the process run, or SIGKILL it at a random moment (mid-push, mid-commit, ...)."""
    if rng.random() < kill_rate:
        try:
            proc.wait(timeout=rng.uniform(0.05, 1.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            report.kills += 1
    out, _ = proc.communicate(timeout=120)
    return out if proc.returncode == 0 else ""


def view(clone: Path, skew: float = 0.0) -> dict[str, Any]:
    """What one reader shows: decided facts and pending proposals, with its clock `skew` off."""
    from ifcoord.ownbranch.proposals import pending_json
    from ifcoord.session.workspace import Workspace

    real = time.time
    try:
        time.time = lambda: real() + skew  # type: ignore[assignment]
        state = Workspace(start=clone).read()
    finally:
        time.time = real  # type: ignore[assignment]
    tasks = {t.id: (t.owner, t.state, t.epoch) for t in state.snapshot.tasks().values()}
    return {"tasks": tasks, "pending": pending_json(state.snapshot)}


def replay(bare: Path, sessions: list[str], report: Report) -> None:
    """Check every commit of the coordination branch, and the session branches."""
    from ifcoord.core.snapshot import build_snapshot
    from ifcoord.ownbranch.proposals import decisions_of, proposals_of

    commits = git("rev-list", "--reverse", "ifcoord", cwd=bare).split()
    report.commits = len(commits)
    last: dict[str, tuple[Any, ...]] = {}
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    completions: dict[str, list[str]] = {}
    owner_by_decision: dict[str, str | None] = {}
    bad = report.violations
    for n, commit in enumerate(commits):
        names = git("ls-tree", "-r", "--name-only", commit, cwd=bare).split()
        files = {p: git("show", f"{commit}:{p}", cwd=bare).encode() + b"\n" for p in names
                 if p.endswith((".md", ".yaml"))}  # fmt: skip
        snap = build_snapshot(files, commit)
        new: list[dict[str, Any]] = []
        for name, status in snap.statuses.items():
            for d in decisions_of(status):
                key = (name, int(d["seq"]))
                if key not in seen:
                    seen[key] = d
                    new.append({"session": name, **d})
        # a round decides in (clock, session, seq) order: replay it in that order
        new.sort(key=lambda d: (str(d.get("at")), int(d.get("clock") or 0), d["session"], int(d["seq"])))
        tasks = snap.tasks()
        for d in new:
            report.decisions += 1
            if d.get("verdict") != "accepted":
                continue
            report.accepted += 1
            task = d["task"]
            if d["op"] == "claim":
                owner_by_decision[task] = d["session"]
            elif d["op"] == "release":
                owner_by_decision[task] = None
            elif d["op"] == "complete" and "already done" not in str(d.get("reason")):
                completions.setdefault(task, []).append(d["session"])
                if owner_by_decision.get(task) != d["session"]:
                    bad.append(f"{commit[:8]}: {task} completed by {d['session']}, not its owner "
                               f"{owner_by_decision.get(task)}")  # fmt: skip
        for tid, t in tasks.items():
            now = (t.owner, t.state, t.epoch)
            if t.state != "open" and t.owner != owner_by_decision.get(tid, t.owner):
                bad.append(f"{commit[:8]}: board says {tid} is {t.owner}'s, decisions say "
                           f"{owner_by_decision.get(tid)}'s")  # fmt: skip
            before = last.get(tid)
            if before is not None:
                if t.epoch < before[2]:
                    bad.append(f"{commit[:8]}: epoch of {tid} went down {before[2]} -> {t.epoch}")
                if before[1] == "done" and (t.state != "done" or t.owner != before[0]):
                    bad.append(f"{commit[:8]}: done task {tid} became {t.state} by {t.owner}")
                if before[1] != "done" and t.state == "done" and n and before[0] != t.owner:
                    bad.append(f"{commit[:8]}: {tid} done by {t.owner}, owned by {before[0]}")
            last[tid] = now
    for task, who in completions.items():
        if len(who) > 1:
            bad.append(f"{task} completed {len(who)} times: {who}")
    # Session branches: seq only grows, and every proposal pushed was decided in the end.
    final = {name: decisions_of(build_snapshot({f"status/{name}.yaml": git(
        "show", f"ifcoord:status/{name}.yaml", cwd=bare, check=False).encode()}).statuses.get(name))
             for name in sessions}  # fmt: skip
    for name in sessions:
        history = git(
            "rev-list", "--reverse", f"claude/{name}", "--", f"status/{name}.yaml", cwd=bare
        ).split()
        top = 0
        for commit in history:
            data = git("show", f"{commit}:status/{name}.yaml", cwd=bare).encode()
            snap = build_snapshot({f"status/{name}.yaml": data})
            status = snap.statuses.get(name)
            seq = int((status.model_extra or {}).get("seq") or 0) if status else 0
            if seq < top:
                bad.append(f"claude/{name} {commit[:8]}: seq went down {top} -> {seq}")
            top = max(top, seq)
            for p in proposals_of(status):
                if (name, p.seq) not in seen and p.seq <= top and final.get(name) is not None:
                    decided = max([int(d["seq"]) for d in final[name]] or [0])
                    if p.seq > decided and commit == history[-1]:
                        bad.append(f"claude/{name}: proposal {p.seq} was never decided")


def run_check(where: Path, sessions: int = 3, ops: int = 30, seed: int = 0, kill_rate: float = 0.15,
              lease: float = 2.0) -> Report:  # fmt: skip
    rng = random.Random(seed)
    report = Report(seed)
    started = time.monotonic()
    bare = guarded_remote(where)
    admin = init_coordination(str(bare), where, BOARD, config_text(lease=lease, skew=1, heartbeat=1))
    names = [f"s{i}" for i in range(sessions)]
    clones = {name: session_clone(str(bare), where, name) for name in names}
    readers = [reader_clone(str(bare), where, "reader")]
    quiet_until: dict[str, float] = {}
    held: dict[str, str | None] = {}  # task -> owner, as the arbiter's verdicts said
    for step in range(ops):
        if rng.random() < 0.3:
            out = finish(
                cli(["arbitrate", "--once", "--json"], admin, ARBITER_ENV), rng, kill_rate / 2, report
            )
            report.arbiter_rounds += 1
            for d in json.loads(out).get("decisions", []) if out.strip() else []:
                if d["verdict"] == "accepted" and d["op"] in ("claim", "release", "complete"):
                    held[d["task"]] = d["session"] if d["op"] == "claim" else None
            continue
        awake = [n for n in names if quiet_until.get(n, 0) < time.monotonic()] or names
        name = rng.choice(awake)
        if rng.random() < 0.1:
            quiet_until[name] = time.monotonic() + lease * 1.5  # its lease lapses meanwhile
        mine = [t for t, who in held.items() if who == name]
        # mostly work on what the arbiter gave this session; sometimes on anything (refusals)
        task = rng.choice(mine) if mine and rng.random() < 0.8 else rng.choice(TASKS)
        action = rng.choice(
            ["claim-next", "claim", "progress", "complete", "complete", "release", "heartbeat"]
        )
        args = {
            "claim-next": ["claim", "--next"],
            "claim": ["claim", task],
            "progress": ["progress", task, str(rng.choice([25, 50, 75]))],
            "complete": ["complete", task],
            "release": ["release", task],
            "heartbeat": ["heartbeat"],
        }[action]
        finish(cli(args, clones[name], session_env(name)), rng, kill_rate, report)
        report.operations += 1
        if step % 10 == 9:
            compare_views(readers, clones, report)
    for _ in range(2):
        finish(cli(["arbitrate", "--once"], admin, ARBITER_ENV), rng, 0.0, report)
        report.arbiter_rounds += 1
    compare_views(readers, clones, report, fresh=reader_clone(str(bare), where, "fresh"))
    replay(bare, names, report)
    report.seconds = round(time.monotonic() - started, 1)
    return report


def compare_views(
    readers: list[Path], clones: dict[str, Path], report: Report, fresh: Path | None = None
) -> None:
    """Every reader of the same tips shows the same: sessions, an old reader, a skewed clock."""
    seen = {"reader": view(readers[0]), "reader+1h": view(readers[0], skew=3600)}
    for name, clone in clones.items():
        seen[name] = view(clone, skew=-30)
    if fresh is not None:
        seen["fresh"] = view(fresh)
    first = next(iter(seen.values()))
    report.views_compared += len(seen)
    for who, v in seen.items():
        if v != first:
            report.violations.append(f"reader {who} disagrees: {v} != {first}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--ops", type=int, default=40)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--kill-rate", type=float, default=0.15)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[user]\n\tname = checker\n"
                                         "\temail = checker@example.invalid\n")  # fmt: skip
        os.environ.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
        report = run_check(Path(tmp), a.sessions, a.ops, a.seed, a.kill_rate)
    print(json.dumps(report.to_json(), indent=2))
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
