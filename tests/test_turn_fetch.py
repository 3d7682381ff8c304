"""An operation decided on the tip its caller has just looked at (fetch_first=False: the loop's
heartbeat and claim) fetches inside its turn only when it must: when sessions of this machine
went first, and, when the tip had moved anyway, it looks again within the same turn rather than
queueing again behind everyone who asked since (git/transaction.py, docs/protocol.md §3)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ifcoord.core.ops import heartbeat
from ifcoord.git import queue
from ifcoord.git.handoff import KEEP, SUFFIX, Handoff
from ifcoord.git.queue import COUNTER, MachineQueue
from ifcoord.session.loop import Event, PollLoop
from ifcoord.session.workspace import Workspace
from testing.branch import HandBranch, status_yaml
from tests.conftest import git, make_clone

BOARD = "# Phase 0\n\n## T-1: First\n**Status:** open\n"

HOLDER = """
import sys
from ifcoord.git.queue import MachineQueue
with MachineQueue(sys.argv[1], "ifcoord").turn(1e12) as had:
    print("held" if had else "not held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def joins(q: MachineQueue) -> int:
    """How many turns were asked for at this queue (its counter)."""
    try:
        return int((q.path / COUNTER).read_text())
    except FileNotFoundError:
        return 0


class Holder:
    """Another process of this machine: it joins the queue at once, says when it has its turn,
    and leaves it when told."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=os.environ,
        )  # fmt: skip

    def has_turn(self) -> None:
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "held"

    def leave(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def counting_fetches(ws: Workspace) -> list[int]:
    """Count the workspace's fetches from now on, the `git fetch` processes its store starts (a
    list of one number, read after)."""
    count = [0]
    run = ws.store.git.run

    def counted(*args: str, **kw: Any) -> Any:
        count[0] += bool(args) and args[0] == "fetch"
        return run(*args, **kw)

    ws.store.git.run = counted  # type: ignore[method-assign]
    return count


def beat(ws: Workspace, fetch_first: bool = False) -> Any:
    """The loop's heartbeat (decided on what the loop looked at, unless `fetch_first`)."""
    return ws.apply(lambda s, c: heartbeat(s, c, "idle", None), fetch_first=fetch_first)[1]


class Background:
    """One operation of a workspace (the loop's heartbeat, unless given), in a thread, counting
    the fetches it makes."""

    def __init__(self, ws: Workspace, operation: Callable[[], Any] | None = None) -> None:
        self.ws = ws
        self._fetches = counting_fetches(ws)
        self.operation = operation or (lambda: beat(ws))
        self.tx: Any = None
        self.thread = threading.Thread(target=self.run)

    @property
    def fetches(self) -> int:
        return self._fetches[0]

    def run(self) -> None:
        self.tx = self.operation()

    def start_behind(self, q: MachineQueue) -> None:
        """Start the operation; return once it waits for the ticket before its own. (Its ticket
        taken is not enough: a holder that left before the operation looked would let it have
        its turn at once, as if nobody had gone first.)"""
        waiting = threading.Event()
        real = queue._lock_shared_within

        def noted(fd: int, seconds: float) -> bool:
            if threading.current_thread() is self.thread:
                waiting.set()
            return real(fd, seconds)

        queue._lock_shared_within = noted  # type: ignore[assignment]
        try:
            self.thread.start()
            assert waiting.wait(timeout=30), "the operation never waited for its turn"
        finally:
            queue._lock_shared_within = real  # type: ignore[assignment]
        assert q.busy()

    def result(self) -> Any:
        self.thread.join(timeout=60)
        assert self.tx is not None
        return self.tx


def branch(bare: Path, tmp_path: Path) -> HandBranch:
    """The board on the remote's branch, written by a person who can move it again."""
    hand = HandBranch(bare, tmp_path)
    hand.write({"boards/PHASE-0.md": BOARD, "status/alice.yaml": status_yaml("alice")})
    return hand


def workspace(bare: Path, tmp_path: Path, name: str) -> Workspace:
    return Workspace(start=make_clone(bare, tmp_path / name), session=name, remote=str(bare))


def session(bare: Path, tmp_path: Path) -> tuple[Workspace, HandBranch]:
    hand = branch(bare, tmp_path)
    ws = workspace(bare, tmp_path, "s1")
    ws.read()  # the loop's look at the remote
    # someone else moves the branch after it
    hand.write({"status/alice.yaml": status_yaml("alice", "2099-01-01T00:01:00Z")})
    return ws, hand


