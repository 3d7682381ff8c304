"""One operation, one commit: read the tip, decide, write a commit on it, compare-and-swap push;
when the tip moved, decide again on the new state (docs/protocol.md, section 3).

A conflict on push means "someone else moved first", never an error: the operation is re-applied
to the new tip, so a claim lost to another session turns into that session's refusal message.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ifcoord.core.snapshot import BranchState, SnapshotLoader
from ifcoord.errors import IfcoordError, RemoteUnreachable
from ifcoord.git import objects
from ifcoord.git.handoff import Handoff
from ifcoord.git.queue import MachineQueue, Turn
from ifcoord.git.retry import backoff
from ifcoord.git.store import BranchStore, MissingObject, PushOutcome, RemoteMissing

DEFAULT_DEADLINE = 60.0
# An operation that asks for the remote's tip, finding that a session of this machine landed a
# commit within this many seconds, decides on that commit rather than fetch (git/handoff.py).
GUESS_FRESH = 10.0


@dataclass
class Change:
    """What an operation wants written: whole files (None deletes) and the commit message parts."""

    files: dict[str, bytes | None]
    subject: str
    trailers: dict[str, str] = field(default_factory=dict)
    payload: Any = None  # handed back to the caller as TxResult.payload

    def message(self) -> str:
        lines = [self.subject, ""]
        lines += [f"{k}: {v}" for k, v in self.trailers.items()]
        return "\n".join(lines) + "\n"


@dataclass
class TxResult:
    landed: bool  # a commit was pushed
    commit: str | None  # the branch tip after the transaction
    payload: Any
    attempts: int
    pushes: int
    state: BranchState | None = None  # the state the final decision was made on
    op_id: str | None = None  # the Ifcoord-Op-Id of the commit that landed


class TipMoved(Exception):
    """The compare-and-swap lost (or its outcome was unknown and it had not landed)."""


class Unconfirmed(Exception):
    """A refusal, or "nothing to change", decided on a tip that was not fetched for an operation
    that asked for the remote's tip: it is decided again on a fetched one."""


class _Hold:
    """The turn a thread holds across several operations (Transactor.holding): the first
    operation inside it learns whether others went first, as if it had queued itself; the ones
    after it follow a commit this thread has just landed, so nobody went first for them."""

    __slots__ = ("turn", "joined", "used")

    def __init__(self, turn: Turn, joined: float) -> None:
        self.turn = turn
        self.joined = joined
        self.used = False

    def next_turn(self) -> tuple[Turn, float]:
        """The Turn the next attempt inside the hold runs in, and when it "joined"."""
        if self.used:
            return Turn(self.turn.had, False), time.monotonic()
        self.used = True
        return self.turn, self.joined


