"""What people see: the board in the terminal and the dashboard markdown on the branch."""

from __future__ import annotations

import re

from rich.console import Console

from ifcoord.core.rows import task_rows
from ifcoord.core.snapshot import build_snapshot
from ifcoord.models import Task
from ifcoord.views.dashboard import DASHBOARD_MARK, render_dashboard
from ifcoord.views.terminal import (
    board_view,
    op_details,
    progress_bar,
    session_rows,
    status_view,
    task_view,
)

BOARD = """# Phase 0

## T0.1: Skeleton
**Status:** done
**Owner:** alice
**Progress:** 100%

## T0.2: Storage | schema
**Status:** in progress
**Owner:** bob
**Depends on:** T0.1
**Progress:** 40%
**Claimed at:** 2025-11-12T14:00:00Z

## T0.3: Slugs
**Status:** blocked
**Owner:** carol
**Depends on:** T0.1
**Waiting on:** T9.9
**Block reason:** needs the design review

## T0.4: API
**Status:** open
**Depends on:** T0.2, T0.3

## T0.5: Docs
**Status:** open

## Filler tasks

### F0.1: Fixtures
"""

PHASE_1 = """# Phase 1

## P1.1: Release
**Depends on:** T0.4
"""


def status(name: str, last_poll: str, state: str = "working", task: str | None = None) -> bytes:
    lines = [f"session: {name}", f"status: {state}", f"last_poll: {last_poll}"]
    if task:
        lines.append(f"current_task: {task}")
    return ("\n".join(lines) + "\n").encode()


def snapshot(**extra: bytes):  # type: ignore[no-untyped-def]
    files = {"boards/PHASE-0.md": BOARD.encode(), "boards/PHASE-1.md": PHASE_1.encode()}
    files.update({f"status/{k}.yaml": v for k, v in extra.items()})
    return build_snapshot(files)


def team():  # type: ignore[no-untyped-def]
    # bob beat 30 minutes before carol: by the branch's own newest event, bob's lease is stale.
    return snapshot(
        bob=status("bob", "2025-11-12T14:00:00Z", task="T0.2"),
        carol=status("carol", "2025-11-12T14:30:00Z", "blocked", "T0.3"),
    )


def render(renderable, width: int = 140) -> str:  # type: ignore[no-untyped-def]
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_dashboard_starts_with_the_generated_mark() -> None:
    text = render_dashboard(team())
    assert text.splitlines()[0] == DASHBOARD_MARK
    assert "do not edit" in text.splitlines()[0]


def test_dashboard_is_the_same_text_for_the_same_branch_content() -> None:
    assert render_dashboard(team()) == render_dashboard(team())


def test_dashboard_shows_absolute_heartbeat_times_never_ages() -> None:
    text = render_dashboard(team())
    assert "| bob | working ⚠️ stale lease | T0.2 |  | 2025-11-12 14:00:00 UTC | T0.2 |" in text
    assert "2025-11-12 14:30:00 UTC" in text
    assert " ago" not in text


def test_dashboard_has_a_progress_line_per_phase() -> None:
    text = render_dashboard(team())
    assert "### Phase 0: 1/6 done" in text
    assert "### Phase 1: 0/1 done" in text
    assert "| 0 | 1/6 |" in text
    assert "**1/7 tasks done**" in text


def test_dashboard_lists_every_task_with_state_owner_and_progress() -> None:
    text = render_dashboard(team())
    assert "| T0.1 | Skeleton | ✅ done | alice | `██████████ 100%` |  |" in text
    # pipes in titles do not break the table; a stale owner is flagged
    assert "| Storage \\| schema | reclaimable | bob ⚠️ stale | `████░░░░░░  40%` | T0.1 |" in text
    assert "| T0.5 | Docs | ▶ ready |  |" in text
    assert "| F0.1 | Fixtures *(filler)* | ▶ ready |" in text


def test_dashboard_puts_stale_leases_and_blocked_tasks_first() -> None:
    text = render_dashboard(team())
    attention = text.index("## Needs attention")
    stale = text.index(
        "**Stale lease:** T0.2 Storage \\| schema, held by bob (last heartbeat 2025-11-12 14:00:00 UTC)"
    )
    blocked = text.index("**Blocked:** T0.3 Slugs (carol) on T9.9: needs the design review")
    assert attention < stale < blocked < text.index("## Phases")


def test_dashboard_without_news_needs_no_attention_section() -> None:
    text = render_dashboard(snapshot(carol=status("carol", "2025-11-12T14:30:00Z", task="T0.3")))
    assert "Stale lease" not in text


