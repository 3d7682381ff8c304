"""Whole-branch diagnostics: each code, its file:line and severity; errors apart from warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifcoord.core.lint import lint_snapshot
from ifcoord.core.snapshot import build_snapshot
from ifcoord.models import Diagnostic

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "boards"


def lint(files: dict[str, str]) -> list[Diagnostic]:
    return lint_snapshot(build_snapshot({k: v.encode() for k, v in files.items()}))


def by_code(diags: list[Diagnostic], code: str) -> list[Diagnostic]:
    return [d for d in diags if d.code == code]


CLEAN = """\
# Phase 0

## T-1: First
**Status:** done

## T-2: Second
**Depends on:** T-1
"""


def test_a_clean_board_has_no_diagnostics() -> None:
    assert lint({"boards/PHASE-0.md": CLEAN}) == []


def test_duplicate_id_is_an_error_at_the_second_place_naming_the_first() -> None:
    diags = lint(
        {
            "boards/PHASE-0.md": CLEAN,
            "boards/PHASE-1.md": "# Phase 1\n\nprose\n\n## T-1: Again\n**Status:** open\n",
        }
    )
    (d,) = by_code(diags, "duplicate-id")
    assert (d.severity, d.file, d.line) == ("error", "boards/PHASE-1.md", 5)
    assert "T-1" in d.message and "boards/PHASE-0.md:3" in d.message
    assert d.render().startswith(
        "boards/PHASE-1.md:5: error: task ID T-1 is also used at boards/PHASE-0.md:3"
    )


def test_duplicate_id_within_one_board_is_reported_too() -> None:
    diags = lint({"boards/PHASE-0.md": CLEAN + "\n## T-2: Twice\n"})
    (d,) = by_code(diags, "duplicate-id")
    assert (d.file, d.line) == ("boards/PHASE-0.md", 9)
    assert "boards/PHASE-0.md:6" in d.message


def test_unknown_dependency_is_a_warning_at_the_dependency_line() -> None:
    board = "# Phase 0\n\n## T-1: First\n**Status:** open\n**Depends on:** X-9, T-2\n\n## T-2: b\n"
    (d,) = lint({"boards/PHASE-0.md": board})
    assert (d.code, d.severity, d.file, d.line) == ("unknown-dependency", "warning", "boards/PHASE-0.md", 5)
    assert "X-9" in d.message and "T-2" not in d.message


def test_unknown_dependency_names_every_missing_task_of_the_real_session_board() -> None:
    path = FIXTURES / "session-4-instructions.md"
    if not path.is_file():
        pytest.skip(f"fixture board not found at {path}")
    diags = lint_snapshot(build_snapshot({"boards/session-4-instructions.md": path.read_bytes()}))
    unknown = by_code(diags, "unknown-dependency")
    assert {d.message.split()[0] for d in unknown} == {"P0.1.5", "P0.2.6", "P0.3.6"}
    assert all(d.severity == "warning" for d in unknown)
    assert not [d for d in diags if d.severity == "error"]


def test_a_group_dependency_is_not_an_unknown_dependency() -> None:
    board = "# P\n\n## P2A.1: a\n\n## P2A.2: b\n\n## P2C.1: c\n**Dependency:** P2A (tests must pass)\n"
    assert lint({"boards/PHASE-2.md": board}) == []


def test_dependency_cycle_is_an_error_at_the_first_tasks_dependency_line() -> None:
    board = """\
# Phase 0

## T-1: a
**Depends on:** T-3

## T-2: b
**Depends on:** T-1

## T-3: c
**Depends on:** T-2
"""
    diags = lint({"boards/PHASE-0.md": board})
    (d,) = diags
    assert (d.code, d.severity, d.file, d.line) == ("dependency-cycle", "error", "boards/PHASE-0.md", 4)
    assert "T-1 -> T-3 -> T-2 -> T-1" in d.message


def test_two_separate_cycles_are_reported_once_each() -> None:
    board = """\
# Phase 0

## A-1: a
**Depends on:** A-2

## A-2: b
**Depends on:** A-1

