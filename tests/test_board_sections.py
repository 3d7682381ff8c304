"""An edit given the board's reading (`edit_board(..., parsed=)`) reads only the edited task's
section, and answers exactly what reading the whole file before and after does: the same new
text, the same board (every task, line number and finding), the same refusals. Checked on
generated boards full of markdown that moves section ends, and on the real fixture boards."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ifcoord.files import board as boardfile
from ifcoord.files.board import BoardEdit, BoardEditError, edit_board, parse_board
from ifcoord.models import Board

PATH = "boards/x.md"
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "boards"

# Lines that end sections early or late, hide headings, nest tasks, or make findings.
LINES = [
    "## T-1: First",
    "## T-2: Second ⏳",
    "### T-3: Third",
    "### **T-4: Bold** ✅",
    "#### F-1: Filler 🔧",
    "## Filler tasks",
    "# Phase 1: title",
    "## Notes",
    "T-5: setext",
    "---",
    "===",
    "**Status:** open",
    "**Status**: NOT STARTED",
    "**Status:** someday",
    "- **Owner:** alice",
    "**Owner:**",
    "**Kind:** filler",
    "**Kind:** primary",
    "**Priority:** HIGH",
    "**Depends on:** T-1",
    "**Epoch:** x",
    "**Progress:** 999%",
    "**Progress:** abc",
    "**Claimed at:** yesterday",
    "**Milestones:**",
    "- [ ] 25% - a",
    "- [x] 50% - b",
    "- [ ] 100% - c",
    "```",
    "~~~",
    "    indented",
    "<div>",
    "</div>",
    "<!--",
    "-->",
    "> quote",
    "> ## T-6: quoted",
    "1. item",
    "- item",
    "  ## T-7: in a list?",
    "text",
    "",
    "",
    "",
]


@st.composite
def boards(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.sampled_from(LINES), min_size=1, max_size=40))
    for heading in ("## T-8: Eighth", "### T-9.1: Ninth"):  # at least a task or two to edit
        lines.insert(draw(st.integers(0, len(lines))), heading)
    eol = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    text = "".join(line + eol for line in lines)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    return ("\ufeff" if draw(st.integers(0, 9)) == 0 else "") + text


def edits_for(task_id: str) -> st.SearchStrategy[list[BoardEdit]]:
    one = st.builds(
        BoardEdit,
        task_id=st.just(task_id),
        state=st.none() | st.sampled_from(["open", "claimed", "in_progress", "blocked", "done"]),
        fields=st.dictionaries(
            st.sampled_from(["owner", "epoch", "claimed_at", "note", "progress", "kind", "Assigned to"]),
            st.none()
            | st.sampled_from(["s1", "3", "2025-01-01T00:00:00Z", "a | b", "50", "filler"] * 3 + ["**", ""]),
            max_size=4,
        ),
        tick_milestones_upto=st.none() | st.sampled_from([25, 50, 100]),
    )
    return st.lists(one, min_size=1, max_size=2)


def outcome(path: str, text: str, edits: list[BoardEdit], parsed: Board | None) -> object:
    try:
        return edit_board(path, text, edits, ["1"], parsed)
    except BoardEditError as exc:
        return ("refused", str(exc))


def assert_same(path: str, text: str, edits: list[BoardEdit]) -> bool:
    """The section-local edit equals the whole-file one; whether the local path answered."""
    parsed = parse_board(path, text, ["1"])
    whole = outcome(path, text, edits, None)
    local = outcome(path, text, edits, parsed)
    assert local == whole
    if isinstance(whole, tuple) and whole[0] != "refused":
        assert whole[1] == parse_board(path, whole[0], ["1"])  # the reading handed on is a parse
    try:
        return boardfile._edit_sections(path, text, edits, parsed) is not None
    except BoardEditError:
        return True


def board_and_edits(data: st.DataObject) -> tuple[str, list[BoardEdit]]:
    """A generated board and edits of one of its tasks (one time in ten, of a task it lacks)."""
    text = data.draw(boards())
    ids = [t.id for t in parse_board(PATH, text, ["1"]).tasks]
    task_id = data.draw(st.sampled_from(ids) if ids and data.draw(st.integers(0, 9)) else st.just("T-9"))
    return text, data.draw(edits_for(task_id))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_section_edit_equals_reading_the_whole_file(data: st.DataObject) -> None:
    text, edits = board_and_edits(data)
    assert_same(PATH, text, edits)


def edited(scan: object, edit: BoardEdit) -> object:
    try:
        return boardfile._edited(scan, edit)  # type: ignore[arg-type]
    except BoardEditError as exc:
        return ("refused", str(exc))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_an_edit_rebuilds_only_the_lines_it_touches_and_writes_what_rebuilding_all_would(
    data: st.DataObject,
) -> None:
    """The text and lines an edit makes from the touched lines alone (the rest shared with the
    old text) are the ones rebuilding every line and splitting the result gives."""
    text, edits = board_and_edits(data)
    scan = boardfile._scan_text(PATH, text, ["1"])
    ranged = edited(scan, edits[0])
    whole = edited(dataclasses.replace(scan, text=""), edits[0])  # no text: every line rebuilt
    assert ranged == whole
    if isinstance(ranged, tuple) and ranged[0] != "refused":
        new_text, new_lines = ranged
        assert new_lines == boardfile._split_lines(new_text)


CLAIM = {"owner": "s1", "claimed_at": "2025-01-01T00:00:00Z", "epoch": "3"}
REAL_EDITS = [
    [BoardEdit(task_id="{id}", state="claimed", fields=CLAIM)],
    [BoardEdit(task_id="{id}", state="in_progress", fields={"progress": "50"}, tick_milestones_upto=50)],
    [BoardEdit(task_id="{id}", state="done", fields={"owner": None, "completed_at": "2025-01-02T00:00:00Z"})],
    [BoardEdit(task_id="{id}", fields={"note": "a | b"}), BoardEdit(task_id="{id}", state="open")],
    [BoardEdit(task_id="{id}", fields={"owner": None, "epoch": None, "claimed_at": None})],
]


def with_id(edits: list[BoardEdit], task_id: str) -> list[BoardEdit]:
    return [e.model_copy(update={"task_id": task_id}) for e in edits]


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"shared fixture boards not found at {FIXTURES}")
@pytest.mark.parametrize("name", ["session-4-instructions.md", "p2-atomic-task-list.md"])
def test_every_edit_of_every_task_of_the_real_boards_equals_reading_the_whole_file(name: str) -> None:
    text = (FIXTURES / name).read_bytes().decode("utf-8")
    path = f"boards/{name}"
    tasks = parse_board(path, text, ["1"]).tasks
    assert tasks
    local = 0
    for task in tasks:
        for edits in REAL_EDITS:
            local += assert_same(path, text, with_id(edits, task.id))
    assert local > 0  # the real boards do take the section path


def generated_board(tasks: int) -> str:
    parts = ["# Phase 1: generated\n\n**Priority:** LOW\n"]
    for i in range(1, tasks + 1):
        parts.append(
            f"## T1.{i}: Task {i}\n\n**Status:** open\n**Depends on:** None\n\n"
            "**Milestones:**\n- [ ] 50% - First half\n- [ ] 100% - Tests pass\n"
        )
    return "\n".join(parts)


def test_a_claim_on_a_big_board_reads_only_its_section(monkeypatch: pytest.MonkeyPatch) -> None:
    text = generated_board(300)
    parsed = parse_board(PATH, text, ["1"])
    seen: list[int] = []
    scan = boardfile._scan
    monkeypatch.setattr(boardfile, "_scan", lambda path, t, *a: seen.append(len(t)) or scan(path, t, *a))
    new_text, after = edit_board(PATH, text, with_id(REAL_EDITS[0], "T1.150"), ["1"], parsed)
    assert seen == []  # no whole-file reading, before or after
    monkeypatch.undo()
    assert after == parse_board(PATH, new_text, ["1"])
    assert (
        after is not None
        and after.tasks[149].owner == "s1"
        and after.tasks[150].line > parsed.tasks[150].line
    )


def test_an_edit_whose_section_would_swallow_the_next_heading_reads_the_whole_file() -> None:
    # A paragraph at the end of T-1's section followed by the setext heading of T-2: the check on
    # the line after the section fails, and the whole file is read (with the same answer).
    text = "## T-1: a\n**Status:** open\n\ntext\n\nT-2: b\n---\n**Status:** open\n"
    parsed = parse_board(PATH, text, ["1"])
    assert [t.id for t in parsed.tasks] == ["T-1", "T-2"]
    edits = [BoardEdit(task_id="T-1", fields={"owner": "s1"})]
    assert assert_same(PATH, text, edits)
    fenced = "## T-1: a\n```\n**Owner:** x\n```\n## T-2: b\n"
    assert assert_same(PATH, fenced, [BoardEdit(task_id="T-1", fields={"owner": "s1"})])


def test_refusals_are_the_same_on_the_section_path() -> None:
    # T-3's new lines would run into the setext heading below them: refused, not written
    text = "# Phase 1\n\n## T-1: a\n**Status:** open\n\n### T-3: c\n**Depends on:** T-1\n===\n"
    parsed = parse_board(PATH, text, ["1"])
    for edits in (
        [BoardEdit(task_id="T-9", state="done")],
        [BoardEdit(task_id="T-1", fields={"note": "a\nb"})],
        [BoardEdit(task_id="T-3", state="claimed", fields={"owner": "s1"})],
    ):
        with pytest.raises(BoardEditError) as whole:
            edit_board(PATH, text, edits, ["1"])
        with pytest.raises(BoardEditError) as local:
            edit_board(PATH, text, edits, ["1"], parsed)
        assert str(local.value) == str(whole.value)


@settings(max_examples=200, deadline=None)
@given(boards(), st.lists(st.integers(0, 45), max_size=10))
def test_the_section_test_for_findings_agrees_with_looking_at_every_task(text: str, lines: list[int]) -> None:
    tasks = parse_board(PATH, text).tasks
    brute = all(any(t.line <= line <= t.end_line for t in tasks) for line in lines)
    assert boardfile._all_in_task_sections(lines, tasks) == brute


# -- reading a changed board from its last reading (`reread_board`) ------------------------------


def assert_reread(text: str, new_text: str) -> bool:
    """`reread_board` answers what parsing the new text does, or nothing; whether it answered."""
    old = parse_board(PATH, text, ["1"])
    again = boardfile.reread_board(PATH, text, old, new_text)
    if again is not None:
        assert again == parse_board(PATH, new_text, ["1"])
    return again is not None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_board_an_operation_changed_reads_the_same_from_its_last_reading(data: st.DataObject) -> None:
    text, edits = board_and_edits(data)
    try:
        new_text, _ = edit_board(PATH, text, edits, ["1"])
    except BoardEditError:
        return
    assert_reread(text, new_text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_change_of_lines_reads_the_same_from_the_last_reading_or_is_read_whole(
    data: st.DataObject,
) -> None:
    """Lines inserted, removed or replaced anywhere (in a section, across sections, on a
    heading): the section reading answers exactly as the whole file, or declines."""
    text = data.draw(boards())
    lines = text.splitlines(keepends=True)
    at = data.draw(st.integers(0, len(lines)))
    cut = data.draw(st.integers(0, min(3, len(lines) - at)))
    new = [line + "\n" for line in data.draw(st.lists(st.sampled_from(LINES), max_size=3))]
    assert_reread(text, "".join(lines[:at] + new + lines[at + cut :]))


def test_a_claim_on_a_big_board_is_read_back_from_one_section() -> None:
    text = generated_board(300)
    new_text, _ = edit_board(PATH, text, with_id(REAL_EDITS[0], "T1.150"), ["1"])
    assert assert_reread(text, new_text)  # the common case takes the section path
    # a change in the preamble (inherited by every task) is read whole
    assert not assert_reread(text, text.replace("**Priority:** LOW", "**Priority:** HIGH"))
    # two sections changed at once: read whole
    two = new_text.replace("## T1.3: Task 3\n\n**Status:** open", "## T1.3: Task 3\n\n**Status:** done")
    assert not assert_reread(text, two)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", "# h", "", " ", "\n", "\r\n", "\r", "- [ ] x", "é"]), max_size=30))
def test_lines_split_as_markdown_counts_line_breaks_whichever_path_splits_them(parts: list[str]) -> None:
    """Text without a carriage return takes a quicker path; both split where \\r\\n, \\r and \\n
    break lines, and joining the lines gives the text back."""
    text = "".join(parts)
    pieces = re.split(r"(\r\n|\r|\n)", text)
    expected = [(pieces[i], pieces[i + 1]) for i in range(0, len(pieces) - 1, 2)]
    if pieces[-1]:
        expected.append((pieces[-1], ""))
    lines = boardfile._split_lines(text)
    assert [(line.content, line.eol) for line in lines] == expected
    assert "".join(line.content + line.eol for line in lines) == text
