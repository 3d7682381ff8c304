"""Work that depends only on a commit is done once per process: the state at a commit, the tasks,
their dependencies, who holds what and the scheduler's ranking are shared by every Workspace and
poll loop of the process; a cycle whose tip did not move parses and builds nothing; the shared
answers are the scheduler's and the lifecycle's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifcoord.core import derived as derived_module
from ifcoord.core import lifecycle, snapshot
from ifcoord.core.derived import derived
from ifcoord.core.scheduler import next_for, ready_tasks, resolve_dependencies
from ifcoord.files.board import BoardEdit, apply_edits, parse_board, render_new_task
from ifcoord.files.config import phase_sort_key
from ifcoord.models import Snapshot
from ifcoord.session.loop import Event, PollLoop
from ifcoord.session.workspace import Workspace
from testing.branch import HandBranch, status_yaml
from tests.conftest import make_clone

BOARD = """\
# Phase 0

## T-1: First
**Status:** in_progress
**Owner:** alice

## T-2: Second
**Status:** open
**Depends on:** T-1

## T-3: Third
**Status:** open
**Priority:** HIGH

## T-4: Fourth
**Status:** claimed
**Owner:** bob

## T-5: Fifth
**Status:** open
**Session:** carol
"""


class Counts:
    """How often this process built a state, parsed a file and resolved dependencies."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.builds = 0
        self.parses = 0
        self.resolves = 0
        build, board, status = snapshot.build_snapshot, snapshot.parse_board, snapshot.parse_status
        resolve = derived_module.resolve_dependencies

        def count(name: str, fn):  # type: ignore[no-untyped-def]
            def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
                setattr(self, name, getattr(self, name) + 1)
                return fn(*args, **kwargs)

            return counted

        monkeypatch.setattr(snapshot, "build_snapshot", count("builds", build))
        monkeypatch.setattr(snapshot, "parse_board", count("parses", board))
        monkeypatch.setattr(snapshot, "parse_status", count("parses", status))
        monkeypatch.setattr(derived_module, "resolve_dependencies", count("resolves", resolve))

    def reset(self) -> None:
        self.builds = self.parses = self.resolves = 0


def sessions(bare_remote: Path, tmp_path: Path, names: list[str]) -> list[tuple[Workspace, PollLoop]]:
    out = []
    for name in names:
        ws = Workspace(start=make_clone(bare_remote, tmp_path / name), session=name, remote=str(bare_remote))
        out.append((ws, PollLoop(ws, lambda e: None, claim=False)))
    return out


