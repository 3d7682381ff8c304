"""One operation, one commit: read the tip, decide, write a commit on it, compare-and-swap push;
when the tip moved, decide again on the new state (docs/protocol.md, section 3).

A conflict on push means "someone else moved first", never an error: the operation is re-applied
to the new tip, so a claim lost to another session turns into that session's refusal message.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ifcoord.core.snapshot import BranchState, SnapshotLoader
from ifcoord.errors import RemoteUnreachable
from ifcoord.git.store import BranchStore, PushOutcome

DEFAULT_DEADLINE = 60.0


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


class TipMoved(Exception):
    """The compare-and-swap lost (or its outcome was unknown and it had not landed)."""


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

    def read(self, fetch: bool = True) -> BranchState:
        """The state at the remote tip (fetched), or at the private ref without a round trip."""
        tip = self.retrying(self.store.fetch) if fetch else self.store.local_tip()
        return self.loader.load(tip)

    def retrying(self, fn: Callable[[], Any]) -> Any:
        """Run fn, retrying RemoteUnreachable with jittered backoff until the deadline."""
        from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

        retrying = Retrying(
            retry=retry_if_exception_type(RemoteUnreachable),
            stop=stop_after_delay(self.deadline),
            wait=wait_random_exponential(multiplier=0.1, max=3.0),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(fn)

    def run(self, decide: Callable[[BranchState], Change | None], fetch_first: bool = True) -> TxResult:
        """Apply `decide` to the tip until its commit lands; IfcoordErrors from decide propagate."""
        from filelock import FileLock
        from tenacity import (
            RetryError,
            Retrying,
            retry_if_exception_type,
            stop_after_delay,
            wait_random_exponential,
        )

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        counters = {"attempts": 0, "pushes": 0}
        use_fetch = [fetch_first]

        def attempt() -> TxResult:
            counters["attempts"] += 1
            tip = self.store.fetch() if use_fetch[0] else self.store.local_tip()
            use_fetch[0] = True  # after a lost race, always look at the remote again
            state = self.loader.load(tip)
            change = decide(state)
            if change is not None:
                # Files written as they already are change nothing: no commit for them.
                change.files = {
                    p: d for p, d in change.files.items() if p not in state.raw or state.raw[p] != d
                }
            if change is None or not change.files:
                payload = change.payload if change else None
                return TxResult(False, tip, payload, counters["attempts"], counters["pushes"], state)
            commit = self.store.write_commit(tip, change.files, change.message(), self.author, now())
            counters["pushes"] += 1
            outcome = self.store.push(commit, tip)
            if outcome is PushOutcome.UNKNOWN:
                # The connection broke mid-push: it may have landed. Look before trying again.
                outcome = PushOutcome.LANDED if self._landed(commit) else PushOutcome.REJECTED
            if outcome is PushOutcome.REJECTED:
                raise TipMoved()
            return TxResult(True, commit, change.payload, counters["attempts"], counters["pushes"], state)

        retrying = Retrying(
            retry=retry_if_exception_type((TipMoved, RemoteUnreachable)),
            stop=stop_after_delay(self.deadline),
            # Jitter spreads racing sessions out so that most of them land on their next try.
            wait=wait_random_exponential(multiplier=0.1, max=3.0),
            sleep=self.sleep,
        )
        with FileLock(str(self.lock_path)):
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

    def _landed(self, commit: str) -> bool:
        """Whether `commit` is on the remote branch now (perhaps already built upon)."""
        try:
            tip = self.store.fetch()
        except RemoteUnreachable:
            return False  # still unknown: the next attempt re-reads and re-decides
        return tip is not None and self.store.is_ancestor(commit, tip)


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def jitter(seconds: float, spread: float = 0.2) -> float:
    """`seconds` give or take `spread` of it, so that loops started together drift apart."""
    return seconds * (1 + random.uniform(-spread, spread))
