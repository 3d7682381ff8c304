"""Own-branch mode: sessions that may push only their own branch (protocol section 7)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import git, ifcoord_cmd, run_ifcoord

from ifcoord.core.snapshot import build_snapshot
from ifcoord.demo import ScriptedWorker

CONFIG = 'mode: own-branch\nsession_branches: "claude/*"\npoll_seconds: 0.3\nheartbeat_seconds: 120\n'
HOOK = """#!/bin/sh
# Only the arbiter may push the coordination branch; sessions push only claude/<their name>.
while read old new ref; do
  if [ "$ref" = "refs/heads/ifcoord" ] && [ "$IFCOORD_ROLE" != "arbiter" ]; then
    echo "sessions may push only their own branch" >&2; exit 1
  fi
  if [ -n "$IFCOORD_SESSION_BRANCH" ] && [ "$ref" != "refs/heads/$IFCOORD_SESSION_BRANCH" ]; then
    echo "session pushed $ref, not its own branch" >&2; exit 1
  fi
  if [ "$BLOCK_SESSION_PUSHES" = "1" ]; then echo "pushes paused" >&2; exit 1; fi
done
"""
ARBITER = {"IFCOORD_ROLE": "arbiter"}


def guarded_remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(bare))
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    return bare


def init_coordination(bare: Path, tmp_path: Path, board: str) -> Path:
    admin = tmp_path / "admin"
    git("init", "-q", str(admin))
    (admin / "ifcoord.yaml").write_text(CONFIG)
    (admin / "PHASE-0.md").write_text(board)
    done = run_ifcoord("init", "--remote", str(bare), "--board", "PHASE-0.md", "--config", "ifcoord.yaml",
                       cwd=admin, env=ARBITER)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return admin


def session_clone(bare: Path, tmp_path: Path, name: str) -> Path:
    """An agent's clone on its own branch claude/<name>, already pushed, joined as <name>."""
    clone = tmp_path / name
    git("init", "-q", str(clone))
    git("remote", "add", "origin", str(bare), cwd=clone)
    git("checkout", "-q", "-b", f"claude/{name}", cwd=clone)
    (clone / "work.py").write_text(f"# {name}'s work\n")
    git("add", "work.py", cwd=clone)
    git("commit", "-q", "-m", "start", cwd=clone)
    git("push", "-q", "origin", f"claude/{name}", cwd=clone)
    assert run_ifcoord("join", name, cwd=clone).returncode == 0
    return clone


def env_for(name: str, **extra: str) -> dict[str, str]:
    return {"IFCOORD_SESSION_BRANCH": f"claude/{name}", **extra}


BOARD = (
    "# Phase 0\n\n## T1: Base\n\n## T2: Left\n**Depends on:** T1\n\n## T3: Right\n**Depends on:** T1\n\n"
    "## Filler work\n\n### F1: Docs\n\n### F2: Fixtures\n"
)
ALL_TASKS = ("T1", "T2", "T3", "F1", "F2")


