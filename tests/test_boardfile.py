"""boardfile: markdown boards to models and careful in-place edits (spec sections 2-5, 7)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ifcoord.files.board import (
    BoardEdit,
    BoardEditError,
    apply_edits,
    canonical_key,
    is_group_prefix,
    looks_like_task_id,
    normalize_state,
    parse_board,
    parse_dependency_tokens,
    phase_from,
    read_title,
    render_new_task,
)
from ifcoord.models import Board, Task

PATH = "boards/PHASE-1.md"


def board(text: str) -> Board:
    return parse_board(PATH, text)


def only_task(text: str) -> Task:
    tasks = board(text).tasks
    assert len(tasks) == 1, [t.id for t in tasks]
    return tasks[0]


def glyph_mojibake(glyph: str) -> str:
    return glyph.encode("utf-8").decode("cp1252", errors="ignore")


# --- IDs, states, dependencies, phases --------------------------------------------------------


@pytest.mark.parametrize("token", ["P0.1.5", "F4.1", "P2A.1", "T-12", "TASK-7", "P2A", "x86"])
def test_task_ids(token: str) -> None:
    assert looks_like_task_id(token)


@pytest.mark.parametrize("token", ["PHASE", "2h", "completed", "T_1", "", "P 1", "1.2"])
def test_not_task_ids(token: str) -> None:
    assert not looks_like_task_id(token)


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("NOT STARTED", "open"),
        ("todo", "open"),
        ("Ready to start", "open"),
        ("READY TO START", "open"),
        ("Queued", "open"),
        ("pending", "open"),
        ("CLAIMED", "claimed"),
        ("In Progress", "in_progress"),
        ("IN-PROGRESS", "in_progress"),
        ("in_progress", "in_progress"),
        ("WIP", "in_progress"),
        ("active", "in_progress"),
        ("BLOCKED", "blocked"),
        ("blocked by P2A.1", "blocked"),
        ("In Review", "review"),
        ("review", "review"),
        ("DONE", "done"),
        ("Done (merged)", "done"),
        ("**COMPLETED**", "done"),
        ("complete", "done"),
        ("✅ Done", "done"),
        ("🚧 WIP", "in_progress"),
        ("✅", "done"),
        (glyph_mojibake("✅"), "done"),
        ("Cancelled", "cancelled"),
        ("canceled", "cancelled"),
        ("DROPPED", "cancelled"),
    ],
)
def test_normalize_state(word: str, state: str) -> None:
    assert normalize_state(word) == state


@pytest.mark.parametrize("word", ["someday", "paused", "", "donezo"])
def test_normalize_state_unknown(word: str) -> None:
    assert normalize_state(word) is None


@pytest.mark.parametrize(
    ("value", "tokens"),
    [
        ("P0.1.1, P0.1.2, P0.1.3, P0.1.4 completed", ["P0.1.1", "P0.1.2", "P0.1.3", "P0.1.4"]),
        ("None (parallel with P2A)", []),
        ("None (can run parallel)", []),
        ("N/A", []),
        ("-", []),
        ("— waiting for nothing", []),
        ("P2A (tests must pass)", ["P2A"]),
        ("P2A (bugs fixed), P2B (auth), P2E (frontend working)", ["P2A", "P2B", "P2E"]),
        ("P2E.2, P2B.1 (auth)", ["P2E.2", "P2B.1"]),
        ("`T-1` and **T-2**.", ["T-1", "T-2"]),
        ("T-1, T-1", ["T-1"]),
        ("after the design review", []),
        ("", []),
    ],
)
def test_parse_dependency_tokens(value: str, tokens: list[str]) -> None:
    assert parse_dependency_tokens(value) == tokens


def test_group_prefix() -> None:
    ids = ["P2A.1", "P2A.2", "P2B.1"]
    assert is_group_prefix("P2A", ids)
    assert not is_group_prefix("P2A.1", ids)
    assert not is_group_prefix("P2C", ids)


@pytest.mark.parametrize(
    ("path", "text", "phase"),
    [
        ("boards/PHASE-0.md", "# Something else\n", "0"),
        ("PHASE-1-TASK-BOARD.md", "", "1"),
        ("boards/PHASE-2A.md", "", "2A"),
        ("boards/backend.md", "intro\n\n# **🚀 Backend Sprint** ✅\n", "Backend Sprint"),
        ("boards/backend.md", "```\n# not a heading\n```\n", "backend"),
        ("boards/backend.md", "## only level two\n", "backend"),
    ],
)
def test_phase_from(path: str, text: str, phase: str) -> None:
    assert phase_from(path, text) == phase


def test_phase_order_gives_the_configured_spelling() -> None:
    assert parse_board("boards/p2.md", "", phase_order=["P1", "P2"]).phase == "P2"
    assert parse_board("boards/p2.md", "").phase == "p2"


def test_canonical_key_aliases() -> None:
    assert canonical_key("Assigned to") == "owner"
    assert canonical_key("CLAIMED BY") == "owner"
    assert canonical_key("Blocked Until") == "depends_on"
    assert canonical_key("depends_on") == "depends_on"
    assert canonical_key("Effort") == "estimate"
    assert canonical_key("Reserved for") == "session"
    assert canonical_key("Claimed at") == "claimed_at"
    assert canonical_key("Per-User  Limits") == "per-user limits"


# --- what is a task ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "task_id", "title"),
    [
        (
            "#### **P0.1.5: IF.coordinator Integration Tests** ⏳",
            "P0.1.5",
            "IF.coordinator Integration Tests",
        ),
        ("### **F4.1: Integration Test Scaffolding** 🔧", "F4.1", "Integration Test Scaffolding"),
        (
            "#### P2A.1: Debug & Fix Session Retrieval Bug",
            "P2A.1",
            "Debug & Fix Session Retrieval Bug",
        ),
        ("## T-12 - Dash separated", "T-12", "Dash separated"),
        ("## T-13 — Em dash", "T-13", "Em dash"),
        ("## T-14 – En dash", "T-14", "En dash"),
        ("## `T-15`: Code id", "T-15", "Code id"),
        ("## ~~T-16: Struck~~", "T-16", "Struck"),
        ("## ✅ T-17: Leading glyph", "T-17", "Leading glyph"),
        ("## __T-18__: Underscored", "T-18", "Underscored"),
        ("###### TASK-7: Deep (level 6)?", "TASK-7", "Deep (level 6)?"),
        ("## *T-19: Italic* ✔️", "T-19", "Italic"),
    ],
)
def test_task_headings(heading: str, task_id: str, title: str) -> None:
    task = only_task(heading + "\n")
    assert (task.id, task.title) == (task_id, title)


@pytest.mark.parametrize(
    "heading",
    [
        "# T-1: Level one is the board title",
        "### PHASE 2A: CRITICAL BUG FIXES (Days 1-2)",
        "## Polling Protocol",
        "## Step: no digit",
        "## T-1:",
        "####### T-1: seven hashes is not a heading",
        "    ## T-1: indented code",
        "> ## T-1: quoted",
    ],
)
def test_not_task_headings(heading: str) -> None:
    assert board(heading + "\n").tasks == []


def test_mojibake_glyphs_in_headings() -> None:
    text = (
        f"## A-1: Waiting {glyph_mojibake('⏳')}\n"
        f"## A-2: Doing {glyph_mojibake('🚧')}\n"
        f"## A-3: Stuck {glyph_mojibake('⛔')}\n"
        f"## A-4: Finished {glyph_mojibake('✅')}\n"
        f"## A-5: Spare time {glyph_mojibake('🔧')}\n"
        "## A-6: Latin-1 too " + "✅".encode().decode("latin-1") + "\n"
    )
    tasks = board(text).tasks
    assert [t.title for t in tasks] == [
        "Waiting",
        "Doing",
        "Stuck",
        "Finished",
        "Spare time",
        "Latin-1 too",
    ]
    assert [t.state for t in tasks] == ["open", "in_progress", "blocked", "done", "open", "done"]
    assert [t.kind for t in tasks] == ["primary"] * 4 + ["filler", "primary"]


def test_heading_glyph_states() -> None:
    text = "## A-1: a ⏳\n## A-2: b 🚧\n## A-3: c ⛔\n## A-4: d 🚫\n## A-5: e ✅\n## A-6: f\n"
    states = [t.state for t in board(text).tasks]
    assert states == ["open", "in_progress", "blocked", "blocked", "done", "open"]


def test_status_line_wins_over_heading_glyph() -> None:
    task = only_task("## A-1: a ✅\n**Status:** In Progress\n")
    assert (task.state, task.status_word) == ("in_progress", "In Progress")


def test_code_fences_hide_headings_and_fields() -> None:
    text = (
        "## T-1: Real\n"
        "```bash\n"
        "## T-2: Not a task\n"
        "**Owner:** not-a-field\n"
        "```\n"
        "**Owner:** alice\n"
        "~~~\n"
        "# T-3: also not\n"
        "~~~\n"
    )
    task = only_task(text)
    assert task.owner == "alice"
    assert [f.line for f in task.fields] == [6]
    assert task.end_line == 9


def test_unclosed_fence_runs_to_the_end() -> None:
    text = "## T-1: Real\n```\n## T-2: inside\n**Status:** done\n"
    task = only_task(text)
    assert task.state == "open"


def test_section_runs_to_next_heading_of_same_or_higher_level() -> None:
    text = (
        "# Board\n"  # 1
        "## T-1: First\n"  # 2
        "### Notes\n"  # 3
        "**Owner:** alice\n"  # 4  (inside a nested heading: still T-1's)
        "#### Deeper\n"  # 5
        "## T-2: Second\n"  # 6
        "text\n"  # 7
        "# Next part\n"  # 8
        "after\n"  # 9
    )
    first, second = board(text).tasks
    assert (first.line, first.end_line, first.owner) == (2, 5, "alice")
    assert (second.line, second.end_line, second.owner) == (6, 7, None)
    assert (first.position, second.position) == (0, 1)
    assert first.phase == "1" and first.file == PATH


def test_nested_task_owns_its_own_fields() -> None:
    text = "## E-1: Epic\n**Owner:** alice\n### E-1.1: Story\n**Owner:** bob\n**Status:** done\n"
    epic, story = board(text).tasks
    assert (epic.owner, epic.state) == ("alice", "open")
    assert (story.owner, story.state) == ("bob", "done")
    assert epic.end_line == 5  # the section still spans the nested task


def test_setext_heading_ends_a_section() -> None:
    text = "## T-1: First\n**Owner:** a\n\nOther part\n----------\n**Owner:** b\n"
    task = only_task(text)
    assert task.end_line == 3
    assert task.owner == "a"


def test_duplicate_ids_in_one_file_are_both_kept() -> None:
    tasks = board("## T-1: a\n## T-1: b\n").tasks
    assert [(t.id, t.title) for t in tasks] == [("T-1", "a"), ("T-1", "b")]


def test_no_tasks_is_a_note_not_an_error() -> None:
    result = board("# Just notes\n\nNothing to do here.\n")
    assert result.tasks == []
    (note,) = result.diagnostics
    assert (note.severity, note.code, note.file) == ("note", "no-tasks", PATH)
    assert note.message == "no task headings found (a task is a heading like `## T-1: Title`)"


# --- fields -----------------------------------------------------------------------------------


def test_field_line_styles() -> None:
    text = (
        "## T-1: Styles\n"
        "**Owner:** alice\n"
        "**Priority**: high\n"
        "- **Estimate:** 2h\n"
        "  * **Risk**: low\n"
        "__Model:__ Sonnet\n"
        "\t+ **Deliverable:**   `src/x.py`  \n"
    )
    task = only_task(text)
    assert task.owner == "alice"
    assert task.priority == "HIGH"
    assert task.estimate == "2h"
    assert task.risk == "low"
    assert task.model == "Sonnet"
    assert task.deliverable == "`src/x.py`"


def test_aliases_are_case_insensitive() -> None:
    text = (
        "## T-1: Aliases\n"
        "**STATE:** wip\n"
        "**Assigned To:** bob\n"
        "**Reserved for:** session-1, session-2 session-3\n"
        "**Blocked by:** T-0 (design)\n"
        "**effort:** 3h\n"
        "**Type:** Filler\n"
        "**Progress:** 40%\n"
    )
    task = only_task(text)
    assert task.state == "in_progress"
    assert task.owner == "bob"
    assert task.sessions == ["session-1", "session-2", "session-3"]
    assert (task.depends_raw, task.depends_tokens) == ("T-0 (design)", ["T-0"])
    assert task.estimate == "3h"
    assert task.kind == "filler"
    assert task.progress == 40
    assert [f.key for f in task.fields] == [
        "status",
        "owner",
        "session",
        "depends_on",
        "estimate",
        "kind",
        "progress",
    ]
    assert task.fields[1].label == "Assigned To"


def test_claim_fields() -> None:
    text = (
        "## T-1: Claimed\n"
        "**Status:** blocked\n"
        "**Owner:** session-4\n"
        "**Claimed at:** 2025-11-12T14:30:00Z\n"
        "**Epoch:** 7\n"
        "**Previous owner:** session-2\n"
        "**Waiting on:** T-2, T-3\n"
        "**Block reason:** needs the API\n"
        "**Note:** halfway\n"
        "**Tests:** 3 passed\n"
        "**Completed at:** —\n"
    )
    task = only_task(text)
    assert task.state == "blocked"
    assert task.claimed_at is not None and task.claimed_at.isoformat() == "2025-11-12T14:30:00+00:00"
    assert task.epoch == 7
    assert task.previous_owner == "session-2"
    assert task.waiting_on == ["T-2", "T-3"]
    assert task.block_reason == "needs the API"
    assert task.note == "halfway"
    assert {f.key for f in task.fields} >= {"tests", "completed_at"}


@pytest.mark.parametrize("value", ["—", "-", "none", "None", "", "  "])
def test_no_owner_words(value: str) -> None:
    assert only_task(f"## T-1: x\n**Owner:** {value}\n").owner is None


def test_only_the_first_field_line_counts() -> None:
    task = only_task("## T-1: x\n**Owner:** alice\n\n### Log\n**Owner:** bob\n")
    assert task.owner == "alice"
    assert [f.value for f in task.fields] == ["alice", "bob"]


def test_unknown_keys_are_extra() -> None:
    task = only_task("## T-1: x\n**Reviewer:** carol\n**Due Date:** Friday\n")
    assert task.extra == {"Reviewer": "carol", "Due Date": "Friday"}
    assert [f.key for f in task.fields] == ["reviewer", "due date"]


def test_bad_typed_values_are_warnings() -> None:
    result = board("## T-1: x\n**Epoch:** seven\n**Claimed at:** yesterday\n**Progress:** lots\n")
    (task,) = result.tasks
    assert (task.epoch, task.claimed_at, task.progress) == (0, None, None)
    assert [(d.code, d.line) for d in result.diagnostics] == [
        ("bad-value", 4),
        ("bad-value", 2),
        ("bad-value", 3),
    ]


def test_unknown_status_is_open_with_a_warning() -> None:
    result = board("## T-1: x\n**Status:** someday maybe\n")
    (task,) = result.tasks
    assert (task.state, task.status_word) == ("open", "someday maybe")
    (warning,) = result.diagnostics
    assert (warning.severity, warning.code, warning.line) == ("warning", "unknown-status", 2)


def test_file_level_fields_apply_to_tasks_that_do_not_set_them() -> None:
    text = (
        "# Sprint\n"
        "**Session:** session-4\n"
        "**Priority:** low\n"
        "**Owner:** the-lead\n"  # a board's owner is not every task's owner
        "**Sprint goal:** ship\n"
        "\n"
        "## T-1: a\n"
        "## T-2: b\n"
        "**Session:** session-9\n"
        "**Priority:** HIGH\n"
    )
    result = board(text)
    first, second = result.tasks
    assert [f.key for f in result.file_fields] == ["session", "priority", "owner", "sprint goal"]
    assert (first.sessions, first.priority, first.owner) == (["session-4"], "LOW", None)
    assert (second.sessions, second.priority) == (["session-9"], "HIGH")
    assert first.fields == []  # inherited values are not the task's own lines
    assert first.extra == {}


def test_upper_status_words() -> None:
    assert board("## T-1: a\n**Status:** NOT STARTED\n## T-2: b\n**Status:** DONE\n").upper_status_words
    assert not board("## T-1: a\n**Status:** open\n").upper_status_words
    assert not board("## T-1: a\n").upper_status_words


# --- kinds and lists --------------------------------------------------------------------------


def test_filler_from_an_ancestor_heading() -> None:
    text = (
        "## Primary\n### T-1: a\n## Filler Tasks When Blocked\n### F-1: b\n#### Notes\n## Later\n### T-2: c\n"
    )
    assert [(t.id, t.kind) for t in board(text).tasks] == [
        ("T-1", "primary"),
        ("F-1", "filler"),
        ("T-2", "primary"),
    ]


def test_kind_field_wins_over_heading() -> None:
    text = "## Fillers\n### F-1: a\n**Kind:** primary\n### F-2: b\n"
    assert [t.kind for t in board(text).tasks] == ["primary", "filler"]


def test_milestones_and_lists() -> None:
    text = (
        "## T-1: Lists\n"
        "**Milestones:**\n"
        "- [ ] 25% - scaffolding\n"
        "- [x] 50% - half\n"
        "* [X] **75%** three quarters\n"
        "- [ ] polish without percent\n"
        "\n"
        "**Acceptance Criteria:**\n"
        "- ✅ works\n"
        "- [ ] documented\n"
        "\n"
        "Some paragraph ends the list:\n"
        "- not an item of any label\n"
        "**Key Tests:**\n"
        "```python\n"
        "- test_inside_fence()\n"
        "```\n"
    )
    task = only_task(text)
    assert [(m.percent, m.done, m.line) for m in task.milestones] == [
        (25, False, 3),
        (50, True, 4),
        (75, True, 5),
        (None, False, 6),
    ]
    assert task.milestones[0].text == "25% - scaffolding"
    assert task.progress == 75
    assert task.lists == {"Acceptance Criteria": ["✅ works", "[ ] documented"]}


def test_progress_field_wins_over_milestones() -> None:
    text = "## T-1: x\n**Progress:** 10\n**Milestones:**\n- [x] 50% - half\n"
    assert only_task(text).progress == 10


def test_list_survives_blank_lines_between_items_and_numbered_items() -> None:
    text = (
        "## T-1: x\n**Tasks:**\n\n1. **First**\n   - [ ] sub a\n\n2. **Second**\n"
        "   ```\n   - code\n   ```\n   - [x] sub b\n\n**Other:**\n- y\n"
    )
    task = only_task(text)
    assert task.lists["Tasks"] == ["**First**", "[ ] sub a", "**Second**", "[x] sub b"]
    assert task.lists["Other"] == ["y"]


# --- parse never raises -----------------------------------------------------------------------

MARKDOWN_BITS = [
    "## T-1: Task",
    "### **T-2: Bold** ⏳",
    "# Title",
    "#### F-1: Filler 🔧",
    "## Filler tasks",
    "**Status:** done",
    "**Status**: NOT STARTED",
    "- **Owner:** alice",
    "**Depends on:** T-1 (x), T-9",
    "**Milestones:**",
    "- [ ] 25% - a",
    "- [x] 50% - b",
    "```",
    "~~~",
    "    indented",
    "---",
    "===",
    "",
    "   ",
    "> quote",
    "<!--",
    "-->",
    "1. item",
    "text",
    "**Epoch:** x",
    "**Progress:** 999%",
    "â³ ðŸ”§",
]


@st.composite
def markdownish(draw: st.DrawFn) -> str:
    bits = draw(st.lists(st.sampled_from(MARKDOWN_BITS) | st.text(max_size=12), max_size=25))
    eols = draw(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(bits), max_size=len(bits)))
    text = "".join(b + e for b, e in zip(bits, eols, strict=True))
    return text[:-1] if draw(st.booleans()) and text else text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text() | markdownish())
def test_parse_never_raises(text: str) -> None:
    result = parse_board("boards/x.md", text)
    assert not [d for d in result.diagnostics if d.code == "unreadable"], result.diagnostics
    for task in result.tasks:
        assert 1 <= task.line <= task.end_line
        assert 2 <= task.level <= 6


# --- editing ----------------------------------------------------------------------------------


def diff(before: str, after: str) -> list[str]:
    """Changed lines, compared without line endings (inserting after a last line adds one)."""
    old, new = Counter(before.splitlines()), Counter(after.splitlines())
    removed = ["- " + line for line in (old - new).elements()]
    return removed + ["+ " + line for line in (new - old).elements()]


def test_edit_replaces_only_the_value_part() -> None:
    text = "## T-1: x\n  - **Owner**: alice   \r\n**Status:** open\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", fields={"owner": "bob"})])
    assert after == "## T-1: x\n  - **Owner**: bob   \r\n**Status:** open\n"


def test_edit_an_alias_line_instead_of_inserting() -> None:
    text = "## T-1: x\n**Assigned to:** alice\n**Effort:** 2h\n"
    edit = BoardEdit(task_id="T-1", fields={"owner": "bob", "estimate": "3h"})
    assert apply_edits(PATH, text, [edit]) == "## T-1: x\n**Assigned to:** bob\n**Effort:** 3h\n"


def test_edit_fills_an_empty_field_line() -> None:
    text = "## T-1: x\n**Owner:**\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", fields={"owner": "bob"})])
    assert after == "## T-1: x\n**Owner:** bob\n"


def test_insert_after_the_last_top_block_field_line() -> None:
    text = "## T-1: x\n\n**Priority:** HIGH\n**Effort:** 1h\n\n**Notes:** later\n## T-2: y\n"
    edit = BoardEdit(task_id="T-1", fields={"owner": "bob", "epoch": "2"})
    after = apply_edits(PATH, text, [edit])
    assert after == (
        "## T-1: x\n\n**Priority:** HIGH\n**Effort:** 1h\n**Owner:** bob\n**Epoch:** 2\n"
        "\n**Notes:** later\n## T-2: y\n"
    )


def test_insert_right_after_the_heading_when_no_fields() -> None:
    text = "## T-1: x\nSome prose.\n## T-2: y\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", state="claimed")])
    assert after == "## T-1: x\n**Status:** claimed\nSome prose.\n## T-2: y\n"


def test_insert_copies_the_list_style_of_the_block() -> None:
    text = "## T-1: x\n- **Priority**: HIGH\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", fields={"owner": "bob"})])
    assert after == "## T-1: x\n- **Priority**: HIGH\n- **Owner**: bob\n"


def test_insert_does_not_turn_a_rule_into_a_heading() -> None:
    text = "## T-1: x\n---\n## T-2: y\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", fields={"owner": "bob"})])
    assert after == "## T-1: x\n**Owner:** bob\n\n---\n## T-2: y\n"
    assert [t.owner for t in board(after).tasks] == ["bob", None]


def test_remove_deletes_every_line_of_that_key_in_that_task_only() -> None:
    text = "## T-1: x\n**Owner:** a\n**Note:** n\n### Log\n- **Owner:** b\n## T-2: y\n**Owner:** c\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", fields={"owner": None})])
    assert after == "## T-1: x\n**Note:** n\n### Log\n## T-2: y\n**Owner:** c\n"


def test_remove_missing_field_is_a_no_op() -> None:
    text = "## T-1: x\n"
    assert apply_edits(PATH, text, [BoardEdit(task_id="T-1", fields={"owner": None})]) == text


def test_crlf_survives_and_inserted_lines_use_crlf() -> None:
    text = "## T-1: x\r\n**Status:** open\r\n\r\nprose  \r\n"
    edit = BoardEdit(task_id="T-1", state="done", fields={"owner": "bob"})
    after = apply_edits(PATH, text, [edit])
    assert after == "## T-1: x\r\n**Status:** done\r\n**Owner:** bob\r\n\r\nprose  \r\n"


def test_missing_final_newline_stays_missing() -> None:
    text = "## T-1: x\n**Status:** open"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", fields={"owner": "bob"})])
    assert after == "## T-1: x\n**Status:** open\n**Owner:** bob"
    after = apply_edits(PATH, "## T-1: x", [BoardEdit(task_id="T-1", fields={"owner": "bob"})])
    assert after == "## T-1: x\n**Owner:** bob"
    removed = apply_edits(PATH, text, [BoardEdit(task_id="T-1", fields={"status": None})])
    assert removed == "## T-1: x"


def test_tick_milestones_up_to_a_percent() -> None:
    text = (
        "## T-1: x\n**Milestones:**\n- [ ] 25% - a\n- [x] 50% - b\n"
        "- [ ] 75% - c\n- [ ] no percent\n  1. [ ] 10% - numbered\n"
    )
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", tick_milestones_upto=50)])
    assert after == (
        "## T-1: x\n**Milestones:**\n- [x] 25% - a\n- [x] 50% - b\n"
        "- [ ] 75% - c\n- [ ] no percent\n  1. [x] 10% - numbered\n"
    )
    assert only_task(after).progress == 50


@pytest.mark.parametrize(
    ("existing", "state", "written"),
    [
        ("NOT STARTED", "in_progress", "IN PROGRESS"),
        ("Not Started", "in_progress", "In Progress"),
        ("Not started", "in_progress", "In progress"),
        ("open", "in_progress", "in progress"),
        ("✅ DONE", "cancelled", "CANCELLED"),
        ("todo", "review", "review"),
    ],
)
def test_status_is_written_in_the_boards_dialect(existing: str, state: str, written: str) -> None:
    text = f"## T-1: x\n**Status:** {existing}\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", state=state)])  # type: ignore[arg-type]
    assert after == f"## T-1: x\n**Status:** {written}\n"


def test_inserted_status_follows_the_boards_capitals() -> None:
    text = "## T-1: x\n**Status:** NOT STARTED\n## T-2: y\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-2", state="done")])
    assert after.endswith("## T-2: y\n**Status:** DONE\n")


def test_headings_are_never_rewritten() -> None:
    text = "## **T-1: x** ✅\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", state="in_progress")])
    assert after == "## **T-1: x** ✅\n**Status:** in progress\n"
    assert only_task(after).state == "in_progress"


def test_unknown_task_raises_board_edit_error() -> None:
    with pytest.raises(BoardEditError, match="T-9") as info:
        apply_edits(PATH, "## T-1: x\n", [BoardEdit(task_id="T-9", state="done")])
    assert isinstance(info.value, ValueError)


def test_multi_line_values_are_refused() -> None:
    with pytest.raises(BoardEditError):
        apply_edits(PATH, "## T-1: x\n", [BoardEdit(task_id="T-1", fields={"note": "a\nb"})])


def test_several_edits_apply_in_order() -> None:
    text = "## T-1: x\n**Status:** open\n## T-2: y\n**Status:** open\n"
    edits = [
        BoardEdit(task_id="T-1", state="done", fields={"completed_at": "2025-01-01T00:00:00Z"}),
        BoardEdit(task_id="T-2", state="claimed", fields={"owner": "bob"}),
    ]
    after = apply_edits(PATH, text, edits)
    assert after == (
        "## T-1: x\n**Status:** done\n**Completed at:** 2025-01-01T00:00:00Z\n"
        "## T-2: y\n**Status:** claimed\n**Owner:** bob\n"
    )


def test_code_blocks_and_other_tasks_are_untouched() -> None:
    text = "## T-1: x\n```\n**Owner:** fake\n```\n## T-2: y\n**Owner:** z\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id="T-1", fields={"owner": "bob"})])
    assert after == "## T-1: x\n**Owner:** bob\n```\n**Owner:** fake\n```\n## T-2: y\n**Owner:** z\n"


# --- render_new_task --------------------------------------------------------------------------


def test_render_new_task_at_the_end_in_the_files_dialect() -> None:
    text = "# Board\n\n#### **P2H.1: First** ⏳\n**Status:** open\n"
    after = render_new_task(
        text,
        task_id="P2H.2",
        title="Second",
        fields={"status": "open", "depends_on": "P2H.1"},
        after_task=None,
    )
    assert after == text + "\n#### **P2H.2: Second**\n**Status:** open\n**Depends on:** P2H.1\n"
    assert [t.id for t in board(after).tasks] == ["P2H.1", "P2H.2"]


def test_render_new_task_after_a_task_keeps_the_rule_between_tasks() -> None:
    text = "#### T-1: a\n**Status:** open\n\n---\n\n#### T-2: b\n"
    after = render_new_task(text, task_id="T-3", title="c", fields={}, after_task="T-1")
    assert after == "#### T-1: a\n**Status:** open\n\n---\n\n#### T-3: c\n\n---\n\n#### T-2: b\n"


def test_render_new_task_on_an_empty_board() -> None:
    after = render_new_task("", task_id="T-1", title="first", fields={"owner": "x"}, after_task=None)
    assert after == "## T-1: first\n**Owner:** x\n"
    after = render_new_task("# B\n", task_id="T-1", title="first", fields={}, after_task=None)
    assert after == "# B\n\n## T-1: first\n"


def test_render_new_task_refuses_duplicates_and_bad_ids() -> None:
    with pytest.raises(BoardEditError):
        render_new_task("## T-1: a\n", task_id="T-1", title="again", fields={}, after_task=None)
    with pytest.raises(BoardEditError):
        render_new_task("", task_id="not an id", title="x", fields={}, after_task=None)
    with pytest.raises(BoardEditError):
        render_new_task("## T-1: a\n", task_id="T-2", title="x", fields={}, after_task="T-9")


# --- properties of edits on generated boards --------------------------------------------------

LABELS = {"status": "Status", "owner": "Owner", "note": "Note", "epoch": "Epoch"}
STATUS_WORDS = ["open", "NOT STARTED", "In Progress", "done", "BLOCKED"]


@dataclass
class GeneratedTask:
    task_id: str
    fields: dict[str, str]


@st.composite
def generated_board(draw: st.DrawFn) -> tuple[str, list[GeneratedTask]]:
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines: list[str] = []
    if draw(st.booleans()):
        lines += ["# Board", "", "**Session:** session-1", ""]
    tasks: list[GeneratedTask] = []
    for number in range(draw(st.integers(1, 4))):
        task_id = f"T-{number + 1}"
        level = draw(st.integers(2, 4))
        bold = draw(st.booleans())
        glyph = draw(st.sampled_from(["", " ⏳", " ✅", " " + glyph_mojibake("⏳")]))
        heading = f"{task_id}: Task {number}"
        lines.append("#" * level + " " + (f"**{heading}**" if bold else heading) + glyph)
        if draw(st.booleans()):
            lines.append("")
        fields: dict[str, str] = {}
        style = draw(st.sampled_from(["**{k}:** {v}", "**{k}**: {v}", "- **{k}:** {v}", "  * **{k}**: {v}"]))
        for key in draw(st.lists(st.sampled_from(list(LABELS)), unique=True)):
            value = {
                "status": draw(st.sampled_from(STATUS_WORDS)),
                "owner": draw(st.sampled_from(["alice", "bob", "—"])),
                "note": "a note  ",
                "epoch": str(draw(st.integers(0, 9))),
            }[key]
            fields[key] = value
            lines.append(style.format(k=LABELS[key], v=value))
        if draw(st.booleans()):
            lines += ["", "**Milestones:**", "- [ ] 25% - a", "- [x] 50% - b", "- [ ] 75% - c"]
        if draw(st.booleans()):
            lines += ["", "```", "## T-99: in a fence", "**Owner:** fence", "```"]
        if draw(st.booleans()):
            lines += ["", "Prose with trailing space ", ""]
        if draw(st.booleans()):
            lines += ["", "---", ""]
        tasks.append(GeneratedTask(task_id, fields))
    text = eol.join(lines)
    return (text if draw(st.booleans()) else text + eol), tasks


@st.composite
def board_and_edit(draw: st.DrawFn) -> tuple[str, BoardEdit]:
    text, tasks = draw(generated_board())
    target = draw(st.sampled_from(tasks))
    fields: dict[str, str | None] = {}
    for key in draw(st.lists(st.sampled_from(["owner", "note", "epoch", "block_reason"]), unique=True)):
        remove = draw(st.booleans())
        fields[key] = (
            None
            if remove
            else {
                "owner": "session-7",
                "note": "picked up",
                "epoch": "12",
                "block_reason": "waiting for T-1",
            }[key]
        )
    state = draw(st.none() | st.sampled_from(["open", "claimed", "in_progress", "done", "cancelled"]))
    tick = draw(st.none() | st.integers(0, 100))
    return text, BoardEdit(task_id=target.task_id, fields=fields, state=state, tick_milestones_upto=tick)


STRUCTURE = {"line", "end_line", "fields", "milestones"}


def expected_task(before: Task, edit: BoardEdit) -> dict[str, object]:
    expected = before.model_dump(exclude=STRUCTURE)
    for key, value in edit.fields.items():
        if key == "epoch":
            expected["epoch"] = int(value) if value is not None else 0
        else:
            expected[key] = value
    if edit.state is not None:
        expected["state"] = edit.state
    return expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(board_and_edit())
def test_an_edit_changes_only_intended_lines_and_reads_back_as_intended(
    case: tuple[str, BoardEdit],
) -> None:
    text, edit = case
    before = board(text)
    after_text = apply_edits(PATH, text, [edit])
    after = board(after_text)

    # only field lines of the edited task and ticked milestones change; the rest is byte-equal
    field_line = re.compile(r"^[ \t]*(?:[-*+][ \t]+)?\*\*[^*]+?(?::\*\*|\*\*:)")
    for line in diff(text, after_text):
        body = line[2:]
        assert field_line.match(body) or re.match(r"^- \[[ x]\] \d+%", body) or not body.strip(), line
    old_lines = text.splitlines()
    target = next(t for t in before.tasks if t.id == edit.task_id)
    for index, line in enumerate(old_lines):
        if not target.line <= index + 1 <= target.end_line:
            assert line in after_text.splitlines()

    assert len(after.tasks) == len(before.tasks)
    for old, new in zip(before.tasks, after.tasks, strict=True):
        if old.id != edit.task_id:
            assert new.model_dump(exclude=STRUCTURE) == old.model_dump(exclude=STRUCTURE)
            continue
        got = new.model_dump(exclude=STRUCTURE | {"status_word", "progress", "extra"})
        want = expected_task(old, edit)
        for key in ("status_word", "progress", "extra"):
            want.pop(key)
        assert got == want
        if edit.tick_milestones_upto is not None:
            assert [m.done for m in new.milestones] == [
                m.done or (m.percent is not None and m.percent <= edit.tick_milestones_upto)
                for m in old.milestones
            ]
        else:
            assert [m.done for m in new.milestones] == [m.done for m in old.milestones]
        if edit.state is not None:
            assert normalize_state(new.status_word or "") == edit.state
    assert after_text.endswith(("\n", "\r")) == text.endswith(("\n", "\r"))
    if "\r\n" in text:
        assert "\n" not in after_text.replace("\r\n", "")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdownish(), st.sampled_from(["owner", "note", "status"]), st.booleans())
def test_edits_on_messy_text_either_apply_cleanly_or_refuse(text: str, key: str, remove: bool) -> None:
    tasks = board(text).tasks
    if not tasks:
        with pytest.raises(BoardEditError):
            apply_edits(PATH, text, [BoardEdit(task_id="T-1", fields={key: "x"})])
        return
    edit = BoardEdit(task_id=tasks[0].id, fields={key: None if remove else "done"})
    try:
        after = apply_edits(PATH, text, [edit])
    except BoardEditError:
        return  # refusing is allowed; writing something wrong is not
    for line in diff(text, after):
        assert re.search(r"\*\*", line) or not line[2:].strip(), line


def test_the_example_in_the_docs_reads_as_the_docs_say() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "board-format.md").read_text("utf-8")
    example = doc.split("```markdown\n", 1)[1].split("\n```\n", 1)[0] + "\n"
    result = parse_board("boards/PHASE-1.md", example)
    assert result.diagnostics == []
    t11, t12, f11 = result.tasks
    assert (t11.state, t11.owner, t11.epoch, t11.progress) == ("in_progress", "session-1", 3, 50)
    assert t12.depends_tokens == ["T1.1"]
    assert f11.kind == "filler"
    assert all(t.sessions == ["session-1", "session-2"] for t in result.tasks)


@pytest.mark.parametrize(
    ("heading", "phase"),
    [
        ("# Phase 2: Security", "2"),
        ("# P2: PRODUCTION FOUNDATION - ATOMIC TASK LIST", "P2"),
        ("# PHASE 1 TASK BOARD", "1"),
        ("# Release planning", "Release planning"),
    ],
)
def test_phase_from_a_first_heading_takes_its_name_not_the_whole_sentence(heading: str, phase: str) -> None:
    assert phase_from("boards/plan.md", heading + "\n\n## T1: Task\n") == phase


def test_a_wrapped_session_value_loses_its_emphasis_but_keeps_a_glob_star() -> None:
    board = parse_board("b.md", "## T1: Task\n**Session:** *alice*\n\n## T2: Other\n**Session:** `s-*`\n")
    assert [t.sessions for t in board.tasks] == [["alice"], ["s-*"]]


def test_a_new_task_uses_the_boards_own_labels() -> None:
    text = "## P1.1: Old\n**Priority:** HIGH\n**Dependency:** None\n**Effort:** 2h\n"
    new = render_new_task(text, task_id="P1.2", title="New", fields={"depends_on": "P1.1", "estimate": "1h"})
    assert "**Dependency:** P1.1" in new and "**Effort:** 1h" in new
    task = parse_board("b.md", new).tasks[1]
    assert (task.depends_tokens, task.estimate) == (["P1.1"], "1h")


# --- titles as people write them, and a person's retitle --------------------------------------

PEOPLE_TITLES = [
    "Use `ticks`",
    "`code` first",
    "Fix **bold** bug",
    "Ship it 🚀",
    "Tidy ✅",
    "Café für Ünïcode",
]


@pytest.mark.parametrize("title", PEOPLE_TITLES)
def test_render_new_task_takes_titles_as_people_write_them(title: str) -> None:
    text = "# B\n\n## T-1: a\n\n**Status:** open\n"
    after = render_new_task(text, task_id="T-2", title=title, fields={"priority": "HIGH"})
    assert f"## T-2: {title}\n" in after  # the heading keeps what the person wrote
    added = board(after).tasks[-1]
    assert (added.id, added.title, added.state) == ("T-2", read_title("T-2", title), "open")


def test_a_status_glyph_in_a_new_title_does_not_make_the_task_done() -> None:
    after = render_new_task("## T-1: a\n", task_id="T-2", title="Tidy ✅", fields={})
    assert after == "## T-1: a\n\n## T-2: Tidy ✅\n**Status:** open\n"
    assert board(after).tasks[-1].state == "open"


def test_render_new_task_keeps_the_blank_line_under_headings() -> None:
    spaced = render_new_task(
        "## T-1: a\n\n**Status:** open\n", task_id="T-2", title="b", fields={"status": "open"}
    )
    assert spaced.endswith("## T-2: b\n\n**Status:** open\n")
    tight = render_new_task(
        "## T-1: a\n**Status:** open\n", task_id="T-2", title="b", fields={"status": "open"}
    )
    assert tight.endswith("## T-2: b\n**Status:** open\n")


@pytest.mark.parametrize(
    ("heading", "title", "expected"),
    [
        ("#### **P0.1.5: Old title** ⏳", "Use `ticks`", "#### **P0.1.5: Use `ticks`** ⏳"),
        ("## T-1 - Plain `old` ##", "Fix **bold** bug", "## T-1 - Fix **bold** bug ##"),
        ("### ✅ T-1: Done thing", "Renamed", "### ✅ T-1: Renamed"),
        ("## `T-1`: code id ✅", "Ship it 🚀", "## `T-1`: Ship it 🚀 ✅"),
    ],
)
def test_retitle_rewrites_only_the_title_part_of_the_heading(heading: str, title: str, expected: str) -> None:
    task_id = "P0.1.5" if "P0" in heading else "T-1"
    text = f"# B\n\n{heading}\n\n**Status:** open\n\nprose stays\n"
    after = apply_edits(PATH, text, [BoardEdit(task_id=task_id, title=title)])
    assert after == text.replace(heading, expected)
    assert board(after).tasks[0].title == read_title(task_id, title)


def test_retitle_refuses_a_setext_heading() -> None:
    with pytest.raises(BoardEditError, match="setext"):
        apply_edits(PATH, "T-1: a\n----\n", [BoardEdit(task_id="T-1", title="b")])


people_text = st.text(
    st.characters(
        whitelist_categories=("Lu", "Ll", "Nd", "Zs", "Po", "So", "Pd", "Ps", "Pe"),
        whitelist_characters="`*_~",
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.one_of(people_text, st.text(max_size=30)))
def test_any_title_is_written_so_it_reads_back_or_refused(title: str) -> None:
    text = "# B\n\n#### **T-1: First** ⏳\n\n**Status:** open\n"
    try:
        expected = read_title("T-2", title)
        added_text = render_new_task(text, task_id="T-2", title=title, fields={"status": "open"})
    except BoardEditError:
        return  # refused with a reason: nothing written
    added = next(t for t in board(added_text).tasks if t.id == "T-2")
    assert (added.title, added.state) == (expected, "open")
    # ... and a person's retitle of the first task to the same words reads back the same way
    retitled = apply_edits(PATH, text, [BoardEdit(task_id="T-1", title=title)])
    first = board(retitled).tasks[0]
    assert (first.id, first.title, first.state) == ("T-1", expected, "open")
    assert retitled.count("\n") == text.count("\n")


@settings(max_examples=150, deadline=None)
@given(
    words=st.lists(
        st.text(st.characters(whitelist_categories=("Lu", "Ll", "Nd")), min_size=1, max_size=8),
        min_size=1,
        max_size=5,
    ),
    decor=st.sampled_from(["", "`", "**"]),
    emoji=st.sampled_from(["", " 🚀", " ✅", " ✨"]),
)
def test_titles_people_write_are_always_accepted(words: list[str], decor: str, emoji: str) -> None:
    title = " ".join([f"{decor}{words[0]}{decor}", *words[1:]]) + emoji
    after = render_new_task("## T-1: a\n", task_id="T-2", title=title, fields={})
    assert board(after).tasks[-1].title == " ".join(words)


@pytest.mark.parametrize(
    ("title", "reads"), [("#", None), ("a #", "a"), ("x ##  ", "x"), ("C#", "C#"), ("fix # 2", "fix # 2")]
)
def test_a_title_ending_in_a_closing_sequence_reads_as_the_heading_does(
    title: str, reads: str | None
) -> None:
    """`#`s after a space at the end of a heading close it: they are not the title. The title
    a retitle promises (read_title) is the one the edited heading reads as; a title that would
    leave nothing is refused up front (hypothesis found `#` accepted, then refused by the
    read-back as "no task")."""
    text = "# Phase 0\n\n## T0.5: Old\n\n**Status:** open\n"
    edit = BoardEdit(task_id="T0.5", title=title)
    if reads is None:
        with pytest.raises(BoardEditError, match="leaves no text"):
            read_title("T0.5", title)
        with pytest.raises(BoardEditError):
            apply_edits("boards/PHASE-0.md", text, [edit])
        return
    assert read_title("T0.5", title) == reads
    new_text = apply_edits("boards/PHASE-0.md", text, [edit])
    assert [t.title for t in parse_board("boards/PHASE-0.md", new_text).tasks] == [reads]


TITLE_PARTS = ["a", "C", "#", " ", "##", "`", "*", "**", "_", "✅", "🚀", "—", "-", ":", "1", "\\", "[x]"]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(TITLE_PARTS), min_size=1, max_size=8).map("".join)
    | st.text(
        st.characters(
            whitelist_categories=("Lu", "Ll", "Nd", "Zs", "Po", "So", "Pd", "Sm"), whitelist_characters="`*_#"
        ),
        min_size=1,
        max_size=24,
    )
)
def test_a_retitle_reads_back_as_read_title_says_or_is_refused_by_both(title: str) -> None:
    """What `read_title` promises is what the retitled heading reads as; a title it refuses,
    the edit refuses too (the e2e test draws 6 titles a run; this draws hundreds)."""
    text = "# Phase 0\n\n## T0.5: Old\n\n**Status:** open\n\n## T0.6: Next\n"
    edit = BoardEdit(task_id="T0.5", title=title)
    try:
        expected = read_title("T0.5", title)
    except BoardEditError:
        with pytest.raises(BoardEditError):
            apply_edits("boards/PHASE-0.md", text, [edit])
        return
    new_text = apply_edits("boards/PHASE-0.md", text, [edit])
    assert [(t.id, t.title) for t in parse_board("boards/PHASE-0.md", new_text).tasks][0] == (
        "T0.5",
        expected,
    )
