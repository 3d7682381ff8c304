"""The real boards in shared/fixtures/boards read (and edit) as their README says."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from ifcoord.files.board import BoardEdit, apply_edits, parse_board
from ifcoord.models import Board

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "boards"

pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"shared fixture boards not found at {FIXTURES}"
)


def read_fixture(name: str) -> str:
    # bytes decoded by hand: no newline translation, the boards are tested as found
    return (FIXTURES / name).read_bytes().decode("utf-8")


@pytest.fixture(scope="module")
def session4_text() -> str:
    return read_fixture("session-4-instructions.md")


@pytest.fixture(scope="module")
def session4(session4_text: str) -> Board:
    return parse_board("session-4-instructions.md", session4_text)


@pytest.fixture(scope="module")
def p2_text() -> str:
    return read_fixture("p2-atomic-task-list.md")


@pytest.fixture(scope="module")
def p2(p2_text: str) -> Board:
    return parse_board("p2-atomic-task-list.md", p2_text)


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed, added) lines between two texts, line endings included."""
    removed: list[str] = []
    added: list[str] = []
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed += old[i1:i2]
            added += new[j1:j2]
    return removed, added


# --- session-4-instructions.md ----------------------------------------------------------------


def test_session4_has_exactly_the_eight_tasks_and_nothing_from_code_blocks(session4: Board) -> None:
    assert [t.id for t in session4.tasks] == [
        "P0.1.5",
        "P0.2.6",
        "P0.3.6",
        "F4.1",
        "F4.2",
        "F4.3",
        "F4.4",
        "F4.5",
    ]
    assert not [d for d in session4.diagnostics if d.severity != "note"]


@pytest.mark.parametrize(
    ("task_id", "deps", "title"),
    [
        ("P0.1.5", ["P0.1.1", "P0.1.2", "P0.1.3", "P0.1.4"], "IF.coordinator Integration Tests"),
        ("P0.2.6", [f"P0.2.{i}" for i in range(1, 6)], "IF.governor Integration Tests"),
        ("P0.3.6", [f"P0.3.{i}" for i in range(1, 6)], "IF.chassis Security Audit Tests"),
    ],
)
def test_session4_primary_tasks(session4: Board, task_id: str, deps: list[str], title: str) -> None:
    task = next(t for t in session4.tasks if t.id == task_id)
    assert task.title == title
    assert task.kind == "primary"
    assert task.state == "open"  # from the mangled ⏳ in the heading, there is no status line
    assert task.depends_tokens == deps
    assert task.depends_raw is not None and task.depends_raw.endswith("completed")
    assert [m.percent for m in task.milestones] == [25, 50, 75, 100]
    assert not any(m.done for m in task.milestones)
    assert task.deliverable is not None and task.deliverable.startswith("`/home/user/infrafabric/")
    assert task.estimate == "2h"
    assert task.model == "Sonnet"
    assert task.level == 4
    assert task.phase == "Instructions: Session 4 (SIP - Integration Testing & Security)"
    assert len(task.lists["Acceptance Criteria"]) == 6


def test_session4_filler_tasks(session4: Board) -> None:
    fillers = [t for t in session4.tasks if t.kind == "filler"]
    assert [t.id for t in fillers] == ["F4.1", "F4.2", "F4.3", "F4.4", "F4.5"]
    for task in fillers:
        assert len(task.milestones) == 4
        assert task.milestones[0].text.startswith("25% - ")
        assert task.deliverable
        assert task.depends_tokens == []
        assert task.state == "open"
    assert fillers[0].estimate == "2h"


def test_session4_preamble_fields_are_file_fields(session4: Board) -> None:
    assert [f.label for f in session4.file_fields] == [
        "Your Branch",
        "Coordination Branch",
        "Your Role",
    ]


def test_session4_sections_end_at_the_next_heading_of_same_or_higher_level(
    session4: Board,
) -> None:
    by_id = {t.id: t for t in session4.tasks}
    assert by_id["P0.1.5"].end_line == by_id["P0.2.6"].line - 1
    lines = read_fixture("session-4-instructions.md").splitlines()
    assert lines[by_id["P0.3.6"].end_line].startswith("## Filler Tasks When Blocked")
    assert lines[by_id["F4.5"].end_line].startswith("## Progress Reporting")


def test_session4_claim_and_tick_changes_only_intended_lines(session4_text: str) -> None:
    edit = BoardEdit(
        task_id="P0.1.5",
        state="in_progress",
        fields={"owner": "session-4-sip", "epoch": "1", "claimed_at": "2025-11-12T14:00:00Z"},
        tick_milestones_upto=50,
    )
    after = apply_edits("session-4-instructions.md", session4_text, [edit])

    removed, added = changed_lines(session4_text, after)
    assert removed == [
        "- [ ] 25% - Test scaffolding and setup complete\n",
        "- [ ] 50% - Full task lifecycle and blocker detection tests passing\n",
    ]
    assert sorted(added) == sorted(
        [
            "**Status:** in progress\n",
            "**Owner:** session-4-sip\n",
            "**Epoch:** 1\n",
            "**Claimed at:** 2025-11-12T14:00:00Z\n",
            "- [x] 25% - Test scaffolding and setup complete\n",
            "- [x] 50% - Full task lifecycle and blocker detection tests passing\n",
        ]
    )
    # the new field lines sit right under the task's last top-block field line
    lines = after.splitlines()
    model_at = lines.index("**Model:** Sonnet")
    assert lines[model_at + 1 : model_at + 5] == [
        "**Status:** in progress",
        "**Owner:** session-4-sip",
        "**Epoch:** 1",
        "**Claimed at:** 2025-11-12T14:00:00Z",
    ]
    assert "#### **P0.1.5: IF.coordinator Integration Tests** \u00e2\u00b3" in after  # mojibake kept
    assert after.count("\u00f0\u0178\u201d\u00a7") == session4_text.count("\u00f0\u0178\u201d\u00a7")

    task = parse_board("session-4-instructions.md", after).tasks[0]
    assert (task.state, task.owner, task.epoch, task.progress) == (
        "in_progress",
        "session-4-sip",
        1,
        50,
    )
    assert task.claimed_at is not None and task.claimed_at.isoformat() == "2025-11-12T14:00:00+00:00"
    assert [m.done for m in task.milestones] == [True, True, False, False]


