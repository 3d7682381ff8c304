"""`ifcoord poll` as separate processes over real remotes: the loop an agent session runs."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import git, ifcoord_cmd, make_clone, run_ifcoord

from ifcoord.demo import ScriptedWorker

FAST = "poll_seconds: 0.3\nheartbeat_seconds: 120\nlease_seconds: 600\n"


def init_branch(remote: Path | str, tmp_path: Path, board: str, config: str = FAST) -> Path:
    admin = make_clone(remote, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text(board)
    (admin / "ifcoord.yaml").write_text(config)
    done = run_ifcoord(
        "init", "--remote", str(remote), "--board", "PHASE-0.md", "--config", "ifcoord.yaml", cwd=admin
    )
    assert done.returncode == 0, done.stderr
    return admin


class Poller:
    """One `ifcoord poll --json` process and the events it printed."""

    def __init__(self, session: str, clone: Path, remote: str, *extra: str, interval: float = 0.2) -> None:
        self.session = session
        self.proc = subprocess.Popen(
            [*ifcoord_cmd(), "poll", "--json", "--session", session, "--remote", remote,
             "--interval", str(interval), *extra],
            cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait_for(self, name: str, task: str | None = None, timeout: float = 30) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                event = self.events.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(event)
            if event["event"] == name and (task is None or event.get("task") == task):
                return event
        raise AssertionError(
            f"{self.session}: no {name} {task or ''} event; saw {[e['event'] for e in self.seen]}"
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def commits(bare: Path) -> int:
    return int(git("rev-list", "--count", "ifcoord", cwd=bare))


@pytest.mark.slow(20)
@pytest.mark.timeout(300)  # over ssh and smart HTTP every step costs a handshake
def test_sessions_polling_a_board_with_dependencies_finish_every_task_exactly_once(
    served_remote: tuple[str, Path], tmp_path: Path
) -> None:
    """Over a file remote, smart HTTP and ssh."""
    url, _ = served_remote
    board = (
        "# Phase 0\n\n## T1: Base\n**Status:** open\n\n## T2: Left\n**Depends on:** T1\n\n"
        "## T3: Right\n**Depends on:** T1\n\n## T4: Join\n**Depends on:** T2, T3\n\n"
        "## Filler work\n\n### F1: Docs\n**Status:** open\n\n### F2: Fixtures\n**Status:** open\n"
    )
    init_branch(url, tmp_path, board)
    workers = [ScriptedWorker(f"s{i}", make_clone(url, tmp_path / f"s{i}"), url,
                              interval=0.2, step_seconds=(0.05, 0.1)) for i in range(3)]  # fmt: skip
    for w in workers:
        w.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and sum(len(w.completed) for w in workers) < 6:
            time.sleep(0.2)
    finally:
        for w in workers:
            w.stop()
    done = Counter(t for w in workers for t in w.completed)
    assert done == Counter({"T1": 1, "T2": 1, "T3": 1, "T4": 1, "F1": 1, "F2": 1}), [
        w.errors for w in workers
    ]
    log = json.loads(
        run_ifcoord("log", "--remote", url, "--json", cwd=tmp_path / "admin").stdout
    )
    completes = Counter(e["task"] for e in log["entries"] if e["op"] == "complete")
    assert completes == done
    assert all(not w.errors for w in workers), [w.errors for w in workers]


def test_blocked_session_takes_a_filler_task_and_is_told_when_its_primary_unblocks(
    bare_remote: Path, tmp_path: Path
) -> None:
    board = (
        "# Phase 0\n\n## T1: First\n**Session:** alice\n\n"
        "## T2: Second\n**Session:** bob\n**Depends on:** T1\n\n"
        "## Filler\n\n### F1: Tidy up\n**Kind:** filler\n"
    )
    init_branch(bare_remote, tmp_path, board)
    bob = Poller("bob", make_clone(bare_remote, tmp_path / "bob"), str(bare_remote))
    try:
        claimed = bob.wait_for("claimed")
        assert (claimed["task"], claimed["kind"]) == ("F1", "filler")
        assert "T2 depends on T1" in claimed["reason"]
        assert claimed["blocked"] == ["T2"]  # the primary its reason names, not [] (issue 16)
        alice = make_clone(bare_remote, tmp_path / "alice")
        for args in (["claim", "T1"], ["complete", "T1"]):
            done = run_ifcoord(*args, "--session", "alice", "--remote", str(bare_remote), cwd=alice)
            assert done.returncode == 0, done.stderr
        switch = bob.wait_for("switch-to-primary", "T2")
        assert switch["filler"] == ["F1"]
    finally:
        assert bob.stop() == 0


def test_a_session_whose_task_is_blocked_is_offered_a_filler_task(bare_remote: Path, tmp_path: Path) -> None:
    board = "# Phase 0\n\n## T1: Main\n\n## Filler\n\n### F1: Side job\n"
    init_branch(bare_remote, tmp_path, board)
    clone = make_clone(bare_remote, tmp_path / "c")
    for args in (["claim", "T1"], ["block", "T1", "--reason", "waiting for the API"]):
        done = run_ifcoord(*args, "--session", "carol", "--remote", str(bare_remote), cwd=clone)
        assert done.returncode == 0, done.stderr
    carol = Poller("carol", clone, str(bare_remote))
    try:
        claimed = carol.wait_for("claimed")
        assert claimed["task"] == "F1"
        assert claimed["blocked"] == ["T1"]
    finally:
        carol.stop()


def test_a_killed_session_loses_its_lease_and_another_session_reclaims_the_task(
    bare_remote: Path, tmp_path: Path
) -> None:
    config = "poll_seconds: 0.3\nheartbeat_seconds: 0.5\nlease_seconds: 2\nskew_seconds: 0\n"
    init_branch(bare_remote, tmp_path, "# P\n\n## T1: Only task\n", config)
    a_clone = make_clone(bare_remote, tmp_path / "a")
    a = Poller("sess-a", a_clone, str(bare_remote))
    a.wait_for("claimed", "T1")
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    b = Poller("sess-b", make_clone(bare_remote, tmp_path / "b"), str(bare_remote))
    try:
        started = time.monotonic()
        claimed = b.wait_for("claimed", "T1", timeout=30)
        assert time.monotonic() - started >= 1.0  # not before the lease ran out
        assert claimed["epoch"] == 2
    finally:
        b.stop()
    board = git("show", "ifcoord:boards/PHASE-0.md", cwd=bare_remote)
    assert "**Owner:** sess-b" in board and "**Previous owner:** sess-a" in board
    late = run_ifcoord("complete", "T1", "--session", "sess-a", "--remote", str(bare_remote), cwd=a_clone)
    assert late.returncode == 3
    assert "lease lost" in late.stderr


def test_idle_cycles_make_no_commits(bare_remote: Path, tmp_path: Path) -> None:
    init_branch(bare_remote, tmp_path, "# P\n\n## T1: Blocked\n**Depends on:** T9\n")
    p = Poller("idler", make_clone(bare_remote, tmp_path / "c"), str(bare_remote), interval=0.1)
    try:
        p.wait_for("heartbeat")  # the first cycle says "idle" once
        before = commits(bare_remote)
        time.sleep(2.0)  # about 15 idle cycles
        after = commits(bare_remote)
    finally:
        p.stop()
    assert before == after
    assert [e["event"] for e in p.seen].count("idle") == 1


def test_the_loop_survives_a_remote_that_goes_away_and_recovers(bare_remote: Path, tmp_path: Path) -> None:
    init_branch(bare_remote, tmp_path, "# P\n\n## T1: Work\n**Depends on:** T9\n")
    p = Poller("sturdy", make_clone(bare_remote, tmp_path / "c"), str(bare_remote), interval=0.1)
    hidden = tmp_path / "hidden.git"
    try:
        p.wait_for("heartbeat")
        os.rename(bare_remote, hidden)
        p.wait_for("remote-down")
        assert p.proc.poll() is None
        os.rename(hidden, bare_remote)
        p.wait_for("remote-up", timeout=30)
    finally:
        if hidden.exists():
            os.rename(hidden, bare_remote)
        assert p.stop() == 0


def test_sigterm_finishes_the_cycle_marks_the_session_offline_and_exits_0(
    bare_remote: Path, tmp_path: Path
) -> None:
    init_branch(bare_remote, tmp_path, "# P\n\n## T1: Work\n")
    p = Poller("leaver", make_clone(bare_remote, tmp_path / "c"), str(bare_remote))
    p.wait_for("claimed", "T1")
    assert p.stop() == 0
    p.wait_for("stopped", timeout=5)
    status = git("show", "ifcoord:status/leaver.yaml", cwd=bare_remote)
    assert "status: offline" in status


def test_poll_once_runs_one_cycle_and_exits(bare_remote: Path, tmp_path: Path) -> None:
    init_branch(bare_remote, tmp_path, "# P\n\n## T1: Work\n")
    clone = make_clone(bare_remote, tmp_path / "c")
    done = run_ifcoord(
        "poll", "--once", "--json", "--session", "one", "--remote", str(bare_remote), cwd=clone
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["event"] == "claimed" and events[0]["task"] == "T1"


def test_no_claim_reports_but_never_claims(bare_remote: Path, tmp_path: Path) -> None:
    init_branch(bare_remote, tmp_path, "# P\n\n## T1: Work\n")
    clone = make_clone(bare_remote, tmp_path / "c")
    done = run_ifcoord("poll", "--once", "--no-claim", "--json", "--session", "watcher", "--remote",
                       str(bare_remote), cwd=clone)  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert "claimed" not in names and "idle" in names
    assert "**Owner:**" not in git("show", "ifcoord:boards/PHASE-0.md", cwd=bare_remote)


def test_a_failing_cycle_is_reported_and_the_loop_goes_on(bare_remote: Path, tmp_path: Path) -> None:
    init_branch(bare_remote, tmp_path, "# P\n\n## T1: Later\n**Depends on:** T2\n\n## T2: First\n")
    clone = make_clone(bare_remote, tmp_path / "c")
    p = Poller("sturdy", clone, str(bare_remote), interval=0.1)
    try:
        p.wait_for("claimed", "T2")
        # Another process holds the lock of ifcoord's private ref, and the branch moves: the
        # loop cannot record the new tip, a git error it has no special case for.
        refs = list((clone / ".git" / "refs" / "ifcoord").rglob("ifcoord"))
        assert len(refs) == 1
        lock = refs[0].with_name("ifcoord.lock")
        lock.write_text("")
        other = make_clone(bare_remote, tmp_path / "o")
        assert (
            run_ifcoord("heartbeat", "--session", "other", "--remote", str(bare_remote), cwd=other).returncode
            == 0
        )
        error = p.wait_for("error")
        assert "unexpected error" in error["message"]
        assert p.proc.poll() is None  # still running
        lock.unlink()
        done = run_ifcoord("complete", "T2", "--session", "sturdy", "--remote", str(bare_remote), cwd=clone)
        assert done.returncode == 0, done.stderr
        p.wait_for("claimed", "T1")  # and back at work
    finally:
        assert p.stop() == 0


def test_poll_once_looks_at_the_remote_once(bare_remote: Path, tmp_path: Path) -> None:
    """The check that the branch exists is the first cycle's look: one ls-remote, no second."""
    import shutil

    admin = make_clone(bare_remote, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text("# P\n\n## T1: One\n**Status:** open\n")
    assert run_ifcoord("init", "--board", "PHASE-0.md", cwd=admin).returncode == 0
    assert run_ifcoord("claim", "T1", "-s", "s1", cwd=admin).returncode == 0
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    log = tmp_path / "git.log"
    (wrapper / "git").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {shutil.which("git")} "$@"\n')
    (wrapper / "git").chmod(0o755)
    path = f"{wrapper}{os.pathsep}{os.environ['PATH']}"
    done = run_ifcoord("poll", "--once", "-s", "s1", "--json", cwd=admin, env={"PATH": path})
    assert done.returncode == 0, done.stderr
    # each git command's name: its first word that is not an option
    lines = log.read_text().splitlines()
    commands = [next(w for w in line.split() if not w.startswith("-")) for line in lines]
    assert [c for c in commands if c in ("ls-remote", "fetch", "push")] == ["ls-remote"], commands