def test_two_sessions_of_one_process_build_a_commit_once_and_a_still_tip_builds_nothing(
    bare_remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IFCOORD_PARSE_CACHE", "0")  # count parses, not reads of the on-disk cache
    hand = HandBranch(bare_remote, tmp_path)
    hand.write({"boards/PHASE-0.md": BOARD, "status/alice.yaml": status_yaml("alice")})
    team = sessions(bare_remote, tmp_path, ["s1", "s2"])
    try:
        for _ in range(2):  # each session's first heartbeat, then a look at the other's
            for _, loop in team:
                loop.cycle()
        snapshot.forget_parses()
        counts = Counts(monkeypatch)
        hand.write({"status/alice.yaml": status_yaml("alice", "2099-01-01T00:01:00Z")})
        for _, loop in team:
            loop.cycle()
        # the new commit: one state, one parse of each file, one resolution of dependencies,
        # for both sessions (without sharing: two of each)
        assert (counts.builds, counts.parses, counts.resolves) == (1, 4, 1)
        states = [ws.read(fetch=False) for ws, _ in team]
        assert states[0] is states[1]

        counts.reset()
        for _, loop in team:
            loop.cycle()  # the tip did not move: nothing is parsed or built again
        assert (counts.builds, counts.parses, counts.resolves) == (0, 0, 0)

        hand.write({"status/alice.yaml": status_yaml("alice", "2099-01-01T00:02:00Z")})
        counts.reset()
        for _, loop in team:
            loop.cycle()
        assert (counts.builds, counts.parses, counts.resolves) == (1, 1, 1)  # only what changed
    finally:
        for ws, _ in team:
            ws.store.close()


def test_the_loop_claims_what_the_scheduler_picks_from_the_shared_ranking(
    bare_remote: Path, tmp_path: Path
) -> None:
    hand = HandBranch(bare_remote, tmp_path)
    hand.write({"boards/PHASE-0.md": BOARD, "status/alice.yaml": status_yaml("alice")})
    ws = Workspace(start=make_clone(bare_remote, tmp_path / "c"), session="s1", remote=str(bare_remote))
    events: list[Event] = []
    try:
        PollLoop(ws, events.append).cycle()
    finally:
        ws.store.close()
    claimed = [e.task for e in events if e.name == "claimed"]
    assert claimed == ["T-3"]  # HIGH first; T-2 waits on T-1; T-5 is carol's


def board_snapshot() -> Snapshot:
    return Snapshot(boards=[parse_board("boards/PHASE-0.md", BOARD)])


@pytest.mark.parametrize("stale", [frozenset(), frozenset({"bob"})])
@pytest.mark.parametrize("session", ["alice", "bob", "carol", "dave"])
def test_the_shared_answers_are_the_schedulers_and_the_lifecycles(
    stale: frozenset[str], session: str
) -> None:
    snap = board_snapshot()
    shared = derived(snap)
    tasks = snap.tasks()
    deps = resolve_dependencies(tasks)
    key = lambda p: phase_sort_key(snap.config, p)  # noqa: E731
    assert shared.held(session) == lifecycle.held_by(tasks.values(), session)
    mine = [t for t in shared.ranked(stale) if t in ready_tasks(tasks, stale, key, session, deps)]
    assert mine == ready_tasks(tasks, stale, key, session, deps)
    fast = next_for(session, tasks, stale, key, deps=shared.deps, ranked=shared.ranked(stale),
                    held=shared.held(session))  # fmt: skip
    slow = next_for(session, tasks, stale, key)
    assert (fast.task, fast.kind, fast.reason, fast.blocked) == (
        slow.task,
        slow.kind,
        slow.reason,
        slow.blocked,
    )


def test_one_derived_per_snapshot_and_it_goes_with_the_snapshot() -> None:
    snap = board_snapshot()
    assert derived(snap) is derived(snap)
    assert derived(board_snapshot()) is not derived(snap)
    before = len(derived_module._by_snapshot)
    other = board_snapshot()
    derived(other)
    assert len(derived_module._by_snapshot) == before + 1
    del other
    assert len(derived_module._by_snapshot) == before


def test_an_edit_scans_the_text_it_verifies_once_and_leaves_shared_scans_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ifcoord.files import board as board_module

    text = BOARD.rstrip("\n")  # no final newline: the joiner must not change the shared lines
    before = parse_board("boards/PHASE-0.md", text)
    calls: list[str] = []
    markdown = board_module._parse_markdown
    monkeypatch.setattr(board_module, "_parse_markdown", lambda t: calls.append(t) or markdown(t))
    edit = BoardEdit(task_id="T-5", fields={"owner": "carol"}, state="claimed")
    edited = apply_edits("boards/PHASE-0.md", text, [edit])
    assert len(calls) == 1  # the original was scanned when read; only the new text is scanned
    parse_board("boards/PHASE-0.md", edited)  # what the dashboard and every reader parse next
    assert len(calls) == 1
    added = render_new_task(text, task_id="T-6", title="Sixth", fields={})
    assert "## T-6: Sixth" in added
    # adding a task joined the shared scan's lines into a new text: they are as they were
    assert apply_edits("boards/PHASE-0.md", text, [edit]) == edited and not edited.endswith("\n")
    assert parse_board("boards/PHASE-0.md", text) == before


def test_sessions_that_saw_the_same_tip_claim_different_tasks_at_one_turn_each(
    bare_remote: Path, tmp_path: Path
) -> None:
    """Every session that looked at the same tip picks the same task. The pick is decided again
    on the state the claim is written on, so each takes the next free one at its first turn
    (before: all but the first were refused that task, and took another turn for the next)."""
    hand = HandBranch(bare_remote, tmp_path)
    board = "# Phase 0\n\n" + "".join(f"## T-{i}: Task {i}\n**Status:** open\n\n" for i in range(1, 7))
    hand.write({"boards/PHASE-0.md": board})
    names = ["s1", "s2", "s3", "s4"]
    events: list[Event] = []
    team = []
    for name in names:
        ws = Workspace(start=make_clone(bare_remote, tmp_path / name), session=name, remote=str(bare_remote))
        team.append((ws, PollLoop(ws, events.append)))
    applies: dict[str, int] = {}
    try:
        seen = [ws.read().snapshot for ws, _ in team]  # everyone looks before anyone claims
        for (ws, loop), snap in zip(team, seen, strict=True):
            apply = ws.apply

            def counted(*args, _apply=apply, _name=ws.session, **kwargs):  # type: ignore[no-untyped-def]
                applies[_name] = applies.get(_name, 0) + 1
                return _apply(*args, **kwargs)

            ws.apply = counted  # type: ignore[method-assign]
            loop.claim_next(snap, frozenset(), exclude=set(), blocked=[])
    finally:
        for ws, _ in team:
            ws.store.close()
    claimed = [(e.task, e.data.get("kind")) for e in events if e.name == "claimed"]
    assert claimed == [("T-1", "primary"), ("T-2", "primary"), ("T-3", "primary"), ("T-4", "primary")]
    assert applies == {name: 1 for name in names}


def test_now_decides_its_claim_again_on_the_state_it_writes_on(bare_remote: Path, tmp_path: Path) -> None:
    """`ifcoord now` of two agents that read the same tip: the second claims the next free task
    at its first turn, though the first agent's claim landed between its read and its turn."""
    from ifcoord.session.now import ask

    hand = HandBranch(bare_remote, tmp_path)
    board = "# Phase 0\n\n" + "".join(f"## T-{i}: Task {i}\n**Status:** open\n\n" for i in range(1, 4))
    hand.write({"boards/PHASE-0.md": board})
    first, second = (
        Workspace(start=make_clone(bare_remote, tmp_path / n), session=n, remote=str(bare_remote))
        for n in ("s1", "s2")
    )
    applies = []
    apply = second.apply

    def racing(*args, **kwargs):  # type: ignore[no-untyped-def]
        applies.append(args)
        if len(applies) == 1:  # s1's claim lands after s2 read the tip, before s2's turn
            answer, _, _ = ask(first)
            assert answer.claimed and answer.task is not None and answer.task.id == "T-1"
        return apply(*args, **kwargs)

    second.apply = racing  # type: ignore[method-assign]
    try:
        answer, _, _ = ask(second)
    finally:
        first.store.close()
        second.store.close()
    assert answer.claimed and answer.task is not None and answer.task.id == "T-2"
    assert len(applies) == 1