def test_dashboard_has_the_dependency_graph_as_mermaid() -> None:
    text = render_dashboard(team())
    block = text[text.index("```mermaid") :]
    assert block.startswith("```mermaid\nflowchart LR\n")
    assert "  T0_1 --> T0_2" in block
    assert "  T0_4 ==> P1_1" in block  # on the critical path
    assert block.rstrip().endswith("```")


def test_dashboard_names_the_critical_path() -> None:
    text = render_dashboard(team())
    assert "**Critical path** (the longest chain of unfinished tasks): T0.2 → T0.4 → P1.1" in text
    assert "| **T0.4** ★ | API |" in text


def test_board_view_groups_by_phase_with_a_bar_each() -> None:
    snap = team()
    text = render(board_view(snap, task_rows(snap, frozenset({"bob"}))))
    assert text.index("Phase 0") < text.index("T0.1") < text.index("Phase 1") < text.index("★ P1.1   Release")
    assert "████░░░░░░░░░░░░░░░░░░░░  17%  1/6 done" in text
    assert "░░░░░░░░░░░░░░░░░░░░░░░░   0%  0/1 done" in text


def test_board_view_marks_ready_critical_stale_and_blocked() -> None:
    snap = team()
    text = render(board_view(snap, task_rows(snap, frozenset({"bob"}))))
    assert "★ critical path: T0.2 → T0.4 → P1.1" in text
    row = {
        tid: next(ln for ln in text.splitlines() if f" {tid}   " in ln)
        for tid in ("T0.2", "T0.3", "T0.5", "F0.1")
    }
    assert row["T0.5"].startswith(" ▶  T0.5") and "ready" in row["T0.5"]
    # a stale owner's task is up for reclaim: ready, on the critical path, owner flagged
    assert (
        row["T0.2"].startswith(" ▶★ T0.2") and "reclaimable" in row["T0.2"] and "bob (stale)" in row["T0.2"]
    )
    assert "blocked" in row["T0.3"]
    assert "(filler)" in row["F0.1"]
    assert "1 blocked, 1 stale, 3 ready" in text


def test_board_view_colours_blocked_and_stale_red() -> None:
    snap = team()
    console = Console(record=True, width=140, color_system="truecolor", force_terminal=True)
    console.print(board_view(snap, task_rows(snap, frozenset({"bob"}))))
    styled = console.export_text(styles=True)
    assert "\x1b[1;31mblocked" in styled
    assert "\x1b[1;31mbob (stale)" in styled


def test_progress_bar_is_clamped() -> None:
    assert progress_bar(150, 4) == "████ 100%"
    assert progress_bar(None, 4) == "░░░░   0%"


def test_status_view_shows_relative_age_for_people() -> None:
    snap = team()
    clock = snap.statuses["carol"].last_poll.timestamp() + 90  # type: ignore[union-attr]
    rows = session_rows(snap, frozenset({"bob"}), clock)
    assert [r["session"] for r in rows] == ["bob", "carol"]
    text = render(status_view(rows))
    assert "90s ago" in text
    assert "(stale lease)" in text


def big_snapshot(tasks: int, claimed: int = 0):  # type: ignore[no-untyped-def]
    """One phase of independent tasks; the first `claimed` are held by working sessions."""
    parts = ["# Phase 7\n"]
    for i in range(1, tasks + 1):
        held = f"**Status:** in progress\n**Owner:** s{i}\n**Claimed at:** 2025-11-12T14:00:00Z\n"
        parts.append(f"## T7.{i}: Task {i}\n" + (held if i <= claimed else "**Status:** open\n"))
    files = {"boards/PHASE-7.md": "\n".join(parts).encode()}
    for i in range(1, claimed + 1):
        files[f"status/s{i}.yaml"] = status(f"s{i}", "2025-11-12T14:00:00Z", task=f"T7.{i}")
    return build_snapshot(files)


def test_dashboard_links_each_phase_to_its_board() -> None:
    assert "| 0 | 1/6 | `" in render_dashboard(team())
    assert "[PHASE-0.md](PHASE-0.md) |" in render_dashboard(team())


def test_a_big_branch_gets_a_bounded_dashboard_of_what_needs_people() -> None:
    text = render_dashboard(big_snapshot(2000, claimed=3))
    assert "## In progress" in text
    assert "| T7.2 | Task 2 | in progress | s2 |" in text
    assert "| T7.1999 |" not in text and "```mermaid" not in text  # open tasks live in the board
    assert "**Ready to claim:** T7.4, T7.5," in text and "(1977 more)" in text
    assert "| 7 | 0/2000 |" in text and "[PHASE-7.md](PHASE-7.md)" in text
    assert "| s3 | working | T7.3 |" in text


