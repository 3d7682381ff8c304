"""The transaction's decisions, with a fake store: an in-memory remote whose pushes can lose a
race, lose their answer, or land late. The real-git behaviour of the same cases is tested in
tests/e2e/test_edges.py and test_transport.py; here each path of `Transactor.run` is pinned
down without the time and noise of a network.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ifcoord.core.snapshot import BranchState, build_snapshot
from ifcoord.errors import RemoteUnreachable
from ifcoord.git.store import PushOutcome
from ifcoord.git.transaction import Change, OutcomeUnknown, Transactor

BOARD = b"# Phase 0\n\n## T1: One\n**Status:** open\n"


@dataclass
class FakeStore:
    """Commits are (parent, files, message); `remote` is the branch's tip on the 'server'."""

    branch: str = "ifcoord"
    push_url: str = "fake://remote"
    commits: dict[str, tuple[str | None, dict[str, bytes], str]] = field(default_factory=dict)
    remote: str | None = None
    local: str | None = None
    # What each push does, in order: "ok", "lose-answer" (lands, answer lost),
    # "lose-push" (answer lost, did not land), "race" (another commit lands first: rejected).
    script: list[str] = field(default_factory=list)
    remote_down: int = 0  # remote_tip calls that fail before it answers again
    pushes: list[str] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def commit(self, parent: str | None, files: dict[str, bytes], message: str) -> str:
        sha = f"{next(self._ids):040x}"
        self.commits[sha] = (parent, files, message)
        return sha

    def files_at(self, sha: str | None) -> dict[str, bytes]:
        return dict(self.commits[sha][1]) if sha else {}

    # -- what the Transactor calls -------------------------------------------------------------

    def fetch(self) -> str | None:
        self.local = self.remote
        return self.local

    def local_tip(self) -> str | None:
        return self.local

    def remote_tip(self) -> str | None:
        if self.remote_down:
            self.remote_down -= 1
            raise RemoteUnreachable("remote did not answer")
        return self.remote

    def set_private_ref(self, sha: str) -> None:
        self.local = sha

    def heal(self) -> None:
        self.local = None

    def is_ancestor(self, commit: str, tip: str) -> bool:
        sha: str | None = tip
        while sha is not None:
            if sha == commit:
                return True
            sha = self.commits[sha][0]
        return False

    def write_commit(self, parent, changes, message, author, when=None) -> str:  # type: ignore[no-untyped-def]
        files = self.files_at(parent)
        for path, data in changes.items():
            if data is None:
                files.pop(path, None)
            else:
                files[path] = data
        return self.commit(parent, files, message)

    def push(self, commit: str, expected: str | None, timeout: float = 60.0) -> PushOutcome:
        self.pushes.append(commit)
        if self.remote != expected:
            return PushOutcome.REJECTED
        step = self.script.pop(0) if self.script else "ok"
        if step == "race":
            other = self.files_at(self.remote)
            other["status/other.yaml"] = b"session: other\n"
            self.remote = self.commit(self.remote, other, "ifcoord: heartbeat by other\n")
            return PushOutcome.REJECTED
        if step == "lose-push":
            return PushOutcome.UNKNOWN
        self.remote = commit
        if step == "lose-answer":
            return PushOutcome.UNKNOWN
        self.local = commit
        return PushOutcome.LANDED


class FakeLoader:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def load(self, tip: str | None) -> BranchState:
        files = self.store.files_at(tip)
        return BranchState(build_snapshot(files, tip), files)


def transactor(store: FakeStore, tmp_path: Path, deadline: float = 5.0) -> Transactor:
    return Transactor(
        store,  # type: ignore[arg-type]
        tmp_path / "lock",
        author="s1",
        deadline=deadline,
        loader=FakeLoader(store),  # type: ignore[arg-type]
        sleep=lambda s: None,
    )


def started(**kwargs) -> FakeStore:  # type: ignore[no-untyped-def]
    store = FakeStore(**kwargs)
    store.remote = store.commit(None, {"boards/PHASE-0.md": BOARD}, "init\n")
    return store


def writing(path: str, data: bytes, seen: list[str | None] | None = None) -> Callable[[BranchState], Change]:
    """An operation: write one file; records the tip each decision was made on."""

    def decide(state: BranchState) -> Change:
        if seen is not None:
            seen.append(state.commit)
        return Change({path: data}, "ifcoord: test", {"Ifcoord-Op": "test"}, payload="written")

    return decide


def test_a_clean_push_lands_once_with_an_operation_id(tmp_path: Path) -> None:
    store = started()
    tx = transactor(store, tmp_path).run(writing("status/s1.yaml", b"session: s1\n"))
    assert tx.landed and tx.commit == store.remote and tx.pushes == 1 and tx.attempts == 1
    assert f"Ifcoord-Op-Id: {tx.op_id}" in store.commits[store.remote][2]


def test_a_lost_race_is_decided_again_on_the_new_tip(tmp_path: Path) -> None:
    store = started(script=["race"])
    first = store.remote
    seen: list[str | None] = []
    tx = transactor(store, tmp_path).run(writing("status/s1.yaml", b"session: s1\n", seen))
    assert tx.landed and tx.attempts == 2
    assert seen[0] == first and seen[1] != first  # the second decision saw the winner's commit
    files = store.files_at(store.remote)
    assert "status/other.yaml" in files and "status/s1.yaml" in files  # no update lost


def test_a_push_that_landed_without_an_answer_is_not_applied_again(tmp_path: Path) -> None:
    store = started(script=["lose-answer"])
    seen: list[str | None] = []
    tx = transactor(store, tmp_path).run(writing("status/s1.yaml", b"session: s1\n", seen))
    assert tx.landed and len(seen) == 1  # decided once
    assert len(store.pushes) == 1 and tx.commit == store.remote


def test_a_push_that_did_not_land_is_offered_again_under_the_same_compare_and_swap(tmp_path: Path) -> None:
    store = started(script=["lose-push"])
    base = store.remote
    tx = transactor(store, tmp_path).run(writing("status/s1.yaml", b"session: s1\n"))
    assert tx.landed
    assert store.pushes[0] == store.pushes[1] == tx.commit  # the same commit, pushed twice
    assert store.commits[tx.commit][0] == base


def test_an_outcome_that_cannot_be_learnt_is_said_unknown_with_the_operation_id(tmp_path: Path) -> None:
    store = started(script=["lose-push"], remote_down=10**6)
    with pytest.raises(OutcomeUnknown) as err:
        transactor(store, tmp_path, deadline=0.2).run(writing("status/s1.yaml", b"session: s1\n"))
    assert err.value.exit_code == 5
    assert f"ifcoord log --op {err.value.op_id}" in err.value.message
    assert "nothing was changed" not in err.value.line()


def test_writing_what_is_already_there_makes_no_commit(tmp_path: Path) -> None:
    store = started()
    tip = store.remote
    tx = transactor(store, tmp_path).run(writing("boards/PHASE-0.md", BOARD))
    assert not tx.landed and tx.pushes == 0 and store.remote == tip and tx.payload == "written"


def test_a_branch_that_keeps_moving_gives_up_at_the_deadline_having_changed_nothing(tmp_path: Path) -> None:
    store = started(script=["race"] * 10**4)
    with pytest.raises(RemoteUnreachable) as err:
        transactor(store, tmp_path, deadline=0.3).run(writing("status/s1.yaml", b"session: s1\n"))
    assert "kept moving" in err.value.message and "nothing was changed" in err.value.line()
    assert all("status/s1.yaml" not in store.files_at(sha) for sha in store.commits if sha == store.remote)