class Transactor:
    """Runs operations against one branch store, serialised per clone by a file lock."""

    def __init__(
        self,
        store: BranchStore,
        lock_path: Path,
        author: str,
        deadline: float = DEFAULT_DEADLINE,
        loader: SnapshotLoader | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.lock_path = lock_path
        self.author = author
        self.deadline = deadline
        self.loader = loader or SnapshotLoader(store)
        self.sleep = sleep
        self.queue = MachineQueue(store.push_url, store.branch)
        self.handoff = Handoff(self.queue.path)
        self._local = threading.local()  # .hold: the _Hold this thread is inside, if any
        self._clone_lock: Any = None  # one FileLock for the clone: reentrant, per thread

    def clone_lock(self) -> Any:
        """The clone's lock (a FileLock, reentrant within a thread): operations of this clone
        run one at a time, whichever process runs them."""
        if self._clone_lock is None:
            from filelock import FileLock

            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            self._clone_lock = FileLock(str(self.lock_path))
        return self._clone_lock

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Run the operations of the body in one turn at the branch (docs/protocol.md, section
        3): the turn is taken once, before the first, and kept until the last has landed, so
        that an operation that follows another (a completion's next claim) does not queue
        again behind every session of the machine that asked in between. Each operation is
        still its own commit and its own compare-and-swap push. Nested holds are one hold."""
        if getattr(self._local, "hold", None) is not None:
            yield
            return
        joined = time.monotonic()
        with self.clone_lock(), self.queue.turn(joined + self.deadline) as turn:
            self._local.hold = _Hold(turn, joined)
            try:
                yield
            finally:
                self._local.hold = None

    def read(self, fetch: bool = True) -> BranchState:
        """The state at the remote tip (fetched), or at the private ref without a round trip."""
        tip = self.retrying(self.fetch) if fetch else self.store.local_tip()
        return self.load(tip)[1]

    def fetch(self) -> str | None:
        """The remote's tip into the private ref (BranchStore.fetch). Where the tip is known
        without git (git://), the commits that sessions of this machine pushed since this clone's
        tip come from the handoff rather than from the server."""
        return self.store.fetch(supply=self.handoff.between)

    def sync(self) -> str | None:
        """The loop's look (BranchStore.sync): when the remote moved to commits that sessions of
        this machine pushed, their objects come from the handoff, not from the server."""
        return self.store.sync(supply=self.handoff.between)

    def retrying(self, fn: Callable[[], Any]) -> Any:
        """Run fn, retrying RemoteUnreachable with jittered backoff until the deadline."""
        retrying = backoff(
            self.deadline,
            lambda e: isinstance(e, RemoteUnreachable) and not isinstance(e, RemoteMissing),
            self.sleep,
            reraise=True,
        )
        return retrying(fn)

    def load(self, tip: str | None) -> tuple[str | None, BranchState]:
        """The state at `tip`; a clone missing objects of it heals (refetch) and reads again."""
        try:
            return tip, self.loader.load(tip)
        except MissingObject:
            self.store.heal()
            tip = self.store.fetch()
            return tip, self.loader.load(tip)

    def run(self, decide: Callable[[BranchState], Change | None], fetch_first: bool = True) -> TxResult:
        """Apply `decide` to the tip until its commit lands; IfcoordErrors from decide propagate.

        Every commit of this operation carries the same `Ifcoord-Op-Id`. A push whose answer was
        lost is looked for on the remote until its fate is known; an operation that landed is
        never decided or pushed again; when the deadline passes with the fate still unknown,
        OutcomeUnknown names the id (`ifcoord log --op ID`)."""
        from tenacity import RetryError

        op_id = new_op_id()
        counters = {"attempts": 0, "pushes": 0}
        use_fetch = [fetch_first]
        pushed: dict[str, tuple[Change, BranchState]] = {}  # this operation's commits by sha
        deadline_at = time.monotonic() + self.deadline

        def attempt() -> TxResult:
            counters["attempts"] += 1
            hold: _Hold | None = getattr(self._local, "hold", None)
            if hold is not None:
                held, joined = hold.next_turn()
                in_turn: Any = nullcontext(held)
            else:
                joined = time.monotonic()
                in_turn = self.queue.turn(deadline_at)
            with in_turn as turn:
                if turn.waited:
                    # Sessions of this machine went first: the tip has moved. Take what they
                    # pushed from them, else fetch it.
                    use_fetch[0] = not (turn and self._take_handoff(joined))
                elif use_fetch[0] and turn and self._take_handoff(joined - GUESS_FRESH):
                    # Nobody went first, but a session of this machine landed a commit moments
                    # ago: guess that it is still the tip rather than fetch (a refusal decided
                    # on the guess is checked on a fetched tip before it is believed).
                    use_fetch[0] = False
                optimistic = not use_fetch[0]
                try:
                    return attempt_in_turn(confirm=fetch_first and optimistic)
                except TipMoved:
                    if not optimistic:
                        raise
                except Unconfirmed:
                    pass
                # Decided on the tip the caller had just looked at, or on the one the sessions
                # before this turn handed over, and it had moved (or the decision was a refusal
                # the caller wants made on the remote's tip): look again within this turn
                # rather than queue again behind everyone who asked since.
                counters["attempts"] += 1
                return attempt_in_turn()

        def attempt_in_turn(confirm: bool = False) -> TxResult:
            tip = self.fetch() if use_fetch[0] else self.store.local_tip()
            use_fetch[0] = True  # after a lost race, always look at the remote again
            landed = self._landed_one(pushed, tip)
            if landed is not None:
                # An earlier push of this operation got through after all: done, not re-applied.
                earlier, earlier_state = pushed[landed]
                return self._result(True, landed, earlier.payload, counters, earlier_state, op_id)
            tip, state = self.load(tip)
            try:
                change = decide(state)
            except IfcoordError:
                if confirm:
                    raise Unconfirmed() from None
                raise
            if change is not None:
                # Files written as they already are change nothing: no commit for them.
                change.files = {
                    p: d for p, d in change.files.items() if p not in state.raw or state.raw[p] != d
                }
            if change is None or not change.files:
                if confirm:
                    raise Unconfirmed()  # "nothing to do" is believed only of the remote's tip
                payload = change.payload if change else None
                return self._result(False, tip, payload, counters, state, op_id)
            change.trailers[OP_ID_TRAILER] = op_id
            commit = self.store.write_commit(tip, change.files, change.message(), self.author, now())
            counters["pushes"] += 1
            pushed[commit] = (change, state)
            outcome = self.store.push(commit, tip)
            if outcome is PushOutcome.UNKNOWN:
                # The connection broke mid-push: it may have landed, or may still land.
                outcome = self._resolve(commit, tip, op_id, deadline_at)
            if outcome is PushOutcome.REJECTED:
                raise TipMoved()
            self._keep_parses(state, change.files)
            self._leave_handoff(tip, commit)
            return self._result(True, commit, change.payload, counters, state, op_id)

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, (TipMoved, RemoteUnreachable)) and not isinstance(
                exc, (OutcomeUnknown, RemoteMissing)
            )

        retrying = backoff(self.deadline, retryable, self.sleep)
        with self.clone_lock():
            try:
                return retrying(attempt)
            except RetryError as exc:
                last = exc.last_attempt.exception()
                if isinstance(last, RemoteUnreachable):
                    raise last from None
                raise RemoteUnreachable(
                    f"could not land the change on {self.store.branch} after "
                    f"{counters['attempts']} attempts in {self.deadline:.0f}s: the branch kept moving",
                    hint="try again; nothing was changed",
                ) from None

    def _take_handoff(self, joined: float) -> bool:
        """Take the tip the sessions before this turn pushed, from them (git/handoff.py);
        False: fetch it instead."""
        local = self.store.local_tip()
        handed = self.handoff.take(local, joined)
        if handed is None:
            return False
        tip, loose = handed
        if tip != local:
            try:
                self.store.adopt(tip, loose)
            except (OSError, IfcoordError):
                return False
        return True

    def _leave_handoff(self, parent: str | None, commit: str) -> None:
        """Hand the commit that just landed to the next turn of this machine."""
        written = self.store.last_written
        if written is not None and written[0] == commit:
            self.handoff.leave(parent, commit, written[1])

    def _keep_parses(self, state: BranchState, files: dict[str, bytes | None]) -> None:
        """The next command reads the files this commit wrote: their parses go to the parse
        cache now, by blob id, while they are at hand."""
        written = {p: (objects.object_id(b"blob", d) if d is not None else "", d) for p, d in files.items()}
        try:
            self.loader.keep(state.snapshot.config, written)
        except Exception:  # noqa: BLE001 - the commit has landed; a cache not filled is only slower
            pass

    @staticmethod
    def _result(
        landed: bool,
        commit: str | None,
        payload: Any,
        counters: dict[str, int],
        state: BranchState,
        op_id: str,
    ) -> TxResult:
        return TxResult(
            landed,
            commit,
            payload,
            counters["attempts"],
            counters["pushes"],
            state,
            op_id if landed else None,
        )

    def _landed_one(self, pushed: dict[str, tuple[Change, BranchState]], tip: str | None) -> str | None:
        """Which of this operation's commits the tip contains (at most one can have landed)."""
        if tip is None:
            return None
        for commit in pushed:
            if commit == tip or self.store.is_ancestor(commit, tip):
                return commit
        return None

    def _resolve(self, commit: str, expected: str | None, op_id: str, deadline_at: float) -> PushOutcome:
        """The fate of a push whose answer was lost: LANDED or REJECTED, known for sure.

        While the remote tip is still `expected`, the same commit is offered again with the same
        compare-and-swap: it can land at most once, whichever copy gets there (the first may
        still be in the server's hooks). A tip that moved elsewhere, without our commit, means
        it cannot land any more."""
        pause = 0.2
        while True:
            try:
                tip = self.store.remote_tip()
            except RemoteMissing:
                raise
            except RemoteUnreachable:
                tip = UNSEEN
            if tip == commit:
                self.store.set_private_ref(commit)
                return PushOutcome.LANDED
            if tip is None:
                return PushOutcome.REJECTED  # the branch is gone: nothing of ours is on it
            if tip == expected:
                left = deadline_at - time.monotonic()
                if left > 0:
                    outcome = self.store.push(commit, expected, timeout=max(1.0, left))
                    if outcome is PushOutcome.LANDED:
                        return outcome
            elif tip is not UNSEEN:
                try:
                    fetched = self.store.fetch()
                except RemoteUnreachable:
                    fetched = None
                if fetched is not None:
                    if self.store.is_ancestor(commit, fetched):
                        return PushOutcome.LANDED
                    return PushOutcome.REJECTED
            if time.monotonic() >= deadline_at:
                raise OutcomeUnknown(op_id, self.store.branch)
            self.sleep(min(pause, max(0.0, deadline_at - time.monotonic())))
            pause = min(pause * 2, 2.0)


UNSEEN = "<unseen>"
OP_ID_TRAILER = "Ifcoord-Op-Id"


class OutcomeUnknown(RemoteUnreachable):
    """A push whose fate could not be learnt before the deadline (exit 5)."""

    def __init__(self, op_id: str, branch: str) -> None:
        super().__init__(
            f"the outcome is unknown: `ifcoord log --op {op_id}` will show whether it landed on {branch}",
            hint="do not repeat the operation before checking",
        )
        self.op_id = op_id


def new_op_id() -> str:
    """A unique operation id: the trailer that tells whether an operation landed, and once."""
    return uuid.uuid4().hex


def clock_offset() -> float:
    """Seconds added to this machine's clock, for testing skewed clocks (IFCOORD_CLOCK_OFFSET)."""
    try:
        return float(os.environ.get("IFCOORD_CLOCK_OFFSET", "0") or 0)
    except ValueError:
        return 0.0


def clock() -> float:
    """Unix time as ifcoord sees it (the system clock, plus the testing offset)."""
    return time.time() + clock_offset()


def now() -> datetime:
    return datetime.fromtimestamp(int(clock()), timezone.utc)


def jitter(seconds: float, spread: float = 0.2) -> float:
    """`seconds` give or take `spread` of it, so that loops started together drift apart."""
    return seconds * (1 + random.uniform(-spread, spread))
