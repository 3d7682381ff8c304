"""The transaction's decisions (git/transaction.py) over real remotes: a bare repository, and
`git daemon` behind the fault proxy for pushes whose answer is lost (the server took the push) or
that are lost on their way (the server never got it). Each path of `Transactor.run` is pinned
down: a clean push, a lost race, a push that landed without an answer, one that did not land, an
outcome that cannot be learnt, a write that changes nothing, a branch that never stops moving.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import smart_http

from ifcoord.core.snapshot import BranchState
from ifcoord.errors import RemoteUnreachable
from ifcoord.git.store import BranchStore
from ifcoord.git.transaction import Change, OutcomeUnknown, Transactor
from testing.branch import HandBranch
from testing.proxy import FaultProxy
from tests.conftest import git, make_clone


def daemon_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


BOARD = "# Phase 0\n\n## T1: One\n**Status:** open\n"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a machine queue of its own


class Remote:
    """A remote with the board on its `ifcoord` branch, a person's clone that can move it, and a
    session's store and transactor, reaching it at `url`."""

    def __init__(self, bare: Path, url: str, tmp_path: Path, deadline: float = 10.0) -> None:
        self.bare = bare
        self.hand = HandBranch(bare, tmp_path)
        self.hand.write({"boards/PHASE-0.md": BOARD}, "init")
        clone = make_clone(url, tmp_path / "session")
        self.store = BranchStore(clone / ".git", url, "ifcoord")
        self.tx = Transactor(self.store, clone / ".git" / "ifcoord" / "lock", author="s1", deadline=deadline)

    def tip(self) -> str:
        return git("rev-parse", "ifcoord", cwd=self.bare)

    def subjects(self) -> list[str]:
        return git("log", "--format=%s", "ifcoord", cwd=self.bare).splitlines()

    def file(self, path: str) -> str | None:
        return git("show", f"ifcoord:{path}", cwd=self.bare, check=False) or None

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def remote(bare_remote: Path, tmp_path: Path) -> Iterator[Remote]:
    r = Remote(bare_remote, str(bare_remote), tmp_path)
    yield r
    r.close()


@pytest.fixture
def proxied(git_daemon: tuple[str, Path], tmp_path: Path) -> Iterator[tuple[Remote, FaultProxy]]:
    url, bare = git_daemon
    proxy = FaultProxy(daemon_port(url))
    r = Remote(bare, f"git://127.0.0.1:{proxy.port}/remote.git", tmp_path)
    yield r, proxy
    r.close()
    proxy.close()


def writing(
    path: str, data: bytes, seen: list[str | None] | None = None, before: Callable[[], None] | None = None
) -> Callable[[BranchState], Change]:
    """An operation: write one file; records the tip each decision was made on, and runs
    `before` (a person moving the branch) after each decision."""

    def decide(state: BranchState) -> Change:
        if seen is not None:
            seen.append(state.commit)
        if before is not None:
            before()
        return Change({path: data}, "ifcoord: test", {"Ifcoord-Op": "test"}, payload="written")

    return decide


def test_a_clean_push_lands_once_with_an_operation_id(remote: Remote) -> None:
    tx = remote.tx.run(writing("status/s1.yaml", b"session: s1\n"))
    assert tx.landed and tx.commit == remote.tip() and (tx.pushes, tx.attempts) == (1, 1)
    assert f"Ifcoord-Op-Id: {tx.op_id}" in git("log", "-1", "--format=%B", "ifcoord", cwd=remote.bare)
    assert remote.subjects() == ["ifcoord: test", "init"]


def test_a_lost_race_is_decided_again_on_the_new_tip(remote: Remote) -> None:
    first = remote.tip()
    seen: list[str | None] = []
    raced: list[str] = []

    def race() -> None:  # another writer lands first, once
        if not raced:
            raced.append(
                remote.hand.write({"status/other.yaml": "session: other\n"}, "ifcoord: heartbeat by other")
            )

    tx = remote.tx.run(writing("status/s1.yaml", b"session: s1\n", seen, race))
    assert tx.landed and tx.attempts == 2
    assert seen == [first, raced[0]]  # the second decision saw the winner's commit
    assert remote.file("status/other.yaml") and remote.file("status/s1.yaml")  # no update lost
    assert remote.subjects() == ["ifcoord: test", "ifcoord: heartbeat by other", "init"]