## B-1: c
**Depends on:** B-2

## B-2: d
**Depends on:** B-1

## C-1: free
**Depends on:** A-1
"""
    cycles = by_code(lint({"boards/PHASE-0.md": board}), "dependency-cycle")
    assert len(cycles) == 2
    assert {d.line for d in cycles} == {4, 10}


def test_a_cycle_through_a_group_dependency_is_found() -> None:
    board = "# P\n\n## P2A.1: a\n**Depends on:** P2B\n\n## P2B.1: b\n**Depends on:** P2A\n"
    (d,) = lint({"boards/PHASE-2.md": board})
    assert d.code == "dependency-cycle"
    assert "P2A.1 -> P2B.1 -> P2A.1" in d.message


def test_unknown_status_is_a_warning_from_the_board_at_the_status_line() -> None:
    board = "# Phase 0\n\n## T-1: a\n**Priority:** HIGH\n**Status:** maybe later\n"
    (d,) = lint({"boards/PHASE-0.md": board})
    assert (d.code, d.severity, d.file, d.line) == ("unknown-status", "warning", "boards/PHASE-0.md", 5)
    assert "maybe later" in d.message


def test_a_board_with_no_tasks_gets_a_note_without_a_line() -> None:
    (d,) = lint({"boards/PHASE-1.md": "# Phase 1\n\nJust prose.\n"})
    assert (d.code, d.severity, d.file, d.line) == ("no-tasks", "note", "boards/PHASE-1.md", 0)
    assert d.render().startswith("boards/PHASE-1.md: note: no task headings found")


def test_an_unreadable_status_file_is_an_error_with_its_line() -> None:
    diags = lint({"boards/PHASE-0.md": CLEAN, "status/s1.yaml": "session: s1\nstatus: [\n"})
    (d,) = diags
    assert (d.code, d.severity, d.file) == ("unreadable", "error", "status/s1.yaml")
    assert d.line > 0


def test_a_board_that_is_not_utf8_is_an_error_and_the_rest_still_lints() -> None:
    diags = lint_snapshot(
        build_snapshot(
            {"boards/PHASE-0.md": b"# B\n\n## T-1: caf\xe9\n", "boards/PHASE-1.md": CLEAN.encode()}
        )
    )
    assert [(d.code, d.severity, d.file) for d in diags] == [("unreadable", "error", "boards/PHASE-0.md")]


def test_errors_and_warnings_are_told_apart_and_listed_in_file_and_line_order() -> None:
    files = {
        "boards/PHASE-0.md": """\
# Phase 0

## T-1: a
**Status:** someday
**Depends on:** T-2

## T-2: b
**Depends on:** T-1, NOPE-1