def test_a_big_branch_gets_a_bounded_terminal_board_unless_everything_is_asked_for() -> None:
    snap = big_snapshot(300, claimed=3)
    rows = task_rows(snap)
    text = render(board_view(snap, rows))
    listed = [m[1] for ln in text.splitlines() if (m := re.match(r" [▶ ][★ ] (T7\.\d+) ", ln))]
    # the held tasks, then the first 20 ready ones, in board order; nothing else
    assert listed == [f"T7.{i}" for i in range(1, 24)]
    assert "and 277 more tasks (0 done, 277 ready, 0 other): ifcoord board --phase 7" in text
    assert "300 tasks: more than 200" in text and "--all lists every task" in text
    everything = render(board_view(snap, rows, everything=True))
    assert " T7.300 " in everything and "more tasks" not in everything and "more than 200" not in everything
    # at 200 tasks and below, every task is listed as before
    small = big_snapshot(200, claimed=3)
    assert " T7.200 " in render(board_view(small, task_rows(small)))


def test_the_dashboard_size_does_not_grow_with_the_number_of_open_tasks() -> None:
    small = len(render_dashboard(big_snapshot(300, claimed=3)).encode())
    big = len(render_dashboard(big_snapshot(3000, claimed=3)).encode())
    assert big < small * 1.1


def test_board_view_header_and_progress_fit_80_columns() -> None:
    snap = team()
    text = render(board_view(snap, task_rows(snap, frozenset({"bob"}))), width=80)
    lines = text.splitlines()
    assert lines[0].startswith("ifcoord board @")
    assert re.fullmatch(r"\d+/\d+ done, \d+ in progress, \d+ blocked, \d+ stale, \d+ ready", lines[1].strip())
    assert all(len(line.rstrip()) <= 80 for line in lines)
    assert re.search(r"[█░]{5} +\d+%", text)  # Progress whole, not cut to "████████ 1"


def test_show_lists_every_field_of_a_blocked_task_with_its_reason() -> None:
    text = (
        "## T-1: Schema\n**Status:** in progress\n**Owner:** s2\n\n"
        "## T-2: API\n**Status:** blocked\n**Owner:** s1\n**Epoch:** 3\n**Depends on:** T-1\n"
        "**Waiting on:** T-1\n**Block reason:** needs the schema\n**Tests:** 4 passed, 1 failed\n"
        "**Deliverable:** api.py\n**Priority:** HIGH\n\n"
        "**Milestones:**\n- [x] 50% - routes\n- [ ] 100% - errors\n"
    )
    snap = build_snapshot({"boards/PHASE-0.md": text.encode()})
    row = next(r for r in task_rows(snap) if r.task.id == "T-2")
    shown = render(task_view(row))
    for expected in (
        "state: blocked",
        "depends on: T-1 (unmet)",
        "waiting on: T-1",
        "block reason: needs the schema",
        "tests: 4 passed, 1 failed",
        "deliverable: api.py",
        "priority: HIGH",
        "☑ 50% - routes",
        "☐ 100% - errors",
        "progress: █████░░░░░  50%",
    ):
        assert expected in shown, (expected, shown)


def test_op_details_say_what_each_operation_did() -> None:
    def task_of(fields: str, title: str = "API") -> Task:
        snap = build_snapshot({"boards/PHASE-0.md": f"## T-2: {title}\n{fields}".encode()})
        return snap.tasks()["T-2"]

    before = task_of("**Priority:** LOW\n\n**Milestones:**\n- [ ] 50% - routes\n")
    after = task_of(
        "**Priority:** HIGH\n**Tests:** 3 passed, 0 failed\n\n**Milestones:**\n- [x] 50% - routes\n"
    )
    assert op_details("progress", after, before) == "50%; ☑ 50% - routes; tests 3 passed, 0 failed"
    assert op_details("edit", task_of("**Priority:** HIGH\n", "New"), before) == "title: New; priority: HIGH"
    blocked = task_of("**Waiting on:** T-1\n**Block reason:** needs the schema\n")
    assert op_details("block", blocked) == "waits on T-1; needs the schema"
    assert op_details("cancel", task_of("**Cancel reason:** superseded\n")) == "superseded"
