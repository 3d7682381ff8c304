"""A poll loop runs `git gc --auto` on its clone every TIDY_EVERY seconds: a busy team's commits
arrive as loose objects and small packs, which git would otherwise never gather (ifcoord's own
fetches pass --no-auto-gc), and the user's work is left as it was."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ifcoord.session import loop as loop_module
from ifcoord.session.loop import Event, PollLoop
from ifcoord.session.workspace import Workspace
from testing.branch import HandBranch, status_yaml
from tests.conftest import git, make_clone

BOARD = "# Phase 0\n\n## T-1: First\n**Status:** open\n"


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.05)


def user_view(clone: Path) -> tuple[str, str, str]:
    return (
        git("rev-parse", "HEAD", cwd=clone),
        git("status", "--porcelain", cwd=clone),
        git("for-each-ref", "refs/heads", "refs/remotes", cwd=clone),
    )


@pytest.mark.parametrize("due", [True, False])
def test_a_loop_packs_its_clone_when_due_and_leaves_the_users_work_alone(
    bare_remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, due: bool
) -> None:
    monkeypatch.setattr(loop_module, "TIDY_EVERY", 0.0 if due else 3600.0)
    hand = HandBranch(bare_remote, tmp_path)
    hand.write({"boards/PHASE-0.md": BOARD, "status/alice.yaml": status_yaml("alice")})
    clone = make_clone(bare_remote, tmp_path / "s1")
    (clone / "wip.txt").write_text("uncommitted work\n")
    git("config", "transfer.unpackLimit", "1", cwd=clone)  # every fetch keeps its own pack
    git("config", "gc.autoPackLimit", "2", cwd=clone)  # more than two packs: worth gathering
    ws = Workspace(start=clone, session="s1", remote=str(bare_remote))
    try:
        events: list[Event] = []
        loop = PollLoop(ws, events.append, claim=False)
        packs_folder = ws.store.git_dir / "objects" / "pack"
        for minute in range(1, 4):
            ws.read()
            hand.write({"status/alice.yaml": status_yaml("alice", f"2099-01-01T00:0{minute}:00Z")})
        packs = lambda: list(packs_folder.glob("*.pack"))  # noqa: E731
        assert len(packs()) >= 3
        before = user_view(clone)
        loop.cycle()
        if due:
            wait_until(lambda: len(packs()) == 1 and not (ws.store.git_dir / "gc.pid").exists())
        else:
            assert len(packs()) >= 3
        assert user_view(clone) == before
        assert ws.read(fetch=False).commit == git("rev-parse", "ifcoord", cwd=bare_remote)
        git("fsck", "--no-dangling", cwd=clone)
    finally:
        ws.store.close()