def test_a_push_that_finds_the_tip_moved_looks_again_in_the_same_turn(
    bare_remote: Path, tmp_path: Path
) -> None:
    ws, _ = session(bare_remote, tmp_path)
    try:
        q = ws.transactor.queue
        before = joins(q)
        result, tx = ws.apply(lambda s, c: heartbeat(s, c, "idle", None), fetch_first=False)
        assert tx.landed and result.changed
        assert (tx.attempts, tx.pushes) == (2, 2)  # decided on the old tip, rejected, then again
        assert joins(q) - before == 1  # both in one turn
    finally:
        ws.store.close()


def test_an_operation_that_waited_behind_another_session_fetches_before_it_decides(
    bare_remote: Path, tmp_path: Path
) -> None:
    ws, _ = session(bare_remote, tmp_path)
    holder = Holder(str(bare_remote))
    try:
        holder.has_turn()
        op = Background(ws)
        op.start_behind(ws.transactor.queue)  # it waits behind the holder
        holder.leave()
        tx = op.result()
        assert tx.landed
        # it fetched first: one push, no rejected one
        assert (tx.attempts, tx.pushes) == (1, 1)
    finally:
        holder.kill()
        ws.store.close()


def test_an_operation_that_had_the_turn_at_once_decides_on_what_its_caller_looked_at(
    bare_remote: Path, tmp_path: Path
) -> None:
    branch(bare_remote, tmp_path)
    ws = workspace(bare_remote, tmp_path, "s1")
    try:
        ws.read()
        op = Background(ws)
        op.run()
        tx = op.tx
        assert tx.landed and (tx.attempts, tx.pushes) == (1, 1)
        assert op.fetches == 0  # nobody went first and the tip had not moved: no fetch at all
    finally:
        ws.store.close()


def two_sessions(bare: Path, tmp_path: Path) -> tuple[Workspace, Workspace, HandBranch]:
    hand = branch(bare, tmp_path)
    a, b = workspace(bare, tmp_path, "a"), workspace(bare, tmp_path, "b")
    a.read()
    b.read()
    return a, b, hand


def test_a_session_that_waited_behind_one_that_pushed_takes_its_commit_instead_of_fetching(
    bare_remote: Path, tmp_path: Path
) -> None:
    a, b, _ = two_sessions(bare_remote, tmp_path)
    q = a.transactor.queue
    holder = Holder(str(bare_remote))
    try:
        holder.has_turn()
        first, second = Background(a), Background(b)
        first.start_behind(q)
        second.start_behind(q)
        holder.leave()
        tx_a, tx_b = first.result(), second.result()
        assert (tx_a.pushes, tx_b.pushes) == (1, 1)
        # a fetched (nobody pushed before it); b took a's commit from a: no fetch, no lost race
        assert (first.fetches, second.fetches) == (1, 0)
        assert git("rev-parse", "ifcoord", cwd=bare_remote) == tx_b.commit
        assert git("rev-parse", f"{tx_b.commit}^", cwd=bare_remote) == tx_a.commit
        # b's clone is whole: its state at the new tip reads, and git finds nothing missing
        assert "a" in b.read(fetch=False).snapshot.statuses
        git("fsck", "--no-dangling", cwd=b.store.git_dir)
    finally:
        holder.kill()
        a.store.close()
        b.store.close()


def test_a_handoff_overtaken_by_another_machine_is_found_by_the_push_and_decided_again_in_the_turn(
    bare_remote: Path, tmp_path: Path
) -> None:
    a, b, hand = two_sessions(bare_remote, tmp_path)
    q = a.transactor.queue
    holders = [Holder(str(bare_remote))]
    try:
        holders[0].has_turn()
        first = Background(a)
        first.start_behind(q)
        before = joins(q)
        holders.append(Holder(str(bare_remote)))
        wait_until(lambda: joins(q) > before)
        second = Background(b)
        second.start_behind(q)
        holders[0].leave()
        tx_a = first.result()
        holders[1].has_turn()  # a has pushed and left its commit for the next in line
        # a person (another machine) pushes before b's turn
        hand.write({"status/alice.yaml": status_yaml("alice", "2099-01-01T00:01:00Z")})
        holders[1].leave()
        tx_b = second.result()
        assert tx_a.landed and tx_b.landed
        # b decided on a's commit, its push found the person's, it fetched and landed in one turn
        assert (tx_b.attempts, tx_b.pushes, second.fetches) == (2, 2, 1)
        log = git("log", "--format=%s", "ifcoord", cwd=bare_remote).splitlines()
        assert log[:3] == ["ifcoord: heartbeat by b", "edit by hand", "ifcoord: heartbeat by a"]
    finally:
        for h in holders:
            h.kill()
        a.store.close()
        b.store.close()