def test_a_push_that_landed_without_an_answer_is_not_applied_again(
    proxied: tuple[Remote, FaultProxy],
) -> None:
    remote, proxy = proxied
    proxy.cut_next()
    seen: list[str | None] = []
    tx = remote.tx.run(writing("status/s1.yaml", b"session: s1\n", seen))
    assert proxy.pushes == ["push cut"]
    assert tx.landed and len(seen) == 1 and tx.pushes == 1  # decided once, pushed once
    assert tx.commit == remote.tip() and remote.subjects() == ["ifcoord: test", "init"]


def test_a_push_over_smart_http_that_landed_without_an_answer_is_not_applied_again(tmp_path: Path) -> None:
    # curl keeps the connection of the ref advertisement alive and sends the push on it: the
    # proxy must know the push by its own request line, not by the connection's first one
    with smart_http(tmp_path) as (_, bare, port):
        proxy = FaultProxy(port)
        remote = Remote(bare, f"http://127.0.0.1:{proxy.port}/remote.git", tmp_path)
        try:
            proxy.cut_next()
            seen: list[str | None] = []
            tx = remote.tx.run(writing("status/s1.yaml", b"session: s1\n", seen))
            # the web server answers before the update is done: the same commit may be offered
            # again under the same compare-and-swap while the branch is still where it was
            assert proxy.cuts == 1 and proxy.pushes[0] == "push cut", proxy.pushes
            assert tx.landed and len(seen) == 1 and tx.pushes == 1  # decided once
            assert tx.commit == remote.tip() and remote.subjects() == ["ifcoord: test", "init"]
        finally:
            remote.close()
            proxy.close()


def test_a_push_that_did_not_land_is_offered_again_under_the_same_compare_and_swap(
    proxied: tuple[Remote, FaultProxy],
) -> None:
    remote, proxy = proxied
    base = remote.tip()
    proxy.drop_next()
    seen: list[str | None] = []
    tx = remote.tx.run(writing("status/s1.yaml", b"session: s1\n", seen))
    assert proxy.pushes == ["push dropped", "push answered"], f"{proxy.pushes} {proxy.requests}"
    assert tx.landed and len(seen) == 1  # the same commit, pushed again, not decided again
    assert tx.commit == remote.tip() and git("rev-parse", f"{tx.commit}^", cwd=remote.bare) == base


def test_an_outcome_that_cannot_be_learnt_is_said_unknown_with_the_operation_id(
    git_daemon: tuple[str, Path], tmp_path: Path
) -> None:
    url, bare = git_daemon
    proxy = FaultProxy(daemon_port(url))
    remote = Remote(bare, f"git://127.0.0.1:{proxy.port}/remote.git", tmp_path, deadline=1.0)
    try:
        proxy.drop_next()
        proxy.outage_after_cut = 3600.0  # the remote is gone for good right after
        with pytest.raises(OutcomeUnknown) as err:
            remote.tx.run(writing("status/s1.yaml", b"session: s1\n"))
        assert err.value.exit_code == 5
        assert f"ifcoord log --op {err.value.op_id}" in err.value.message
        assert "nothing was changed" not in err.value.line()
        assert remote.subjects() == ["init"]
    finally:
        remote.close()
        proxy.close()


def test_writing_what_is_already_there_makes_no_commit(remote: Remote) -> None:
    tip = remote.tip()
    tx = remote.tx.run(writing("boards/PHASE-0.md", BOARD.encode()))
    assert not tx.landed and tx.pushes == 0 and remote.tip() == tip and tx.payload == "written"


def test_a_branch_that_keeps_moving_gives_up_at_the_deadline_having_changed_nothing(
    bare_remote: Path, tmp_path: Path
) -> None:
    remote = Remote(bare_remote, str(bare_remote), tmp_path, deadline=1.0)
    moves = iter(range(10**6))
    try:

        def move() -> None:  # somebody else lands after every decision
            remote.hand.write({"status/other.yaml": f"session: other\nn: {next(moves)}\n"})

        with pytest.raises(RemoteUnreachable) as err:
            remote.tx.run(writing("status/s1.yaml", b"session: s1\n", before=move))
        assert "kept moving" in err.value.message and "nothing was changed" in err.value.line()
        assert remote.file("status/s1.yaml") is None
        assert "ifcoord: test" not in remote.subjects()
    finally:
        remote.close()