@pytest.mark.timeout(300)
def test_four_own_branch_sessions_work_a_board_to_the_end_and_the_arbiter_shows_it(tmp_path: Path) -> None:
    bare = guarded_remote(tmp_path)
    admin = init_coordination(bare, tmp_path, BOARD)
    names = [f"s{i}" for i in range(4)]
    workers = []
    for name in names:
        clone = session_clone(bare, tmp_path, name)
        w = ScriptedWorker(name, clone, str(bare), interval=0.3, step_seconds=(0.05, 0.1), env=env_for(name))
        w.start()
        workers.append(w)
    arbiter = subprocess.Popen([*ifcoord_cmd(), "arbitrate", "--interval", "0.5", "--remote", str(bare)],
                               cwd=admin, env={**os.environ, **ARBITER},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and sum(len(w.completed) for w in workers) < len(ALL_TASKS):
            time.sleep(0.3)
    finally:
        for w in workers:
            w.stop()
        arbiter.terminate()
        arbiter.wait(timeout=30)
    done = Counter(t for w in workers for t in w.completed)
    assert done == Counter(dict.fromkeys(ALL_TASKS, 1)), [w.errors for w in workers]
    # Two sessions may claim one task in the same cycle; the loser is told "lease lost" and
    # moves on. Nothing else may go wrong.
    assert all("lease lost" in e for w in workers for e in w.errors), [w.errors for w in workers]
    # One last fold, then the arbiter's board must say what the status files say.
    final = run_ifcoord("arbitrate", "--once", "--remote", str(bare), cwd=admin, env=ARBITER)
    assert final.returncode == 0, final.stderr
    board = build_snapshot({"boards/PHASE-0.md": git("show", "ifcoord:boards/PHASE-0.md", cwd=bare).encode()})
    by_status: dict[str, str] = {}
    for name in names:
        status = git("show", f"claude/{name}:status/{name}.yaml", cwd=bare)
        snap = build_snapshot({f"status/{name}.yaml": status.encode()})
        for task in snap.statuses[name].completed:
            assert task not in by_status, f"{task} completed by {by_status.get(task)} and {name}"
            by_status[task] = name
    for task in board.tasks().values():
        assert task.state == "done", task
        assert task.owner == by_status[task.id]
    # No session wrote outside its own branch: every ifcoord commit on claude/<name> touches
    # only that session's status file, and the coordination branch has only init and the arbiter.
    for name in names:
        log = git("log", "--format=%x00%s", "--name-only", f"claude/{name}", cwd=bare)
        for record in log.split("\x00")[1:]:
            subject, *paths = [line for line in record.splitlines() if line]
            if subject.startswith("ifcoord:"):
                assert paths == [f"status/{name}.yaml"], (name, subject, paths)
    authors = set(git("log", "--format=%an", "ifcoord", cwd=bare).splitlines())
    assert authors <= {"ifcoord", "arbiter"}


def test_two_sessions_that_claim_one_task_concurrently_agree_on_the_winner(tmp_path: Path) -> None:
    bare = guarded_remote(tmp_path)
    init_coordination(bare, tmp_path, "# P\n\n## T1: Contested\n\n## T2: Other\n")
    alice, bob = session_clone(bare, tmp_path, "alice"), session_clone(bare, tmp_path, "bob")
    # Neither sees the other's claim: both commit it locally while pushes are paused.
    for clone, name in ((alice, "alice"), (bob, "bob")):
        paused = run_ifcoord("claim", "T1", cwd=clone, env=env_for(name, BLOCK_SESSION_PUSHES="1"))
        assert paused.returncode == 5 and "retries next cycle" in paused.stderr, paused.stderr
    # Pushes resume; each loop's next cycle pushes its claim and reads the other's.
    for clone, name in ((bob, "bob"), (alice, "alice"), (bob, "bob")):
        cycle = run_ifcoord("poll", "--once", "--json", cwd=clone, env=env_for(name))
        assert cycle.returncode == 0, cycle.stderr
        events = [json.loads(line) for line in cycle.stdout.splitlines()]
        if name == "bob" and any(e["event"] == "lease-lost" for e in events):
            lost = next(e for e in events if e["event"] == "lease-lost")
            assert (lost["task"], lost["owner"]) == ("T1", "alice")
            claimed = next(e for e in events if e["event"] == "claimed")
            assert claimed["task"] == "T2"  # the loser moved on within the cycle
    views = []
    for clone, name in ((alice, "alice"), (bob, "bob")):
        board = json.loads(run_ifcoord("board", "--json", cwd=clone, env=env_for(name)).stdout)
        views.append({t["id"]: t["owner"] for t in board["tasks"]})
    assert views[0] == views[1] == {"T1": "alice", "T2": "bob"}
    refused = run_ifcoord("complete", "T1", cwd=bob, env=env_for("bob"))
    assert refused.returncode == 3


def test_own_branch_writes_touch_only_the_status_file_of_the_users_clone(tmp_path: Path) -> None:
    bare = guarded_remote(tmp_path)
    init_coordination(bare, tmp_path, "# P\n\n## T1: Work\n")
    clone = session_clone(bare, tmp_path, "dana")
    (clone / "work.py").write_text("# edited, not committed\n")
    (clone / "notes.txt").write_text("untracked\n")
    before = git("status", "--porcelain", cwd=clone)
    done = run_ifcoord("claim", "T1", cwd=clone, env=env_for("dana"))
    assert done.returncode == 0, done.stderr
    assert git("status", "--porcelain", cwd=clone) == before
    assert git("log", "-1", "--format=%s", cwd=clone) == "ifcoord: claim T1 by dana"
    assert git("diff", "--name-only", "HEAD~1", "HEAD", cwd=clone) == "status/dana.yaml"
    assert git("rev-parse", "claude/dana", cwd=bare) == git("rev-parse", "HEAD", cwd=clone)
    # A merge in progress: the write is refused with a clear line and nothing changes.
    (clone / ".git" / "MERGE_HEAD").write_text(git("rev-parse", "HEAD", cwd=clone) + "\n")
    busy = run_ifcoord("progress", "T1", "50", cwd=clone, env=env_for("dana"))
    assert busy.returncode == 5 and "merge is in progress" in busy.stderr
    assert git("log", "-1", "--format=%s", cwd=clone) == "ifcoord: claim T1 by dana"


def test_a_coordination_branch_made_by_hand_with_plain_git_works(tmp_path: Path) -> None:
    bare = guarded_remote(tmp_path)
    by_hand = tmp_path / "by-hand"
    git("init", "-q", "-b", "ifcoord", str(by_hand))
    (by_hand / "ifcoord.yaml").write_text(CONFIG)
    (by_hand / "boards").mkdir()
    (by_hand / "boards" / "PHASE-0.md").write_text("# Phase 0\n\n## T1: Hand-made task\n**Status:** TODO\n")
    git("add", ".", cwd=by_hand)
    git("commit", "-q", "-m", "a board, by hand", cwd=by_hand)
    pushed = subprocess.run(["git", "push", "-q", str(bare), "ifcoord"], cwd=by_hand, capture_output=True,
                            env={**os.environ, **ARBITER})  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    clone = session_clone(bare, tmp_path, "erin")
    done = run_ifcoord("claim", "--next", "--json", cwd=clone, env=env_for("erin"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["task"]["id"] == "T1"
    board = json.loads(run_ifcoord("board", "--json", cwd=clone, env=env_for("erin")).stdout)
    assert board["tasks"][0]["owner"] == "erin"
    log = json.loads(run_ifcoord("log", "T1", "--json", "--remote", str(bare), cwd=by_hand).stdout)
    assert [(e["op"], e["session"]) for e in log["entries"]] == [("claim", "erin")]


def test_an_idle_own_branch_cycle_is_one_ls_remote_and_fetches_nothing(tmp_path: Path) -> None:
    from ifcoord.session.workspace import Workspace

    bare = guarded_remote(tmp_path)
    init_coordination(bare, tmp_path, "# P\n\n## T1: Work\n")
    clone = session_clone(bare, tmp_path, "fay")
    other = session_clone(bare, tmp_path, "gus")
    assert run_ifcoord("claim", "T1", cwd=other, env=env_for("gus")).returncode == 0
    ws = Workspace(start=clone, session="fay")
    first = ws.poll_state()  # fetches the coordination branch and gus's branch
    assert first.snapshot.tasks()["T1"].owner == "gus"
    calls = ws.runner.calls
    again = ws.poll_state()
    assert ws.runner.calls - calls == 1  # one ls-remote; nothing moved, nothing fetched
    assert again.snapshot.tasks()["T1"].owner == "gus"
