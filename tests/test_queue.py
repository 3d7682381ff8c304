"""The machine queue (git/queue.py): turns in the order asked, a dead holder never holds it up,
a stuck one only until the wait runs out, one queue per remote URL and branch."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ifcoord.git import queue
from ifcoord.git.queue import MachineQueue

FAR = 1e12  # a deadline that never comes


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def tickets(q: MachineQueue) -> list[str]:
    return sorted(p.name for p in q.path.iterdir() if p.name.isdigit()) if q.path.exists() else []


HOLDER = """
import sys, time
from ifcoord.git.queue import MachineQueue
with MachineQueue(sys.argv[1], "ifcoord").turn(1e12) as had:
    print("held" if had else "not held", flush=True)
    time.sleep(600)
"""


def holder(url: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", HOLDER, url]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=os.environ)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_turns_come_in_the_order_they_were_asked_for() -> None:
    """Ten waiters queued one after the other behind a holder get their turns in that order (a
    lock polled by each waiter gave them in no particular order)."""
    q = MachineQueue("git://h/r.git", "ifcoord")
    order: list[int] = []
    release = threading.Event()

    def first() -> None:
        with MachineQueue("git://h/r.git", "ifcoord").turn(FAR) as had:
            assert had
            release.wait(30)

    def waiter(i: int) -> None:
        with MachineQueue("git://h/r.git", "ifcoord").turn(FAR) as had:
            assert had
            order.append(i)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    wait_until(lambda: len(tickets(q)) == 1)
    for i in range(10):
        threads.append(threading.Thread(target=waiter, args=(i,)))
        threads[-1].start()
        wait_until(lambda n=i + 2: len(tickets(q)) == n)  # queued before the next one asks
    assert order == []
    release.set()
    for t in threads:
        t.join(30)
    assert order == list(range(10))
    assert tickets(q) == []  # every ticket removed on the way out


def test_a_holder_killed_mid_turn_hands_the_turn_on_at_once() -> None:
    q = MachineQueue("git://h/r.git", "ifcoord")
    proc = holder("git://h/r.git")
    got: list[float] = []

    def waiter() -> None:
        with q.turn(FAR, wait=600) as had:
            got.append(time.monotonic() if had else -1.0)

    t = threading.Thread(target=waiter)
    t.start()
    wait_until(lambda: len(tickets(q)) == 2)
    killed = time.monotonic()
    proc.kill()
    proc.wait()
    t.join(30)
    assert got and got[0] > 0, "the waiter went ahead without its turn"
    assert got[0] - killed < 10  # handed on by the kernel's release, not by a timeout
    assert tickets(q) == []  # the dead holder's ticket was removed by the next in line


def test_a_ticket_left_by_a_dead_process_is_skipped_and_removed() -> None:
    q = MachineQueue("git://h/r.git", "ifcoord")
    proc = holder("git://h/r.git")
    proc.kill()
    proc.wait()
    assert len(tickets(q)) == 1  # SIGKILL left it behind, unlocked
    with q.turn(FAR, wait=0.0) as had:  # no wait allowed: it must not need one
        assert had
    assert tickets(q) == []


def test_a_stuck_holder_keeps_the_turn_only_until_the_wait_runs_out() -> None:
    """A holder stuck on a dead remote does not stop the others: after the wait they go ahead
    without their turn, as they would with no queue."""
    q = MachineQueue("git://h/r.git", "ifcoord")
    proc = holder("git://h/r.git")
    try:
        began = time.monotonic()
        with q.turn(FAR, wait=0.3) as had:
            assert not had
        assert 0.3 <= time.monotonic() - began < 10
        # nor beyond the operation's own deadline
        with q.turn(time.monotonic() + 0.2) as had:
            assert not had
    finally:
        proc.kill()
        proc.wait()


def test_the_default_wait_is_queue_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue, "QUEUE_WAIT", 0.2)
    q = MachineQueue("git://h/r.git", "ifcoord")
    proc = holder("git://h/r.git")
    try:
        with q.turn(FAR) as had:
            assert not had
    finally:
        proc.kill()
        proc.wait()


def test_a_queue_folder_that_cannot_be_made_means_going_ahead(cache: Path) -> None:
    cache.mkdir(parents=True)
    (cache / "ifcoord").write_text("a file where the folder should be\n")
    with MachineQueue("git://h/r.git", "ifcoord").turn(FAR) as had:
        assert not had


def test_the_queue_is_one_per_remote_url_and_branch(cache: Path) -> None:
    same = MachineQueue("git://h/r.git", "ifcoord").path
    assert same == MachineQueue("git://h/r.git", "ifcoord").path
    other_branch, other_url = MachineQueue("git://h/r.git", "other"), MachineQueue("git://h/s.git", "ifcoord")
    assert len({same, other_branch.path, other_url.path}) == 3
    assert same.parent == cache / "ifcoord" / "queues"
    # and queues of different branches do not wait for each other
    proc = holder("git://h/r.git")
    try:
        with other_branch.turn(FAR, wait=0.0) as had:
            assert had
    finally:
        proc.kill()
        proc.wait()


def test_a_counter_behind_its_tickets_skips_past_them_rather_than_failing_every_join() -> None:
    """A counter that went back (a cache cleaned while a ticket stayed, or a process that died
    between a ticket and the counter): joins take the next free number, and are still queued."""
    q = MachineQueue("git://h/r.git", "ifcoord")
    proc = holder("git://h/r.git")  # ticket 1, held
    try:
        (q.path / queue.COUNTER).write_text("0" * queue.DIGITS)  # the counter says 0 again
        with q.turn(FAR, wait=0.3) as had:
            assert not had  # the holder kept its turn past the wait...
            assert len(tickets(q)) == 2  # ...but this one had joined the queue behind it
        assert tickets(q) == ["0" * (queue.DIGITS - 1) + "1"]
        with q.turn(FAR, wait=0.3):
            numbers = [int(t) for t in tickets(q)]
            assert numbers[0] == 1 and numbers[-1] > 2  # past the numbers it had already used
    finally:
        proc.kill()
        proc.wait()


def test_a_turn_says_whether_another_process_held_it_first() -> None:
    q = MachineQueue("git://h/r.git", "ifcoord")
    with q.turn(FAR) as first:
        assert first and not first.waited  # nobody ahead
    proc = holder("git://h/r.git")
    try:
        got: list[queue.Turn] = []

        def take() -> None:
            with q.turn(FAR, wait=600) as turn:
                got.append(turn)

        waiter = threading.Thread(target=take)
        waiter.start()
        wait_until(lambda: len(tickets(q)) == 2)
        proc.kill()
        waiter.join(timeout=30)
        assert got and got[0] and got[0].waited  # it had the turn, after the holder's
    finally:
        proc.kill()
        proc.wait()
