"""Sessions of one user on one machine take turns at a branch, first come first served.

The queue is a folder of tickets under ~/.cache/ifcoord/queues/ (one folder per remote URL and
branch). A process joins by taking the next number from the folder's counter and creating the
ticket file of that number, locked (flock) by it for as long as it waits and holds its turn.
Its turn comes when no ticket with a smaller number is left: it waits for the ticket just before
its own, by asking for a shared lock on it, which the kernel grants the moment that process lets
go of the ticket, at the end of its turn, or when it dies (even by SIGKILL). A ticket found
unlocked belongs to a process that died: the next in line removes it.

So turns pass straight from one process to the next in the order they asked (a lock polled
every 50 ms passed them in no order: with 200 sessions some waited a minute while later ones
went first), a dead process never holds up the queue, and waiting costs no CPU.

It is only a queue: the compare-and-swap still decides. A process that waits longer than
it may (its deadline, or QUEUE_WAIT for a holder stuck on a dead remote) goes ahead without
its turn, as it would with no queue at all.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ifcoord.files.places import user_cache_home

QUEUE_WAIT = 30.0  # seconds a process waits for its turn before going ahead without it
COUNTER = "counter"
DIGITS = 20  # ticket names: zero-padded numbers, so that names sort as numbers
JOIN_TRIES = 1000
NEW_TICKET = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class Turn:
    """What `MachineQueue.turn` yields: true when the process has its turn (False: it went ahead
    without); `waited` when another process of this machine held the turn first, so that what
    this one read of the branch before it asked is likely out of date."""

    __slots__ = ("had", "waited")

    def __init__(self, had: bool, waited: bool = False) -> None:
        self.had = had
        self.waited = waited

    def __bool__(self) -> bool:
        return self.had

    def __repr__(self) -> str:
        return f"Turn(had={self.had}, waited={self.waited})"


def queues_home() -> Path:
    return user_cache_home() / "queues"


class MachineQueue:
    """The queue of one remote URL and branch on this machine (docs/protocol.md, section 3)."""

    def __init__(self, url: str, branch: str) -> None:
        key = uuid.uuid5(uuid.NAMESPACE_URL, f"{url}\0{branch}").hex
        self.path = queues_home() / key

    @contextmanager
    def turn(self, deadline_at: float, wait: float | None = None) -> Iterator[Turn]:
        """Hold this process's turn for the body; yields a Turn, false when it went ahead
        without it (after waiting `wait` seconds, QUEUE_WAIT by default, or until the deadline,
        or because the queue's folder cannot be used), with whether anyone went first."""
        limit = QUEUE_WAIT if wait is None else wait
        give_up = time.monotonic() + max(0.0, min(limit, deadline_at - time.monotonic()))
        try:
            number, fd = self._join()
        except OSError:
            yield Turn(False)
            return
        try:
            yield self._wait_for_turn(number, give_up)
        finally:
            self._leave(number, fd)

    def busy(self) -> bool:
        """Whether any process of this machine holds or waits for a turn here."""
        try:
            return bool(self._numbers())
        except OSError:
            return False

    # -- the tickets ------------------------------------------------------------------------

    def _ticket(self, number: int) -> Path:
        return self.path / f"{number:0{DIGITS}d}"

    def _join(self) -> tuple[int, int]:
        """Take the next number and create its ticket, locked, in one step under the counter's
        lock: tickets appear in the order of their numbers, never a smaller one after a larger."""
        self.path.mkdir(parents=True, exist_ok=True)
        counter = os.open(self.path / COUNTER, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(counter, fcntl.LOCK_EX)  # held for microseconds; a dead holder frees it
            raw = os.pread(counter, DIGITS, 0)
            try:
                number = int(raw) + 1
            except ValueError:  # a new queue, or a counter cut short: start after what is there
                number = 1 + max(self._numbers(), default=0)
            for _ in range(JOIN_TRIES):
                # The number is taken before its ticket exists: a process that dies in between
                # leaves a gap, never a counter behind a ticket (which would fail every join).
                os.pwrite(counter, f"{number:0{DIGITS}d}".encode(), 0)
                try:
                    fd = os.open(self._ticket(number), NEW_TICKET, 0o600)
                except FileExistsError:  # left by a counter that went back (a cleaned cache)
                    number += 1
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX)  # nobody can have it yet: the counter is still ours
                return number, fd
            raise OSError(f"no free ticket in {self.path}")
        finally:
            os.close(counter)  # closing releases the counter's lock

    def _earlier(self, number: int) -> list[int]:
        return sorted(n for n in self._numbers() if n < number)

    def _numbers(self) -> list[int]:
        """The numbers of the tickets in the folder (other names, such as the counter, are not)."""
        return [
            int(p.name)
            for p in self.path.iterdir()
            if len(p.name) == DIGITS and p.name.isascii() and p.name.isdigit()
        ]

    def _wait_for_turn(self, number: int, give_up: float) -> Turn:
        """Wait until no ticket before `number` is left; a false Turn when `give_up` came first."""
        waited = False
        while True:
            try:
                earlier = self._earlier(number)
            except OSError:
                return Turn(False, waited)
            if not earlier:
                return Turn(True, waited)
            waited = True
            before = earlier[-1]
            try:
                fd = os.open(self._ticket(before), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # it just left
            except OSError:
                return Turn(False, waited)
            if not _lock_shared_within(fd, give_up - time.monotonic()):
                return Turn(False, waited)  # the thread that waits on it closes fd when it gets the lock
            try:
                # Unlocked: its process left (it removed its ticket first) or died (the ticket
                # is still there and nobody else will remove it).
                self._ticket(before).unlink(missing_ok=True)
            except OSError:
                pass
            finally:
                os.close(fd)

    def _leave(self, number: int, fd: int) -> None:
        """Remove the ticket, then let go of it: the next in line, woken by the release, finds
        it gone."""
        try:
            self._ticket(number).unlink(missing_ok=True)
        except OSError:
            pass
        os.close(fd)


def _lock_shared_within(fd: int, seconds: float) -> bool:
    """A shared flock on `fd` within `seconds`. flock cannot time out, so a thread of its own
    waits for it; if the time runs out first, that thread closes `fd` once it has the lock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    except OSError:
        os.close(fd)
        return False
    if seconds <= 0:
        os.close(fd)
        return False
    got = threading.Event()
    state = {"abandoned": False, "ok": False}
    guard = threading.Lock()

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            ok = True
        except OSError:
            ok = False
        with guard:
            state["ok"] = ok
            if state["abandoned"]:
                os.close(fd)
            got.set()

    threading.Thread(target=wait, name="ifcoord-queue", daemon=True).start()
    got.wait(seconds)
    with guard:  # decided under the guard: the lock may come just as the time runs out
        if not got.is_set():
            state["abandoned"] = True
            return False
    if not state["ok"]:
        os.close(fd)
    return state["ok"]