def test_a_handoff_is_taken_only_when_left_since_the_taker_joined_and_leading_to_its_tip(
    tmp_path: Path,
) -> None:
    h = Handoff(tmp_path)
    c1, c2, c3 = ("1" * 40, "2" * 40, "3" * 40)
    joined = time.monotonic()
    h.leave("0" * 40, c1, [("a" * 40, b"x")])
    h.leave(c1, c2, [("b" * 40, b"y")])
    h.leave(c2, c3, [("c" * 40, b"z")])
    assert h.take(c1, joined) == (c3, [("c" * 40, b"z"), ("b" * 40, b"y")])
    assert h.take(c3, joined) == (c3, [])
    assert h.take("9" * 40, joined) is None  # not on the chain: fetch
    assert h.take(None, joined) is None
    assert h.take(c1, time.monotonic()) is None  # left before the taker joined: fetch
    entry = {name[21:61]: h.path / name for name in os.listdir(h.path) if name.endswith(SUFFIX)}
    entry[c3].write_bytes(b"garbage")
    assert h.take(c2, joined) is None  # unreadable
    entry[c2].unlink()
    assert h.take(c1, joined) is None  # a link missing


def test_a_handoff_keeps_only_the_newest_commits(tmp_path: Path) -> None:
    h = Handoff(tmp_path)
    parent = None
    for i in range(KEEP + 10):
        commit = f"{i:040x}"
        h.leave(parent, commit, [])
        parent = commit
    assert len(list(h.path.glob(f"*{SUFFIX}"))) == KEEP


