"""Several operations in one turn at the branch (Transactor.holding, Workspace.one_turn):
`complete --next` claims the next task right after the completion lands, before any other
session of the machine that asked for a turn meanwhile (docs/protocol.md, section 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ifcoord.core.ops import claim_task, complete_task, heartbeat
from ifcoord.session.now import then_ask
from ifcoord.session.workspace import Workspace
from testing.branch import HandBranch
from tests.conftest import git, make_clone, run_ifcoord
from tests.test_turn_fetch import cache, joins, wait_until  # noqa: F401 - cache: the queues' folder

BOARD = "# Phase 0\n\n## T-1: First\n**Status:** open\n\n## T-2: Second\n**Status:** open\n"

# Another process of this machine: it asks for a turn, and once it has it prints the remote's
# tip as it finds it then, and leaves.
LOOKER = """
import subprocess, sys
from ifcoord.git.queue import MachineQueue
with MachineQueue(sys.argv[1], "ifcoord").turn(1e12) as had:
    out = subprocess.run(["git", "ls-remote", sys.argv[1], "refs/heads/ifcoord"],
                         capture_output=True, text=True, check=True).stdout
    print(("held " if had else "not held ") + out.split()[0], flush=True)
"""


def holding_t1(bare: Path, tmp_path: Path) -> Workspace:
    HandBranch(bare, tmp_path).write({"boards/PHASE-0.md": BOARD})
    ws = Workspace(start=make_clone(bare, tmp_path / "s1"), session="s1", remote=str(bare))
    _, tx = ws.apply(lambda s, c: claim_task(s, "T-1", c), task_id="T-1")
    assert tx.landed
    return ws


def test_the_claim_after_a_completion_lands_before_a_session_that_asked_meanwhile(
    bare_remote: Path, tmp_path: Path
) -> None:
    ws = holding_t1(bare_remote, tmp_path)
    q = ws.transactor.queue
    looker: list[subprocess.Popen[str]] = []
    apply = ws.apply

    def then_someone_asks(*args: Any, **kw: Any) -> Any:
        out = apply(*args, **kw)
        if not looker:  # the completion has landed: another process asks for a turn now
            asked = joins(q)
            looker.append(
                subprocess.Popen(
                    [sys.executable, "-c", LOOKER, str(bare_remote)],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=os.environ,
                )  # fmt: skip
            )
            wait_until(lambda: joins(q) == asked + 1)  # it has taken its ticket
        return out

    ws.apply = then_someone_asks  # type: ignore[method-assign]
    try:
        before = joins(q)
        result, tx, (answer, _, _) = then_ask(ws, lambda s, c: complete_task(s, "T-1", c), "T-1")
        assert result.op == "complete" and tx.landed
        assert answer.action == "work" and answer.claimed and answer.task and answer.task.id == "T-2"
        tip = git("rev-parse", "ifcoord", cwd=bare_remote)
        assert git("rev-parse", f"{tip}^", cwd=bare_remote) == tx.commit  # the claim, on the completion
        assert looker[0].stdout is not None
        # The other process had its turn only after the claim: the tip it saw is the claim's.
        assert looker[0].stdout.readline().split() == ["held", tip]
        assert looker[0].wait(timeout=30) == 0
        assert joins(q) - before == 2  # one turn for both operations, one for the other process
    finally:
        for p in looker:
            p.kill()
        ws.store.close()


def test_operations_in_one_hold_take_one_turn_and_each_lands_as_its_own_commit(
    bare_remote: Path, tmp_path: Path
) -> None:
    ws = holding_t1(bare_remote, tmp_path)
    q = ws.transactor.queue
    try:
        before = joins(q)
        old = git("rev-parse", "ifcoord", cwd=bare_remote)
        with ws.one_turn(), ws.one_turn():  # a nested hold is the same hold
            _, first = ws.apply(lambda s, c: heartbeat(s, c, "working", "first"))
            _, second = ws.apply(lambda s, c: heartbeat(s, c, "working", "second"))
        assert first.landed and second.landed
        assert (first.pushes, second.pushes) == (1, 1)
        assert joins(q) - before == 1
        log = git("rev-list", f"{old}..ifcoord", cwd=bare_remote).split()
        assert log == [second.commit, first.commit]
        assert not q.busy()  # the turn was given back
    finally:
        ws.store.close()


def test_a_hold_that_ends_in_an_error_gives_the_turn_back(bare_remote: Path, tmp_path: Path) -> None:
    ws = holding_t1(bare_remote, tmp_path)
    q = ws.transactor.queue
    try:
        with pytest.raises(RuntimeError), ws.one_turn():
            assert q.busy()
            raise RuntimeError("the caller failed")
        assert not q.busy()
        # and the next operation has its turn at once
        _, tx = ws.apply(lambda s, c: heartbeat(s, c, "working", None))
        assert tx.landed
    finally:
        ws.store.close()


def test_complete_next_on_the_command_line_completes_then_claims_and_says_what_to_do(
    bare_remote: Path, tmp_path: Path
) -> None:
    ws = holding_t1(bare_remote, tmp_path)
    ws.store.close()
    clone = ws.top or tmp_path / "s1"
    env = {"IFCOORD_SESSION": "s1"}  # served by the run's command server, as an agent's are
    done = run_ifcoord("complete", "T-1", "--next", "--json", cwd=clone, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["op"], out["task"]["id"], out["changed"]) == ("complete", "T-1", True)
    assert out["task"]["state"] == "done"
    assert out["next"]["action"] == "work" and out["next"]["claimed"] is True
    assert out["next"]["task"]["id"] == "T-2" and out["next"]["epoch"] == 1
    assert git("log", "-1", "--format=%s", "ifcoord", cwd=bare_remote).startswith("ifcoord: claim T-2")
    # a refused completion claims nothing: exit 3, and the branch does not move
    tip = git("rev-parse", "ifcoord", cwd=bare_remote)
    other = {**env, "IFCOORD_SESSION": "s2"}
    refused = run_ifcoord("complete", "T-2", "--next", "--json", cwd=clone, env=other)
    assert refused.returncode == 3, refused.stderr
    assert git("rev-parse", "ifcoord", cwd=bare_remote) == tip
    # nothing left: the completion still exits 0, and the answer says the board is done
    last = run_ifcoord("complete", "T-2", "--next", cwd=clone, env=env)
    assert last.returncode == 0, last.stderr
    assert last.stdout.strip() == "ifcoord: every task on the board is done; nothing left to do."
    assert "T-2" in last.stderr  # the completion's own line
