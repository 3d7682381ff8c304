"""`ifcoord brief`: a session's instruction sheet, generated from the board."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifcoord.core.snapshot import build_snapshot
from ifcoord.views.brief import render_brief, tasks_for

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "boards"


def session_4_board() -> bytes:
    path = FIXTURES / "session-4-instructions.md"
    if not path.is_file():
        pytest.skip(f"fixture board {path} is missing")
    return path.read_bytes()


def section(text: str, heading: str) -> str:
    """The text from `heading` to the next heading of the same level."""
    start = text.index(heading)
    level = heading.split(" ")[0] + " "
    nxt = text.find("\n" + level, start + len(heading))
    return text[start : nxt if nxt != -1 else len(text)]


def test_brief_of_session_4_lists_its_primary_tasks_with_unmet_dependencies() -> None:
    snap = build_snapshot({"boards/session-4-instructions.md": session_4_board()})
    text = render_brief(snap, "session-4-sip")
    primary = section(text, "## Your primary tasks")
    assert [line[4:10] for line in primary.splitlines() if line.startswith("### ")] == [
        "P0.1.5",
        "P0.2.6",
        "P0.3.6",
    ]
    p015 = section(text, "### P0.1.5: IF.coordinator Integration Tests")
    assert (
        "- **Depends on:** P0.1.1 (not on any board, unmet), P0.1.2 (not on any board, unmet), "
        "P0.1.3 (not on any board, unmet), P0.1.4 (not on any board, unmet): **4 unmet**"
    ) in p015
    assert "- **Deliverable:** `/home/user/infrafabric/tests/integration/test_coordinator.py`" in p015
    assert "- **Estimate:** 2h" in p015
    assert "- [ ] 25% - Test scaffolding and setup complete" in p015
    assert "- [ ] 100% - All tests passing, witness integration verified" in p015
    # acceptance criteria are the task's labelled lists, as written (mojibake included)
    assert "**Acceptance Criteria:**" in p015
    assert "Test: race condition prevention (2 swarms, 1 task)" in p015


def test_brief_of_session_4_lists_the_five_filler_tasks() -> None:
    snap = build_snapshot({"boards/session-4-instructions.md": session_4_board()})
    text = render_brief(snap, "session-4-sip")
    filler = section(text, "## Filler tasks")
    assert [line[4:8] for line in filler.splitlines() if line.startswith("### ")] == [
        "F4.1", "F4.2", "F4.3", "F4.4", "F4.5",
    ]  # fmt: skip
    assert "**ready**: claim it" in section(text, "### F4.1")
    assert "| Ready now | none |" in text
    assert "| Filler tasks | F4.1, F4.2, F4.3, F4.4, F4.5 |" in text


def test_brief_spells_out_the_loop_with_the_session_name() -> None:
    snap = build_snapshot({"boards/session-4-instructions.md": session_4_board()})
    text = render_brief(snap, "session-4-sip", remote="git://host/repo.git", branch="coord")
    how = section(text, "## How to work with ifcoord")
    assert "`ifcoord poll --session session-4-sip --remote git://host/repo.git --branch coord --json`" in how
    assert '`ifcoord progress <TASK> <percent> --session session-4-sip --note "what works"`' in how
    assert '`ifcoord block <TASK> --on <IDS> --reason "why" --session session-4-sip`' in how
    assert "`ifcoord complete <TASK> --deliverable <path> --tests-passed N --session session-4-sip`" in how
    assert "`switch-to-primary`" in how and "`lease-lost`" in how


BOARD = """# Phase 0

## T1: Shared task

## T2: Mine
**Session:** session-a

## T3: Someone else's
**Session:** session-b

## T4: Needs T2
**Session:** session-a, session-c
**Depends on:** T2

## Filler tasks

### F1: Anyone's filler

### F2: B's filler
**Session:** session-b
"""


def test_tasks_reserved_by_name_are_the_sessions_own() -> None:
    snap = build_snapshot({"boards/PHASE-0.md": BOARD.encode()})
    mine = tasks_for(snap, "session-a")
    assert mine.reserved
    assert [r.task.id for r in mine.primary] == ["T2", "T4"]
    assert [r.task.id for r in mine.filler] == ["F1"]
    text = render_brief(snap, "session-a")
    assert "- **Depends on:** T2 (open, unmet): **1 unmet**" in text
    assert "No task is reserved for you by name" not in text


def test_without_reservations_every_primary_task_it_may_take_is_its() -> None:
    snap = build_snapshot({"boards/PHASE-0.md": BOARD.encode()})
    mine = tasks_for(snap, "session-z")
    assert not mine.reserved
    assert [r.task.id for r in mine.primary] == ["T1"]
    assert [r.task.id for r in mine.filler] == ["F1"]
    assert "No task is reserved for you by name" in render_brief(snap, "session-z")


def test_brief_shows_what_the_session_holds_and_what_is_done() -> None:
    board = BOARD.replace("## T2: Mine\n", "## T2: Mine\n**Status:** done\n**Owner:** session-a\n").replace(
        "## T4: Needs T2\n", "## T4: Needs T2\n**Status:** in progress\n**Owner:** session-a\n**Epoch:** 3\n"
    )
    snap = build_snapshot({"boards/PHASE-0.md": board.encode()})
    text = render_brief(snap, "session-a")
    assert "| Held by you | T4 |" in text
    assert "- **State:** done (by session-a)" in section(text, "### T2: Mine")
    t4 = section(text, "### T4: Needs T2")
    assert "- **State:** in progress, held by you (epoch 3)" in t4
    assert "T2 (done): **all met**" in t4