# --- p2-atomic-task-list.md -------------------------------------------------------------------

P2_IDS = [
    "P2A.1",
    "P2A.2",
    "P2B.1",
    "P2B.2",
    "P2C.1",
    "P2C.2",
    "P2D.1",
    "P2D.2",
    "P2E.1",
    "P2E.2",
    "P2E.3",
    "P2E.4",
    "P2F.1",
    "P2F.2",
    "P2F.3",
    "P2G.1",
    "P2G.2",
]


def test_p2_has_seventeen_open_tasks_with_priority_and_effort(p2: Board) -> None:
    assert [t.id for t in p2.tasks] == P2_IDS
    for task in p2.tasks:
        assert task.state == "open"
        assert task.status_word == "NOT STARTED"
        assert task.priority in {"CRITICAL", "HIGH", "MEDIUM", "LOW"}
        assert task.estimate and "hours" in task.estimate
        assert task.kind == "primary"
        assert task.level == 4
    assert p2.upper_status_words is True
    assert p2.phase == "P2"
    assert not [d for d in p2.diagnostics if d.severity != "note"]


def test_p2_risk_priority_and_effort_as_written(p2: Board) -> None:
    by_id = {t.id: t for t in p2.tasks}
    # P2A.1 is the only task of this board that writes a Risk line
    assert by_id["P2A.1"].risk == "HIGH (blocks integration testing)"
    assert by_id["P2A.1"].priority == "CRITICAL"
    assert by_id["P2A.1"].estimate == "3-4 hours"
    assert by_id["P2G.2"].priority == "LOW"


def test_p2_dependencies_as_tokens_including_groups(p2: Board) -> None:
    deps = {t.id: t.depends_tokens for t in p2.tasks}
    assert deps["P2A.1"] == []
    assert deps["P2A.2"] == ["P2A.1"]
    assert deps["P2B.1"] == []  # None (parallel with P2A)
    assert deps["P2C.1"] == ["P2A"]  # a group: every P2A.x
    assert deps["P2D.1"] == []  # None (can run parallel)
    assert deps["P2E.1"] == []
    assert deps["P2E.3"] == ["P2E.2", "P2B.1"]
    assert deps["P2F.3"] == ["P2F.1", "P2F.2"]
    assert deps["P2G.1"] == ["P2A", "P2B", "P2E"]
    without_deps = [t for t, tokens in deps.items() if not tokens]
    assert without_deps == ["P2A.1", "P2B.1", "P2D.1", "P2E.1"]  # the README's initial ready set


def test_p2_phase_headings_are_not_tasks(p2: Board) -> None:
    assert not any(t.id.startswith("PHASE") for t in p2.tasks)
    assert all(t.id.startswith("P2") for t in p2.tasks)


def test_p2_tasks_list_with_blank_lines_and_nested_checkboxes_is_read(p2: Board) -> None:
    task = p2.tasks[0]
    items = task.lists["Tasks"]
    assert items[0] == "**Verify API Health & Database Connection**"
    assert "[ ] API responds with healthy status" in items
    assert items[-1] == "[ ] Verify API list endpoint returns all sessions"


def test_p2_claim_changes_only_intended_lines(p2_text: str) -> None:
    edit = BoardEdit(
        task_id="P2A.1",
        state="in_progress",
        fields={"owner": "session-4-sip", "epoch": "3", "claimed_at": "2025-11-12T14:00:00Z"},
    )
    after = apply_edits("p2-atomic-task-list.md", p2_text, [edit])

    removed, added = changed_lines(p2_text, after)
    assert removed == ["**Status:** NOT STARTED\n"]
    assert added == [
        "**Status:** IN PROGRESS\n",  # in the board's capitals
        "**Owner:** session-4-sip\n",
        "**Epoch:** 3\n",
        "**Claimed at:** 2025-11-12T14:00:00Z\n",
    ]
    assert "## \u00f0\u0178\u201d\u00a7 DEPENDENCIES & BLOCKERS" in after

    before_board = parse_board("p2-atomic-task-list.md", p2_text)
    after_board = parse_board("p2-atomic-task-list.md", after)
    claimed = after_board.tasks[0]
    assert (claimed.state, claimed.owner, claimed.epoch) == ("in_progress", "session-4-sip", 3)
    for old, new in zip(before_board.tasks[1:], after_board.tasks[1:], strict=True):
        assert old.model_dump(exclude={"line", "end_line", "fields", "milestones"}) == new.model_dump(
            exclude={"line", "end_line", "fields", "milestones"}
        )


def test_fixtures_round_trip_without_edits(session4_text: str, p2_text: str) -> None:
    assert apply_edits("x.md", session4_text, []) == session4_text
    assert apply_edits("x.md", p2_text, []) == p2_text
    no_op = BoardEdit(task_id="P2B.1")
    assert apply_edits("x.md", p2_text, [no_op]) == p2_text