## T-3: dup
""",
        "boards/PHASE-1.md": "# Phase 1\n\n## T-3: dup again\n",
        "boards/PHASE-2.md": "# Phase 2\n",
    }
    diags = lint(files)
    severities = {d.code: d.severity for d in diags}
    assert severities == {
        "duplicate-id": "error",
        "dependency-cycle": "error",
        "unknown-dependency": "warning",
        "unknown-status": "warning",
        "no-tasks": "note",
    }
    errors = [d for d in diags if d.severity == "error"]
    warnings = [d for d in diags if d.severity == "warning"]
    assert {d.code for d in errors} == {"duplicate-id", "dependency-cycle"}
    assert {d.code for d in warnings} == {"unknown-dependency", "unknown-status"}
    assert [(d.file, d.line) for d in diags] == sorted((d.file, d.line) for d in diags)
    assert [d.render().split(": ")[0] for d in diags] == [
        "boards/PHASE-0.md:4",  # unknown status
        "boards/PHASE-0.md:5",  # the cycle T-1 -> T-2 -> T-1
        "boards/PHASE-0.md:8",  # NOPE-1
        "boards/PHASE-1.md:3",  # T-3 again
        "boards/PHASE-2.md",  # no tasks
    ]


def test_a_bad_config_is_an_error_with_its_line_and_defaults_apply() -> None:
    diags = lint({"ifcoord.yaml": "lease_seconds: 60\nlease_secs: 5\n", "boards/PHASE-0.md": CLEAN})
    (d,) = by_code(diags, "bad-config")
    assert (d.severity, d.file, d.line) == ("error", "ifcoord.yaml", 2)
    assert "lease_secs" in d.message


def test_a_status_file_whose_name_is_not_a_session_name_is_a_warning() -> None:
    diags = lint({"status/Not A Session!.yaml": "session: x\n", "boards/PHASE-0.md": CLEAN})
    (d,) = by_code(diags, "bad-status-name")
    assert (d.severity, d.file) == ("warning", "status/Not A Session!.yaml")


# -- issue 13 -------------------------------------------------------------------------------------


def test_tasks_depending_on_their_own_group_give_one_cycle_report_and_stay_small() -> None:
    board = "# P\n\n" + "".join(f"## P7.{i}: t\n**Depends on:** P7\n\n" for i in range(1, 301))
    diags = lint({"boards/PHASE-7.md": board})
    (d,) = by_code(diags, "dependency-cycle")
    assert d.message.startswith("dependency cycle P7.1 -> P7.2 -> P7.1; 300 tasks wait on each other")
    assert "(+290 more)" in d.message
    assert sum(len(x.message) for x in diags) < 2000


def test_a_long_chain_and_a_long_cycle_lint_without_recursion() -> None:
    n = 5000
    body = "".join(f"## C-{i}: t\n**Depends on:** C-{(i - 1) % n}\n\n" for i in range(n))
    (d,) = by_code(lint({"boards/PHASE-0.md": "# C\n\n" + body}), "dependency-cycle")
    assert d.message.startswith("dependency cycle C-0 -> C-4999 -> C-4998")


def test_a_second_status_file_for_a_session_is_an_error_and_the_first_one_counts() -> None:
    snap = build_snapshot(
        {
            "status/s1.yaml": b"session: s1\nstatus: working\n",
            "status/s1.yml": b"session: s1\nstatus: offline\n",
        }
    )
    assert snap.status_paths["s1"] == "status/s1.yaml"
    assert snap.statuses["s1"].status == "working"
    (d,) = by_code(lint_snapshot(snap), "duplicate-status")
    assert (d.file, d.severity) == ("status/s1.yml", "error")


def test_held_tasks_of_owners_without_a_readable_status_file_are_named() -> None:
    board = (
        "# P\n\n## T-1: a\n**Status:** in progress\n**Owner:** ghost\n\n"
        "## T-2: b\n**Status:** claimed\n**Owner:** s2\n"
    )
    diags = lint({"boards/PHASE-0.md": board, "status/s2.yaml": "session: s2\nlast_poll: [\n"})
    found = {(d.line, d.severity) for d in by_code(diags, "owner-without-status")}
    assert found == {(5, "note"), (9, "warning")}


def test_a_board_over_the_size_limit_is_an_error_naming_the_limit() -> None:
    from ifcoord.core.snapshot import MAX_BOARD_BYTES

    big = "# P\n\n## T-1: a\n" + "x" * MAX_BOARD_BYTES
    (d,) = by_code(lint({"boards/PHASE-0.md": big}), "board-too-large")
    assert d.severity == "error" and "2 MiB limit" in d.message


def test_an_epoch_that_is_not_digits_is_a_warning_and_not_read_as_another_number() -> None:
    board = b"# P\n\n## T-1: a\n**Epoch:** 1e3\n\n## T-2: b\n**Epoch:** -2\n"
    snap = build_snapshot({"boards/PHASE-0.md": board})
    assert [t.epoch for t in snap.tasks().values()] == [0, 0]
    assert len(by_code(lint_snapshot(snap), "bad-value")) == 2


def test_a_hand_written_dashboard_path_is_a_note() -> None:
    diags = lint({"boards/README.md": "# ours\n", "boards/PHASE-0.md": CLEAN})
    (d,) = by_code(diags, "dashboard-moved")
    assert d.severity == "note" and "IFCOORD-DASHBOARD.md" in d.message
