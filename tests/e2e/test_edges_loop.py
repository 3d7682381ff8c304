"""Shared mode at its edges, seen by the loop and by observers (issue 14): clocks, rewinds,
tasks held but never announced, a remote that is down for a reader, Ctrl-C on `poll`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import git, ifcoord_cmd, make_clone, run_ifcoord
from test_loop import Poller, init_branch

from testing.proxy import FaultProxy

BOARD = "# P\n\n## T1: Task one\n**Status:** open\n\n## T2: Task two\n**Status:** open\n"
LIVE = "poll_seconds: 0.3\nheartbeat_seconds: 120\nlease_seconds: 600\nskew_seconds: 120\n"


def ifc(clone: Path, *args: str, session: str, remote: str | Path, offset: float = 0):  # type: ignore[no-untyped-def]
    env = {"IFCOORD_CLOCK_OFFSET": str(offset)} if offset else None
    return run_ifcoord(*args, "--session", session, "--remote", str(remote), cwd=clone, env=env)


@pytest.mark.parametrize(("owner_offset", "observer_offset"), [(-800, 0), (0, 800), (-3000, 0), (0, -3000)])
def test_a_live_lease_survives_clocks_off_by_up_to_an_hour(
    owner_offset: float, observer_offset: float, bare_remote: Path, tmp_path: Path
) -> None:
    init_branch(bare_remote, tmp_path, BOARD, LIVE)
    owner = make_clone(bare_remote, tmp_path / "owner")
    observer = make_clone(bare_remote, tmp_path / "observer")
    assert ifc(owner, "claim", "T1", session="s1", remote=bare_remote, offset=owner_offset).returncode == 0
    taken = ifc(observer, "reclaim", "T1", session="s2", remote=bare_remote, offset=observer_offset)
    assert taken.returncode == 3, taken.stderr
    assert "**Owner:** s1" in git("show", "ifcoord:boards/PHASE-0.md", cwd=bare_remote)


def test_status_warns_about_a_heartbeat_dated_ahead_of_this_clock(bare_remote: Path, tmp_path: Path) -> None:
    init_branch(bare_remote, tmp_path, BOARD, LIVE)
    owner = make_clone(bare_remote, tmp_path / "owner")
    assert ifc(owner, "claim", "T1", session="s1", remote=bare_remote, offset=900).returncode == 0
    done = run_ifcoord("status", "--remote", str(bare_remote), "--json", cwd=owner)
    assert done.returncode == 0, done.stderr
    warnings = json.loads(done.stdout)["clock_warnings"]
    assert len(warnings) == 1 and "s1's heartbeat is dated" in warnings[0] and "ahead" in warnings[0]


def test_a_heartbeat_brought_back_by_a_rewind_is_not_read_as_staleness(
    bare_remote: Path, tmp_path: Path
) -> None:
    init_branch(bare_remote, tmp_path, BOARD, LIVE)
    owner = make_clone(bare_remote, tmp_path / "owner")
    observer = make_clone(bare_remote, tmp_path / "observer")
    # s1's heartbeat carries an old timestamp (a slow clock), then s1 beats again just now
    assert ifc(owner, "claim", "T1", session="s1", remote=bare_remote).returncode == 0
    push_heartbeat(bare_remote, tmp_path / "person", "s1", 3000)
    old_tip = git("rev-parse", "ifcoord", cwd=bare_remote)
    assert run_ifcoord("board", "--remote", str(bare_remote), cwd=observer).returncode == 0
    assert ifc(owner, "heartbeat", "--state", "working", session="s1", remote=bare_remote).returncode == 0
    assert run_ifcoord("board", "--remote", str(bare_remote), cwd=observer).returncode == 0
    git("update-ref", "refs/heads/ifcoord", old_tip, cwd=bare_remote)  # a person moves it back
    taken = ifc(observer, "reclaim", "T1", session="s2", remote=bare_remote)
    assert taken.returncode == 3, taken.stderr


def test_the_loop_announces_a_task_it_holds_but_never_announced(bare_remote: Path, tmp_path: Path) -> None:
    init_branch(bare_remote, tmp_path, BOARD, LIVE)
    clone = make_clone(bare_remote, tmp_path / "s1")
    poller = Poller("s1", clone, str(bare_remote), "--no-claim")
    try:
        poller.wait_for("idle")
        # the session's claim landed while its answer was lost: the loop finds it on the branch
        # (made here by a second process of the same session, in the same clone)
        assert ifc(clone, "claim", "T2", session="s1",
                   remote=bare_remote).returncode == 0  # fmt: skip
        event = poller.wait_for("claimed", "T2")
        assert event["discovered"] is True
    finally:
        poller.stop()


def test_the_loop_says_when_the_branch_was_rewound_and_which_of_its_tasks_changed(
    bare_remote: Path, tmp_path: Path
) -> None:
    # heartbeats every second: the loop's heartbeat on top of the completion shows it looked
    every_second = LIVE.replace("heartbeat_seconds: 120", "heartbeat_seconds: 1")
    init_branch(bare_remote, tmp_path, BOARD, every_second)
    clone = make_clone(bare_remote, tmp_path / "s1")
    before = git("rev-parse", "ifcoord", cwd=bare_remote)
    poller = Poller("s1", clone, str(bare_remote), "--no-claim")
    try:
        poller.wait_for("idle")
        assert ifc(clone, "claim", "T1", session="s1", remote=bare_remote).returncode == 0
        assert ifc(clone, "complete", "T1", session="s1", remote=bare_remote).returncode == 0
        completed = git("rev-parse", "ifcoord", cwd=bare_remote)

        def seen_completion() -> bool:
            # the loop has looked at the completion: its heartbeat (idle again) is on top of it
            # (its first heartbeat, before the claim, may already have come: not that one)
            top = git("log", "-1", "--format=%s", "ifcoord", cwd=bare_remote)
            ancestry = ["git", "merge-base", "--is-ancestor", completed, "ifcoord"]
            on_top = subprocess.run(ancestry, cwd=bare_remote)
            return top.startswith("ifcoord: heartbeat by s1") and on_top.returncode == 0

        deadline = time.monotonic() + 30
        while not seen_completion():
            assert time.monotonic() < deadline, "the loop never looked at the completion"
            time.sleep(0.05)
        git("update-ref", "refs/heads/ifcoord", before, cwd=bare_remote)
        event = poller.wait_for("rewound")
        assert event["to"] == before
        assert "T1" in event["tasks"], event
        assert event["tasks"]["T1"]["now"]["state"] == "open"
    finally:
        poller.stop()


@pytest.fixture
def proxied_daemon(git_daemon: tuple[str, Path]) -> Iterator[tuple[str, Path, FaultProxy]]:
    url, bare = git_daemon
    proxy = FaultProxy(int(url.rsplit(":", 1)[1].split("/", 1)[0]))
    try:
        yield f"git://127.0.0.1:{proxy.port}/remote.git", bare, proxy
    finally:
        proxy.close()


@pytest.mark.parametrize("view", ["board", "status", "show"])
def test_read_only_views_answer_from_the_last_fetched_state_when_the_remote_is_down(
    view: str, git_daemon: tuple[str, Path], proxied_daemon: tuple[str, Path, FaultProxy], tmp_path: Path
) -> None:
    direct, _ = git_daemon
    url, _, proxy = proxied_daemon
    init_branch(direct, tmp_path, BOARD, LIVE)
    clone = make_clone(url, tmp_path / "c")
    assert ifc(clone, "claim", "T1", session="s1", remote=url).returncode == 0
    proxy.down_until = time.monotonic() + 3600
    start = time.monotonic()
    args = [view, "T1"] if view == "show" else [view]
    done = run_ifcoord(*args, "--remote", url, "--json", cwd=clone)
    assert time.monotonic() - start < 45  # not the 60 s deadline (generous: CI machines are busy)
    assert done.returncode == 0, done.stderr
    assert "is unreachable" in done.stderr and "as fetched" in done.stderr and "s ago" in done.stderr
    assert "s1" in done.stdout


def test_ctrl_c_stops_poll_at_once_and_the_goodbye_is_written(bare_remote: Path, tmp_path: Path) -> None:
    init_branch(bare_remote, tmp_path, BOARD, LIVE)
    clone = make_clone(bare_remote, tmp_path / "s1")
    proc = subprocess.Popen(
        [*ifcoord_cmd(), "poll", "--json", "-s", "s1", "--remote", str(bare_remote), "--interval", "600"],
        cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    assert first["event"] == "claimed"
    os.killpg(proc.pid, signal.SIGINT)  # the terminal sends it to the whole foreground group
    start = time.monotonic()
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - start
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert proc.returncode == 0, err
    assert "error" not in events, out
    assert events[-1] == "stopped"
    # "At once": not at the end of the 600 s wait it was in (a bound by cause, not by how busy
    # the machine is: a loop that finished its wait first would take ten times this).
    assert took < 60, took
    status = git("show", "ifcoord:status/s1.yaml", cwd=bare_remote)
    assert "status: offline" in status


def test_epochs_are_never_reused_after_a_rewind_so_an_old_holder_stays_fenced(
    bare_remote: Path, tmp_path: Path
) -> None:
    init_branch(bare_remote, tmp_path, BOARD, LIVE)
    clone = make_clone(bare_remote, tmp_path / "c")
    before = git("rev-parse", "ifcoord", cwd=bare_remote)
    first = ifc(clone, "claim", "T1", "--json", session="s1", remote=bare_remote)
    assert json.loads(first.stdout)["epoch"] == 1  # the zombie-to-be holds epoch 1
    git("update-ref", "refs/heads/ifcoord", before, cwd=bare_remote)  # a person moves it back
    again = ifc(clone, "claim", "T1", "--json", session="s1", remote=bare_remote)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["epoch"] == 2  # not 1 again
    assert "**Epoch:** 2" in git("show", "ifcoord:boards/PHASE-0.md", cwd=bare_remote)
    zombie = ifc(clone, "complete", "T1", "--epoch", "1", session="s1", remote=bare_remote)
    assert zombie.returncode == 3, zombie.stderr
    assert "lease lost" in zombie.stderr


def test_a_session_name_live_in_another_clone_is_refused_on_claim_unless_forced(
    bare_remote: Path, tmp_path: Path
) -> None:
    init_branch(bare_remote, tmp_path, BOARD, LIVE)
    first = make_clone(bare_remote, tmp_path / "first")
    second = make_clone(bare_remote, tmp_path / "second")
    assert ifc(first, "claim", "T1", session="s1", remote=bare_remote).returncode == 0
    refused = ifc(second, "claim", "T2", session="s1", remote=bare_remote)
    assert refused.returncode == 3, refused.stderr
    assert "s1 is live in another clone" in refused.stderr
    assert "**Owner:**" not in git("show", "ifcoord:boards/PHASE-0.md", cwd=bare_remote).split("## T2")[1]
    moved = ifc(second, "claim", "T2", "--force", session="s1", remote=bare_remote)
    assert moved.returncode == 0, moved.stderr
    # the first clone keeps working on what it holds; a new claim there is now the refused one
    assert ifc(first, "claim", "T1", session="s1", remote=bare_remote).returncode == 0


@pytest.mark.parametrize("behind", [800, 3000])
def test_a_heartbeat_written_by_a_slow_clock_does_not_lose_a_live_lease(
    behind: int, bare_remote: Path, tmp_path: Path
) -> None:
    """What an owner whose clock is `behind` seconds slow writes, pushed as it would be."""
    init_branch(bare_remote, tmp_path, BOARD, LIVE)
    owner = make_clone(bare_remote, tmp_path / "owner")
    assert ifc(owner, "claim", "T1", session="s1", remote=bare_remote).returncode == 0
    push_heartbeat(bare_remote, tmp_path / "person", "s1", behind)
    observer = make_clone(bare_remote, tmp_path / "observer")
    taken = ifc(observer, "reclaim", "T1", session="s2", remote=bare_remote)
    assert taken.returncode == 3, taken.stderr


def push_heartbeat(bare: Path, person: Path, session: str, behind: float) -> None:
    """Push the heartbeat a clock `behind` seconds slow writes (plain git, as a person would)."""
    from datetime import datetime, timedelta, timezone

    if not person.exists():
        git("clone", "-q", "-b", "ifcoord", str(bare), str(person))
    git("pull", "-q", "--ff-only", "origin", "ifcoord", cwd=person)
    path = person / "status" / f"{session}.yaml"
    slow = (datetime.now(timezone.utc) - timedelta(seconds=behind)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"last_poll: {slow}" if ln.startswith("last_poll:") else ln for ln in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")
    git("commit", "-q", "-am", "heartbeat from a slow clock", cwd=person)
    git("push", "-q", "origin", "ifcoord", cwd=person)
