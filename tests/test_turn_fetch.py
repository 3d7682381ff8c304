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
from collections.abc import Callable
from pathlib import Path

import pytest

from ifcoord.core.ops import heartbeat
from ifcoord.git.queue import COUNTER, MachineQueue
from ifcoord.session.workspace import Workspace
from testing.branch import HandBranch, status_yaml
from tests.conftest import make_clone

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


def session(bare: Path, tmp_path: Path) -> tuple[Workspace, HandBranch]:
    hand = HandBranch(bare, tmp_path)
    hand.write({"boards/PHASE-0.md": BOARD, "status/alice.yaml": status_yaml("alice")})
    ws = Workspace(start=make_clone(bare, tmp_path / "s1"), session="s1", remote=str(bare))
    ws.read()  # the loop's look at the remote
    # someone else moves the branch after it
    hand.write({"status/alice.yaml": status_yaml("alice", "2099-01-01T00:01:00Z")})
    return ws, hand


def test_a_push_that_finds_the_tip_moved_looks_again_in_the_same_turn(bare_remote: Path, tmp_path: Path) -> None:
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
    q = ws.transactor.queue
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(bare_remote)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out: dict[str, object] = {}

        def run() -> None:
            out["tx"] = ws.apply(lambda s, c: heartbeat(s, c, "idle", None), fetch_first=False)[1]

        before = joins(q)
        worker = threading.Thread(target=run)
        worker.start()
        wait_until(lambda: joins(q) > before)  # its ticket is taken: it waits behind the holder
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        worker.join(timeout=60)
        tx = out["tx"]
        assert tx.landed  # type: ignore[attr-defined]
        # it fetched first: one push, no rejected one
        assert (tx.attempts, tx.pushes) == (1, 1)  # type: ignore[attr-defined]
    finally:
        holder.kill()
        holder.wait()
        ws.store.close()


def test_an_operation_that_had_the_turn_at_once_decides_on_what_its_caller_looked_at(
    bare_remote: Path, tmp_path: Path
) -> None:
    hand = HandBranch(bare_remote, tmp_path)
    hand.write({"boards/PHASE-0.md": BOARD, "status/alice.yaml": status_yaml("alice")})
    ws = Workspace(start=make_clone(bare_remote, tmp_path / "s1"), session="s1", remote=str(bare_remote))
    try:
        ws.read()
        fetches = []
        fetch = ws.store.fetch

        def counted() -> str | None:
            fetches.append(1)
            return fetch()

        ws.store.fetch = counted  # type: ignore[method-assign]
        result, tx = ws.apply(lambda s, c: heartbeat(s, c, "idle", None), fetch_first=False)
        assert tx.landed and (tx.attempts, tx.pushes) == (1, 1)
        assert fetches == []  # nobody went first and the tip had not moved: no fetch at all
    finally:
        ws.store.close()
