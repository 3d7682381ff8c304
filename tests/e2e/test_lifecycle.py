"""The task lifecycle through the CLI, over real remotes, as users and agents run it."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import git, ifcoord_cmd, make_clone, run_ifcoord

from ifcoord.core.snapshot import build_snapshot

BOARD = (
    "# Phase 0\n\nIntro prose that must survive.\n\n"
    "## T1: First task\n**Status:** open\n**Priority:** HIGH\n\n**Milestones:**\n"
    "- [ ] 25% - started\n- [ ] 50% - half\n- [ ] 75% - most\n- [ ] 100% - all\n\n"
    "## T2: Second task\n**Status:** open\n**Depends on:** T1\n\n"
    "## T3: Third task\n**Status:** open\n"
)


def setup(remote: Path | str, tmp_path: Path, board: str = BOARD, config: str | None = None) -> Path:
    admin = make_clone(remote, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text(board)
    args = ["init", "--remote", str(remote), "--board", "PHASE-0.md"]
    if config:
        (admin / "ifcoord.yaml").write_text(config)
        args += ["--config", "ifcoord.yaml"]
    done = run_ifcoord(*args, cwd=admin)
    assert done.returncode == 0, done.stderr
    return admin


def ifc(clone: Path, *args: str, session: str | None = "s1", remote: Path | str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    extra = ["--session", session] if session else []
    if remote is not None:
        extra += ["--remote", str(remote)]
    return run_ifcoord(*args, *extra, cwd=clone, env=env)


def remote_board(bare: Path) -> str:
    return git("show", "ifcoord:boards/PHASE-0.md", cwd=bare)


def user_state(clone: Path) -> tuple[str, ...]:
    return (
        git("rev-parse", "HEAD", cwd=clone),
        git("symbolic-ref", "HEAD", cwd=clone),
        git("status", "--porcelain", "--untracked-files=all", cwd=clone),
        git("ls-files", "-s", cwd=clone),
        git("for-each-ref", "refs/heads", "refs/remotes", "refs/tags", cwd=clone),
        git("stash", "list", cwd=clone),
    )


@pytest.mark.timeout(300)  # over ssh and smart HTTP every step costs a handshake
def test_the_whole_lifecycle_from_a_subfolder_never_touches_the_users_work(
    served_remote: tuple[str, Path], tmp_path: Path
) -> None:
    """Over a file remote, smart HTTP and ssh."""
    url, bare_remote = served_remote
    setup(url, tmp_path)
    clone = make_clone(url, tmp_path / "dev")
    git("checkout", "-q", "-b", "feature", cwd=clone)
    (clone / "app.py").write_text("print('edited, not committed')\n")
    (clone / "staged.txt").write_text("staged\n")
    git("add", "staged.txt", cwd=clone)
    (clone / "untracked.txt").write_text("untracked\n")
    sub = clone / "src" / "deep"
    sub.mkdir(parents=True)
    before = user_state(clone)
    steps = [
        ("claim", "T1"), ("progress", "T1", "50", "--note", "half way", "--tests-passed", "3"),
        ("block", "T1", "--on", "T3", "--reason", "needs T3"), ("unblock", "T1"),
        ("complete", "T1", "--deliverable", "src/t1.py", "--tests-passed", "5", "--tests-failed", "0"),
        ("claim", "T2"), ("release", "T2"), ("heartbeat",),
    ]  # fmt: skip
    for step in steps:
        done = ifc(sub, *step, remote=url)
        assert done.returncode == 0, (step, done.stderr)
    assert user_state(clone) == before
    board = remote_board(bare_remote)
    assert "Intro prose that must survive." in board
    snap = build_snapshot({"boards/PHASE-0.md": board.encode()})
    t1, t2 = snap.tasks()["T1"], snap.tasks()["T2"]
    assert (t1.state, t1.owner, t1.progress, t1.deliverable) == ("done", "s1", 100, "src/t1.py")
    assert all(m.done for m in t1.milestones)
    assert (t2.state, t2.owner, t2.epoch) == ("open", None, 1)
    status = git("show", "ifcoord:status/s1.yaml", cwd=bare_remote)
    assert "completed: [T1]" in status or "- T1" in status


def test_progress_ticks_milestones_and_reports_in_the_status_file(bare_remote: Path, tmp_path: Path) -> None:
    setup(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    assert ifc(clone, "claim", "T1", remote=bare_remote).returncode == 0
    done = ifc(clone, "progress", "T1", "50", "--tests-passed", "2", "--json", remote=bare_remote)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["task"]["progress"] == 50
    board = remote_board(bare_remote)
    assert "- [x] 25% - started" in board and "- [x] 50% - half" in board and "- [ ] 75% - most" in board
    status = git("show", "ifcoord:status/s1.yaml", cwd=bare_remote)
    assert "progress: 50" in status and "50% - half" in status and "tests_passed: 2" in status


def test_refusals_name_the_reason_and_use_the_documented_exit_codes(
    bare_remote: Path, tmp_path: Path
) -> None:
    setup(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    not_ready = ifc(clone, "claim", "T2", remote=bare_remote)
    assert not_ready.returncode == 4 and "depends on T1 (open)" in not_ready.stderr
    assert ifc(clone, "claim", "T1", remote=bare_remote).returncode == 0
    taken = ifc(clone, "claim", "T1", session="s2", remote=bare_remote)
    assert (
        taken.returncode == 3
        and "T1 is claimed by s1 since" in taken.stderr
        and "(lease live)" in taken.stderr
    )
    not_owner = ifc(clone, "complete", "T1", session="s2", remote=bare_remote)
    assert not_owner.returncode == 3 and "not by s2" in not_owner.stderr
    unknown = ifc(clone, "claim", "NOPE-1", remote=bare_remote, env={})
    assert unknown.returncode == 2 and "no task NOPE-1" in unknown.stderr
    bad = ifc(clone, "progress", "T1", "150", remote=bare_remote)
    assert bad.returncode == 2
    as_json = ifc(clone, "claim", "T1", "--json", session="s2", remote=bare_remote)
    assert json.loads(as_json.stdout)["error"]["code"] == 3
    assert len(as_json.stderr.strip().splitlines()) == 1


def test_force_is_for_humans_and_is_recorded(bare_remote: Path, tmp_path: Path) -> None:
    setup(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    assert ifc(clone, "claim", "T1", remote=bare_remote).returncode == 0
    forced = ifc(clone, "release", "T1", "--force", session="human", remote=bare_remote)
    assert forced.returncode == 0, forced.stderr
    trailers = git("log", "-1", "--format=%(trailers)", "ifcoord", cwd=bare_remote)
    assert "Ifcoord-Forced: true" in trailers and "Ifcoord-Op: release" in trailers
    log = json.loads(ifc(clone, "log", "T1", "--json", session=None, remote=bare_remote).stdout)
    assert [e["op"] for e in log["entries"]] == ["release", "claim"]
    assert log["entries"][0]["forced"] is True


@pytest.mark.slow(16)
def test_stale_leases_can_be_reclaimed_live_ones_cannot_and_the_old_owner_is_fenced_out(
    bare_remote: Path, tmp_path: Path
) -> None:
    # A lease long enough that the reclaim right after the claim still finds it live on a loaded
    # machine (a command can take seconds there), then a wait for it to run out that polls
    # rather than sleeps a fixed time.
    setup(bare_remote, tmp_path, config="lease_seconds: 15\nheartbeat_seconds: 1\nskew_seconds: 0\n")
    old = make_clone(bare_remote, tmp_path / "old")
    new = make_clone(bare_remote, tmp_path / "new")
    assert ifc(old, "claim", "T1", session="old", remote=bare_remote).returncode == 0
    live = ifc(new, "reclaim", "T1", session="new", remote=bare_remote)
    assert live.returncode == 3 and "(lease live)" in live.stderr
    deadline = time.monotonic() + 90
    while True:
        took = ifc(new, "reclaim", "T1", "--json", session="new", remote=bare_remote)
        if took.returncode != 3 or time.monotonic() > deadline:
            break
        assert "(lease live)" in took.stderr
        time.sleep(0.2)
    assert took.returncode == 0, took.stderr
    assert json.loads(took.stdout)["epoch"] == 2
    late = ifc(old, "complete", "T1", session="old", remote=bare_remote)
    assert late.returncode == 3 and "lease lost" in late.stderr
    board = remote_board(bare_remote)
    assert "**Owner:** new" in board and "**Previous owner:** old" in board and "**Epoch:** 2" in board


def test_an_old_epoch_is_refused_even_for_the_same_session_name(bare_remote: Path, tmp_path: Path) -> None:
    setup(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    first = json.loads(ifc(clone, "claim", "T1", "--json", remote=bare_remote).stdout)
    assert ifc(clone, "release", "T1", remote=bare_remote).returncode == 0
    assert ifc(clone, "claim", "T1", remote=bare_remote).returncode == 0
    stale = ifc(clone, "complete", "T1", "--epoch", str(first["epoch"]), remote=bare_remote)
    assert stale.returncode == 3 and "lease lost" in stale.stderr


def test_a_human_edit_pushed_while_sessions_claim_survives_with_every_claim(
    bare_remote: Path, tmp_path: Path
) -> None:
    board = "# Phase 0\n\n" + "".join(f"## T{i}: Task {i}\n**Status:** open\n\n" for i in range(1, 9))
    setup(bare_remote, tmp_path, board=board)
    human = tmp_path / "human"
    git("clone", "-q", "--branch", "ifcoord", str(bare_remote), str(human))
    sessions = [make_clone(bare_remote, tmp_path / f"s{i}") for i in range(8)]
    procs = [
        subprocess.Popen(
            [*ifcoord_cmd(), "claim", "--next", "--session", f"s{i}", "--remote", str(bare_remote)],
            cwd=c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i, c in enumerate(sessions)
    ]  # fmt: skip
    # Meanwhile a person adds a task and rewords one, with plain git, retrying on rejection.
    for _attempt in range(50):
        git("fetch", "-q", "origin", cwd=human)
        git("reset", "-q", "--hard", "origin/ifcoord", cwd=human)
        path = human / "boards" / "PHASE-0.md"
        text = path.read_text().replace("## T3: Task 3", "## T3: Task three, reworded")
        path.write_text(text + "\n## T99: Added by a human\n**Status:** open\n")
        git("commit", "-q", "-am", "human edit", cwd=human)
        if (
            subprocess.run(
                ["git", "push", "-q", "origin", "HEAD:ifcoord"], cwd=human, capture_output=True
            ).returncode
            == 0
        ):
            break
        time.sleep(random.uniform(0.05, 0.2))
    else:
        raise AssertionError("the human never got the edit in")
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert all(code == 0 for _, _, code in results), results
    final = remote_board(bare_remote)
    snap = build_snapshot({"boards/PHASE-0.md": final.encode()})
    tasks = snap.tasks()
    assert "T99" in tasks and tasks["T3"].title == "Task three, reworded"
    owners = sorted(t.owner for t in tasks.values() if t.owner)
    assert owners == sorted(f"s{i}" for i in range(8))


def test_sigkill_mid_transaction_leaves_the_branch_before_or_after_and_the_next_command_works(
    bare_remote: Path, tmp_path: Path
) -> None:
    board = "# Phase 0\n\n" + "".join(f"## T{i}: Task {i}\n\n" for i in range(1, 7))
    setup(bare_remote, tmp_path, board=board)
    hook = bare_remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\ncat >/dev/null\nsleep 0.3\n")
    hook.chmod(0o755)
    clone = make_clone(bare_remote, tmp_path / "c")
    rng = random.Random(7)
    for i in range(1, 7):
        proc = subprocess.Popen(
            [*ifcoord_cmd(), "claim", f"T{i}", "--session", f"k{i}", "--remote", str(bare_remote)],
            cwd=clone, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(0.2, 0.9))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)  # let an orphaned push finish either way
    for sha in git("rev-list", "ifcoord", cwd=bare_remote).splitlines():
        files = {p: git("show", f"{sha}:{p}", cwd=bare_remote).encode()
                 for p in git("ls-tree", "-r", "--name-only", sha, cwd=bare_remote).splitlines()}  # fmt: skip
        snap = build_snapshot(files)
        for task in snap.tasks().values():
            if task.owner:  # every claim on the board came with its status file, in one commit
                assert snap.statuses[task.owner].current_task == task.id
    done = ifc(clone, "claim", "--next", "--json", session="survivor", remote=bare_remote)
    assert done.returncode in (0, 4), done.stderr


def test_init_twice_changes_nothing_and_join_remembers_the_session(bare_remote: Path, tmp_path: Path) -> None:
    admin = setup(bare_remote, tmp_path)
    tip = git("rev-parse", "ifcoord", cwd=bare_remote)
    again = run_ifcoord("init", "--remote", str(bare_remote), "--board", "PHASE-0.md", cwd=admin)
    assert again.returncode == 0 and "nothing changed" in again.stderr
    assert git("rev-parse", "ifcoord", cwd=bare_remote) == tip
    clone = make_clone(bare_remote, tmp_path / "c")
    assert run_ifcoord("join", "joiner", cwd=clone).returncode == 0
    assert git("config", "ifcoord.session", cwd=clone) == "joiner"
    done = run_ifcoord("claim", "T1", "--json", cwd=clone)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["task"]["owner"] == "joiner"
    env_wins = run_ifcoord("claim", "T3", "--json", cwd=clone, env={"IFCOORD_SESSION": "from-env"})
    assert json.loads(env_wins.stdout)["task"]["owner"] == "from-env"


def test_an_unreachable_remote_exits_5_with_one_clear_line(tmp_path: Path) -> None:
    clone = make_clone(tmp_path / "gone.git", tmp_path / "c")
    done = run_ifcoord("claim", "T1", "--session", "s", cwd=clone, env={"IFCOORD_DEADLINE": "1"})
    assert done.returncode == 5
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0]


def test_read_only_commands_read_the_branch(bare_remote: Path, tmp_path: Path) -> None:
    setup(bare_remote, tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    board = json.loads(ifc(clone, "board", "--json", session=None, remote=bare_remote).stdout)
    assert {t["id"]: t["ready"] for t in board["tasks"]} == {"T1": True, "T2": False, "T3": True}
    nxt = json.loads(ifc(clone, "next", "--json", remote=bare_remote).stdout)
    assert nxt["task"]["id"] == "T1" and nxt["kind"] == "primary"
    shown = json.loads(ifc(clone, "show", "T1", "--json", session=None, remote=bare_remote).stdout)
    assert len(shown["task"]["milestones"]) == 4
    lint = ifc(clone, "lint", session=None, remote=bare_remote)
    assert lint.returncode == 0, lint.stderr


def test_a_remote_name_the_clone_does_not_have_is_a_usage_error_at_once(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    git("init", "-q", str(plain))
    started = time.monotonic()
    done = run_ifcoord("board", cwd=plain)
    assert done.returncode == 2 and "no remote named 'origin'" in done.stderr
    assert time.monotonic() - started < 20  # not retried as if the network were down
