"""Agents without a loop: sessions driven only by `ifcoord now` and the Stop hook's answers, and
the loop's own guarantees (one per session, a log with `seq`, no branch made by a typo)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_BOARDS, git, ifcoord_cmd, make_clone, run_ifcoord

FAST = "poll_seconds: 0.1\nheartbeat_seconds: 120\nlease_seconds: 600\n"


def init_example(remote: Path, tmp_path: Path) -> Path:
    admin = make_clone(remote, tmp_path / "admin")
    (admin / "ifcoord.yaml").write_text(FAST)
    args = ["init", "--remote", str(remote), "--config", "ifcoord.yaml"]
    for board in sorted(EXAMPLE_BOARDS.glob("*.md")):
        args += ["--board", str(board)]
    done = run_ifcoord(*args, cwd=admin)
    assert done.returncode == 0, done.stderr
    return admin


@contextmanager
def inside(where: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(where)
    try:
        yield
    finally:
        os.chdir(old)


@dataclass
class HookAgent:
    """Plays a Claude Code session: it does what the Stop hook's reason says, one step a turn,
    and ends each turn with the Stop hook. No background process anywhere."""

    session: str
    clone: Path
    transcript: list[str]
    steps_for: dict[str, int] = field(default_factory=lambda: {"primary": 2, "filler": 3})
    task: str | None = None
    kind: str = "primary"
    done_steps: int = 0
    continuing: bool = False  # the last stop was blocked: this turn is the hook's doing
    stopped: bool = False
    block_first: str | None = None  # block this task on its first step (waits on the given ID)
    completed: list[str] = field(default_factory=list)
    switches: list[str] = field(default_factory=list)
    fillers: list[str] = field(default_factory=list)

    def run(self, *args: str) -> int:
        """One ifcoord command, in this process (the hook contract tests run real processes;
        here speed matters: a whole board is worked)."""
        from ifcoord.cli.app import run

        with inside(self.clone):
            code = run(list(args))
        self.transcript.append(f"{self.session}$ ifcoord {' '.join(args)}  -> exit {code}")
        return code

    def turn(self) -> None:
        if self.task is not None:
            self.step()
        self.stop_hook()

    def step(self) -> None:
        task = self.task
        assert task is not None
        if self.block_first and self.done_steps == 0:
            blocker, self.block_first = self.block_first, None
            assert self.run("block", task, "--on", blocker, "--reason", "needs it first") == 0
            self.task = None
            return
        self.done_steps += 1
        if self.done_steps < self.steps_for[self.kind]:
            pct = 100 * self.done_steps // self.steps_for[self.kind]
            assert self.run("progress", task, str(pct), "--note", f"step {self.done_steps}") == 0
            return
        assert self.run("complete", task, "--tests-passed", "1") == 0
        self.completed.append(task)
        self.task = None

    def stop_hook(self) -> None:
        """The Stop hook as Claude Code would call it, answered by the same code path."""
        from ifcoord.agent.claude import HookOptions, run_hook
        from ifcoord.cli.common import workspace

        data = {"session_id": self.session, "hook_event_name": "Stop", "stop_hook_active": self.continuing}
        with inside(self.clone):
            out = json.loads(json.dumps(run_hook("stop", data, HookOptions(wait=0), workspace)))
        if out.get("decision") != "block":
            self.transcript.append(f"{self.session} Stop hook: allow stop ({out.get('systemMessage')})")
            self.continuing, self.stopped = False, True
            return
        reason: str = out["reason"]
        self.transcript.append(f"{self.session} Stop hook: block: {reason.splitlines()[0]}")
        self.continuing, self.stopped = True, False
        self.follow(reason)

    def follow(self, reason: str) -> None:
        if m := re.match(r"ifcoord: work on (\S+): .*\((primary|filler) task", reason):
            self.task, self.kind, self.done_steps = m.group(1), m.group(2), 0
            if self.kind == "filler":
                self.fillers.append(self.task)
        elif m := re.match(r"ifcoord: continue (\S+) \((\d+)%", reason):
            assert self.task == m.group(1) or self.task is None, (self.task, reason)
            if self.task is None:  # back to a task held from before (a filler under a blocked one)
                self.task, self.kind = m.group(1), "filler" if m.group(1).startswith("F") else "primary"
                self.done_steps = int(m.group(2)) * self.steps_for[self.kind] // 100
        elif m := re.match(r"ifcoord: finish or release filler (\S+): your primary (\S+) is ready", reason):
            self.switches.append(m.group(2))
            assert self.run("release", m.group(1)) == 0
            self.task = None
        elif m := re.match(r"ifcoord: unblock ([\w.]+)", reason):
            assert self.run("unblock", m.group(1)) == 0
            self.task, self.kind, self.done_steps = m.group(1), "primary", 1
        else:
            raise AssertionError(f"{self.session}: cannot follow {reason!r}")


@pytest.mark.slow(17)
@pytest.mark.timeout(400)
def test_three_sessions_finish_the_example_board_by_stop_hook_answers_alone(
    bare_remote: Path, tmp_path: Path
) -> None:
    admin = init_example(bare_remote, tmp_path)
    transcript: list[str] = []
    agents = []
    for i in (1, 2, 3):
        clone = make_clone(bare_remote, tmp_path / f"s{i}")
        assert run_ifcoord("join", f"s{i}", "--remote", str(bare_remote), cwd=clone).returncode == 0
        agents.append(HookAgent(f"s{i}", clone, transcript))
    agents[1].block_first = "T0.1"  # s2 blocks its first task on T0.1: it must get filler work
    for _ in range(120):
        for agent in agents:
            agent.turn()
        if all(a.stopped and a.task is None for a in agents):
            break
    print("\n".join(transcript))  # the transcript, shown with -s
    board = json.loads(run_ifcoord("board", "--remote", str(bare_remote), "--json", cwd=admin).stdout)
    tasks = {t["id"]: t for t in board["tasks"]}
    assert all(t["state"] == "done" for t in tasks.values()), {k: t["state"] for k, t in tasks.items()}
    done = Counter(t for a in agents for t in a.completed)
    assert done == Counter({t: 1 for t in tasks}), done
    log = json.loads(run_ifcoord("log", "--remote", str(bare_remote), "--json", cwd=admin).stdout)
    assert Counter(e["task"] for e in log["entries"] if e["op"] == "complete") == done
    # The blocked session got filler work, and each ready primary was offered to one session.
    assert agents[1].fillers, transcript
    told: dict[str, set[str]] = defaultdict(set)
    for a in agents:
        for primary in a.switches:
            told[primary].add(a.session)
    assert told and all(len(s) == 1 for s in told.values()), told


# -- now ----------------------------------------------------------------------------------------


def test_now_claims_once_and_then_keeps_answering_the_same_task(bare_remote: Path, tmp_path: Path) -> None:
    init_example(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    assert run_ifcoord("join", "s1", "--remote", str(bare_remote), cwd=clone).returncode == 0
    first = json.loads(run_ifcoord("now", "--json", cwd=clone).stdout)
    assert (first["action"], first["claimed"], first["task"]["id"]) == ("work", True, "T0.1")
    assert first["task"]["unblocks"] == ["T0.3", "T0.7"] and first["epoch"] == 1
    assert first["task"]["next_milestone"] == "25% - Package layout and pyproject in place"
    again = json.loads(run_ifcoord("now", "--json", cwd=clone).stdout)
    assert (again["action"], again["claimed"], again["task"]["id"]) == ("work", False, "T0.1")


def test_now_no_claim_answers_without_writing(bare_remote: Path, tmp_path: Path) -> None:
    init_example(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    before = git("rev-parse", "ifcoord", cwd=bare_remote)
    done = run_ifcoord(
        "now", "--no-claim", "--json", "--session", "s1", "--remote", str(bare_remote), cwd=clone
    )
    assert json.loads(done.stdout)["action"] == "claim"
    assert git("rev-parse", "ifcoord", cwd=bare_remote) == before


def test_now_wait_returns_as_soon_as_work_is_ready(bare_remote: Path, tmp_path: Path) -> None:
    admin = make_clone(bare_remote, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text("# P\n\n## T1: First\n\n## T2: Second\n**Depends on:** T1\n")
    (admin / "ifcoord.yaml").write_text(FAST)
    assert run_ifcoord("init", "--remote", str(bare_remote), "--board", "PHASE-0.md", "--config",
                       "ifcoord.yaml", cwd=admin).returncode == 0  # fmt: skip
    other = make_clone(bare_remote, tmp_path / "o")
    assert run_ifcoord("claim", "T1", "-s", "s2", "--remote", str(bare_remote), cwd=other).returncode == 0
    clone = make_clone(bare_remote, tmp_path / "c")
    nothing = run_ifcoord("now", "--json", "-s", "s1", "--remote", str(bare_remote), cwd=clone)
    assert nothing.returncode == 4
    assert json.loads(nothing.stdout)["waiting_on"] == ["T1"]
    waiting = subprocess.Popen(
        [*ifcoord_cmd(), "now", "--json", "--wait", "60", "-s", "s1", "--remote", str(bare_remote)],
        cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started = time.monotonic()
    assert run_ifcoord("complete", "T1", "-s", "s2", "--remote", str(bare_remote), cwd=other).returncode == 0
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert json.loads(out)["task"]["id"] == "T2" and time.monotonic() - started < 30


def test_now_refuses_a_missing_branch_and_creates_nothing(bare_remote: Path, tmp_path: Path) -> None:
    init_example(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    done = run_ifcoord(
        "now", "--json", "-s", "s1", "--remote", str(bare_remote), "--branch", "ifcord", cwd=clone
    )
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["code"] == 2 and "ifcoord init" in done.stderr
    assert git("ls-remote", str(bare_remote), cwd=clone).count("refs/heads/") == 1


# -- the loop -----------------------------------------------------------------------------------


def test_a_second_poll_for_the_same_session_exits_2_naming_the_first(
    bare_remote: Path, tmp_path: Path
) -> None:
    init_example(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    first = subprocess.Popen(
        [*ifcoord_cmd(), "poll", "--json", "-s", "s1", "--remote", str(bare_remote), "--interval", "0.2"],
        cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert first.stdout is not None
        claimed = json.loads(first.stdout.readline())
        assert claimed["event"] == "claimed" and claimed["seq"] == 1
        second = run_ifcoord("poll", "--once", "-s", "s1", "--remote", str(bare_remote), cwd=clone)
        assert second.returncode == 2
        assert f"a loop for session s1 already runs in this clone (process {first.pid}" in second.stderr
        assert first.poll() is None
        # The refused loop marked nothing offline.
        assert "status: offline" not in git("show", "ifcoord:status/s1.yaml", cwd=bare_remote)
        other = run_ifcoord("poll", "--once", "--json", "-s", "s2", "--remote", str(bare_remote), cwd=clone)
        assert other.returncode == 0, other.stderr  # another session in the same clone may loop
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert "status: offline" in git("show", "ifcoord:status/s1.yaml", cwd=bare_remote)


def test_poll_on_a_typo_branch_exits_2_and_creates_nothing(bare_remote: Path, tmp_path: Path) -> None:
    init_example(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    done = run_ifcoord("poll", "-s", "s1", "--remote", str(bare_remote), "--branch", "ifcord", cwd=clone)
    assert done.returncode == 2 and "no coordination branch ifcord" in done.stderr
    heads = git("ls-remote", "--heads", str(bare_remote), cwd=clone)
    assert "ifcord\n" not in heads + "\n" and heads.count("refs/heads/") == 1
    write = run_ifcoord(
        "heartbeat", "-s", "s1", "--remote", str(bare_remote), "--branch", "ifcord", cwd=clone
    )
    assert write.returncode == 2 and "ifcoord init" in write.stderr
    assert git("ls-remote", "--heads", str(bare_remote), cwd=clone).count("refs/heads/") == 1


def test_events_carry_a_growing_seq_and_are_logged_for_events_since(
    bare_remote: Path, tmp_path: Path
) -> None:
    init_example(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    seqs: list[int] = []
    for _ in range(2):
        done = run_ifcoord("poll", "--once", "--json", "-s", "s1", "--remote", str(bare_remote), cwd=clone)
        assert done.returncode == 0, done.stderr
        seqs += [json.loads(line)["seq"] for line in done.stdout.splitlines()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] == 1
    logged = run_ifcoord("events", "--since", str(seqs[0]), "--json", cwd=clone)
    assert [json.loads(line)["seq"] for line in logged.stdout.splitlines()] == seqs[1:]
    assert not list(clone.glob("*.jsonl"))  # nothing in the work tree
    assert (clone / ".git" / "ifcoord" / "events.jsonl").exists()


def _events(proc: subprocess.Popen[str], until: str, task: str | None, seen: list[dict[str, Any]]) -> dict:
    assert proc.stdout is not None
    end = time.monotonic() + 60
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        seen.append(event)
        if event["event"] == until and (task is None or event.get("task") == task):
            return event
    raise AssertionError(f"no {until} {task}: {[e['event'] for e in seen]}")


def test_switch_goes_to_one_session_and_is_withdrawn_when_the_task_is_taken(
    bare_remote: Path, tmp_path: Path
) -> None:
    admin = make_clone(bare_remote, tmp_path / "admin")
    board = (
        "# P\n\n## T1: First\n\n## T2: Second\n**Depends on:** T1\n\n"
        "## Filler\n\n### F1: Docs\n**Kind:** filler\n\n### F2: Tidy\n**Kind:** filler\n"
    )
    (admin / "PHASE-0.md").write_text(board)
    (admin / "ifcoord.yaml").write_text(FAST)
    assert run_ifcoord("init", "--remote", str(bare_remote), "--board", "PHASE-0.md", "--config",
                       "ifcoord.yaml", cwd=admin).returncode == 0  # fmt: skip
    r = str(bare_remote)
    boss = make_clone(bare_remote, tmp_path / "boss")
    assert run_ifcoord("claim", "T1", "-s", "boss", "--remote", r, cwd=boss).returncode == 0
    procs, seen = {}, {"a": [], "b": []}  # type: ignore[var-annotated]
    for name in ("a", "b"):
        clone = make_clone(bare_remote, tmp_path / name)
        procs[name] = subprocess.Popen(
            [*ifcoord_cmd(), "poll", "--json", "-s", name, "--remote", r, "--interval", "0.2"],
            cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    try:
        for name in ("a", "b"):
            assert _events(procs[name], "claimed", None, seen[name])["kind"] == "filler"
        assert run_ifcoord("complete", "T1", "-s", "boss", "--remote", r, cwd=boss).returncode == 0
        # boss runs no loop: once offline it is not counted on to take T2 itself.
        off = run_ifcoord("heartbeat", "--state", "offline", "-s", "boss", "--remote", r, cwd=boss)
        assert off.returncode == 0
        told = _events(procs["a"], "switch-to-primary", "T2", seen["a"])  # "a" sorts first
        assert told["filler"] and told["seq"] > 1
        assert run_ifcoord("claim", "T2", "-s", "boss", "--remote", r, cwd=boss).returncode == 0
        withdrawn = _events(procs["a"], "withdrawn", "T2", seen["a"])
        assert "boss" in withdrawn["message"]
        # b was never told (it may have had any other event in between).
        assert run_ifcoord("complete", "T2", "-s", "boss", "--remote", r, cwd=boss).returncode == 0
        assert run_ifcoord("heartbeat", "-s", "boss", "--remote", r, cwd=boss).returncode == 0
    finally:
        for p in procs.values():
            p.terminate()
        for name, p in procs.items():
            out, _ = p.communicate(timeout=30)
            seen[name] += [json.loads(line) for line in out.splitlines()]
    assert not [e for e in seen["b"] if e["event"] == "switch-to-primary"]


def test_unblocking_your_own_task_is_an_event(bare_remote: Path, tmp_path: Path) -> None:
    admin = make_clone(bare_remote, tmp_path / "admin")
    board = (
        "# P\n\n## T1: Main\n\n## T0: Elsewhere\n**Status:** in_progress\n**Owner:** dave\n\n"
        "## Filler\n\n### F1: Side\n**Kind:** filler\n"
    )
    (admin / "PHASE-0.md").write_text(board)
    (admin / "ifcoord.yaml").write_text(FAST)
    assert run_ifcoord("init", "--remote", str(bare_remote), "--board", "PHASE-0.md", "--config",
                       "ifcoord.yaml", cwd=admin).returncode == 0  # fmt: skip
    r = str(bare_remote)
    clone = make_clone(bare_remote, tmp_path / "c")
    for args in (["claim", "T1"], ["block", "T1", "--on", "T0"]):
        assert run_ifcoord(*args, "-s", "carol", "--remote", r, cwd=clone).returncode == 0
    proc = subprocess.Popen(
        [*ifcoord_cmd(), "poll", "--json", "-s", "carol", "--remote", r, "--interval", "0.2"],
        cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[dict[str, Any]] = []
    try:
        assert _events(proc, "claimed", "F1", seen)["blocked"] == ["T1"]
        other = make_clone(bare_remote, tmp_path / "o")
        assert run_ifcoord("unblock", "T1", "-s", "carol", "--remote", r, cwd=other).returncode == 0
        event = _events(proc, "unblocked", "T1", seen)
        assert event["kind"] == "primary"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