def idle_session(bare: Path, tmp_path: Path, age: float) -> tuple[Workspace, PollLoop, list[Event]]:
    """s1 idle, its last heartbeat `age` seconds old (interval 120 s, lease 600 s: the defaults)."""
    beat = (datetime.now(timezone.utc) - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    hand = HandBranch(bare, tmp_path)
    hand.write(
        {"boards/PHASE-0.md": BOARD, "status/s1.yaml": f"session: s1\nstatus: idle\nlast_poll: {beat}\n"}
    )
    ws = workspace(bare, tmp_path, "s1")
    events: list[Event] = []
    return ws, PollLoop(ws, events.append, claim=False), events


def top_subject(bare: Path) -> str:
    return git("log", "-1", "--format=%s", "ifcoord", cwd=bare)


def test_a_heartbeat_due_by_time_gives_way_while_others_of_the_machine_wait_for_the_branch(
    bare_remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue, "QUEUE_WAIT", 2.0)  # without giving way, the cycle would go ahead
    ws, loop, events = idle_session(bare_remote, tmp_path, age=150)
    holder = Holder(str(bare_remote))
    try:
        holder.has_turn()  # another session's claim holds the turn
        loop.cycle()
        assert loop.memory.heartbeats_deferred == 1
        assert top_subject(bare_remote) == "edit by hand" and "heartbeat" not in [e.name for e in events]
        holder.leave()
        loop.cycle()  # the branch is free: the heartbeat goes now
        assert top_subject(bare_remote) == "ifcoord: heartbeat by s1"
        assert loop.memory.heartbeats_deferred == 1
    finally:
        holder.kill()
        ws.store.close()


def test_a_heartbeat_one_interval_late_waits_its_turn_rather_than_give_way(
    bare_remote: Path, tmp_path: Path
) -> None:
    ws, loop, _ = idle_session(bare_remote, tmp_path, age=250)
    q = ws.transactor.queue
    holder = Holder(str(bare_remote))
    try:
        holder.has_turn()
        before = joins(q)
        cycle = threading.Thread(target=loop.cycle)
        cycle.start()
        wait_until(lambda: joins(q) > before)  # it queued behind the holder
        holder.leave()
        cycle.join(timeout=60)
        assert top_subject(bare_remote) == "ifcoord: heartbeat by s1"
        assert loop.memory.heartbeats_deferred == 0
    finally:
        holder.kill()
        ws.store.close()


# -- the handoff outside a waited turn: the loop's look, and an operation that asks for the tip --


@contextmanager
def sessions(bare: Path, tmp_path: Path) -> Iterator[tuple[Workspace, Workspace, HandBranch]]:
    """Two sessions of this machine that have looked at the branch, and a person (another machine)."""
    a, b, hand = two_sessions(bare, tmp_path)
    try:
        yield a, b, hand
    finally:
        a.store.close()
        b.store.close()


def person_after_a_handoff(a: Workspace, hand: HandBranch) -> str:
    """a lands a commit (a fresh handoff), then a person pushes on top of it: the person's
    commit, which no handoff holds."""
    beat(a)
    return hand.write({"status/alice.yaml": status_yaml("alice", "2099-01-01T00:01:00Z")})


def needs(commit: Callable[[], str | None], seen: list[bool]) -> Callable[[Any], Any]:
    """An operation possible only at `commit()` (a person's, on the remote alone): refused on
    any other tip. `seen` says, decision by decision, whether it was decided there."""
    from ifcoord.errors import ConflictError
    from ifcoord.git.transaction import Change

    def decide(state: Any) -> Change:
        ready = state.commit == commit()
        seen.append(ready)
        if not ready:
            raise ConflictError("not ready", hint="wait")
        return Change({"notes/done.txt": b"done\n"}, "finish")

    return decide


def test_the_loops_look_takes_what_sessions_of_this_machine_pushed_from_the_handoff(
    bare_remote: Path, tmp_path: Path
) -> None:
    with sessions(bare_remote, tmp_path) as (a, b, _):
        beat(a)
        tx = a.apply(lambda s, c: heartbeat(s, c, "working", None))[1]  # b is two behind
        assert tx.landed
        fetches = counting_fetches(b)
        state = b.poll_state()
        assert state.commit == tx.commit == git("rev-parse", "ifcoord", cwd=bare_remote)
        assert fetches[0] == 0  # one ls-remote, the objects from a's handoff
        assert "a" in state.snapshot.statuses
        git("fsck", "--no-dangling", cwd=b.store.git_dir)  # b's clone is whole


def test_the_loops_look_fetches_a_tip_that_came_from_elsewhere(bare_remote: Path, tmp_path: Path) -> None:
    with sessions(bare_remote, tmp_path) as (a, b, hand):
        person = person_after_a_handoff(a, hand)
        fetches = counting_fetches(b)
        state = b.poll_state()
        assert state.commit == person
        assert fetches[0] == 1  # the person's commit is in no handoff


def test_the_handoff_gives_the_commits_between_two_it_holds(tmp_path: Path) -> None:
    h = Handoff(tmp_path)
    c1, c2, c3 = ("1" * 40, "2" * 40, "3" * 40)
    h.leave("0" * 40, c1, [("a" * 40, b"x")])
    h.leave(c1, c2, [("b" * 40, b"y")])
    h.leave(c2, c3, [("c" * 40, b"z")])
    assert h.between(c1, c2) == [("b" * 40, b"y")]  # not only up to the newest
    assert h.between("0" * 40, c3) == [("c" * 40, b"z"), ("b" * 40, b"y"), ("a" * 40, b"x")]
    assert h.between(c2, c2) == []
    assert h.between("9" * 40, c3) is None  # not on the chain
    assert h.between(c1, "8" * 40) is None  # a tip the handoff does not hold
    assert h.between(None, c3) is None


def test_an_operation_that_asks_for_the_tip_decides_on_a_fresh_handoff_instead_of_fetching(
    bare_remote: Path, tmp_path: Path
) -> None:
    with sessions(bare_remote, tmp_path) as (a, b, _):
        first = beat(a)
        fetches = counting_fetches(b)
        tx = beat(b, fetch_first=True)  # b's own look is one commit behind
        assert tx.landed and (tx.attempts, tx.pushes) == (1, 1)
        assert fetches[0] == 0
        assert git("rev-parse", f"{tx.commit}^", cwd=bare_remote) == first.commit


def test_an_operation_that_asks_for_the_tip_fetches_when_the_handoff_is_old(
    bare_remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ifcoord.git import transaction

    with sessions(bare_remote, tmp_path) as (a, b, _):
        beat(a)
        monkeypatch.setattr(transaction, "GUESS_FRESH", -1.0)  # a's commit counts as left long ago
        fetches = counting_fetches(b)
        tx = beat(b, fetch_first=True)
        assert tx.landed and (tx.attempts, tx.pushes, fetches[0]) == (1, 1, 1)


def test_a_guess_overtaken_by_another_machine_is_found_by_the_push_and_decided_again_in_the_turn(
    bare_remote: Path, tmp_path: Path
) -> None:
    with sessions(bare_remote, tmp_path) as (a, b, hand):
        person_after_a_handoff(a, hand)
        fetches = counting_fetches(b)
        tx = beat(b, fetch_first=True)
        assert tx.landed and (tx.attempts, tx.pushes, fetches[0]) == (2, 2, 1)
        assert git("log", "-1", "--format=%s", f"{tx.commit}^", cwd=bare_remote) == "edit by hand"


def test_a_refusal_decided_on_a_guess_is_decided_again_on_the_fetched_tip(
    bare_remote: Path, tmp_path: Path
) -> None:
    """A guess must never make an operation refuse what the remote's tip allows."""
    from ifcoord.errors import ConflictError
    from ifcoord.git.transaction import Change

    with sessions(bare_remote, tmp_path) as (a, b, hand):
        person = person_after_a_handoff(a, hand)  # b will guess on a's commit
        fetches = counting_fetches(b)
        seen: list[bool] = []
        tx = b.transactor.run(needs(lambda: person, seen), fetch_first=True)
        assert tx.landed and seen == [False, True] and fetches[0] == 1
        # an operation of the loop decides on what the loop looked at: its refusal stands
        beat(a)
        seen.clear()

        def refuse(state: Any) -> Change:
            seen.append(True)
            raise ConflictError("no", hint="wait")

        with pytest.raises(ConflictError):
            b.transactor.run(refuse, fetch_first=False)
        assert seen == [True] and fetches[0] == 1


def test_nothing_to_change_on_a_guess_is_decided_again_on_the_fetched_tip(
    bare_remote: Path, tmp_path: Path
) -> None:
    from ifcoord.git.transaction import Change

    with sessions(bare_remote, tmp_path) as (a, b, hand):
        person = person_after_a_handoff(a, hand)
        fetches = counting_fetches(b)
        seen: list[bool] = []

        def decide(state: Any) -> Change | None:
            seen.append(state.commit == person)
            if state.commit != person:
                return None  # nothing to do, as far as this state knows
            return Change({"notes/wanted.txt": b"new\n"}, "update")

        tx = b.transactor.run(decide, fetch_first=True)
        assert tx.landed and seen == [False, True] and fetches[0] == 1
        assert git("show", "ifcoord:notes/wanted.txt", cwd=bare_remote) == "new"


def test_a_refusal_decided_on_the_handoff_after_a_wait_is_decided_again_on_the_fetched_tip(
    bare_remote: Path, tmp_path: Path
) -> None:
    """The handoff a command takes after waiting its turn is a guess too: a refusal decided on
    it is believed only of the remote's tip."""
    seen: list[bool] = []
    person: list[str] = []
    with sessions(bare_remote, tmp_path) as (a, b, hand):
        q = a.transactor.queue
        decide = needs(lambda: person[0] if person else None, seen)
        holders = [Holder(str(bare_remote))]
        try:
            holders[0].has_turn()
            first = Background(a)
            first.start_behind(q)
            before = joins(q)
            holders.append(Holder(str(bare_remote)))
            wait_until(lambda: joins(q) > before)
            second = Background(b, lambda: b.transactor.run(decide, fetch_first=True))
            second.start_behind(q)
            holders[0].leave()
            assert first.result().landed
            holders[1].has_turn()  # a has landed and left its commit for the next in line
            person.append(hand.write({"status/alice.yaml": status_yaml("alice", "2099-01-01T00:01:00Z")}))
            holders[1].leave()
            tx = second.result()
            # decided on a's commit (the handoff): refused; then on the fetched tip: landed
            assert tx.landed and seen == [False, True] and second.fetches == 1
        finally:
            for h in holders:
                h.kill()


def test_over_git_daemon_a_turn_that_must_look_again_takes_the_machines_commits_from_the_handoff(
    git_daemon: tuple[str, Path], tmp_path: Path
) -> None:
    url, bare = git_daemon
    branch(bare, tmp_path)
    a = Workspace(start=make_clone(url, tmp_path / "a"), session="a", remote=url)
    b = Workspace(start=make_clone(url, tmp_path / "b"), session="b", remote=url)
    try:
        a.read()  # the loop's look
        b.read()
        landed = beat(b)  # a session of this machine moves the branch after a's look
        assert landed.landed
        fetches = counting_fetches(a)
        tx = beat(a)  # decided on a's look: the push finds the tip moved, and a looks again
        assert tx.landed and (tx.attempts, tx.pushes) == (2, 2)
        assert fetches[0] == 0  # b's commit came from the handoff, not from git's fetch
        assert git("rev-parse", f"{tx.commit}^", cwd=bare) == landed.commit
        # a command's read takes them the same way
        third = b.apply(lambda s, c: heartbeat(s, c, "working", None))[1]
        assert third.landed
        assert a.read().commit == third.commit and fetches[0] == 0
        git("fsck", "--no-dangling", cwd=a.store.git_dir)  # a's clone is whole
    finally:
        a.store.close()
        b.store.close()
