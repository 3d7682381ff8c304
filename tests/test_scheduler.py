"""Readiness, the order of ready tasks, and the next pick for a session (protocol section 5).

Snapshots are built from markdown text, so the board parser is exercised on the way in.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ifcoord.core.rows import row_for, task_json, task_rows
from ifcoord.core.scheduler import (
    dependants,
    may_take,
    next_for,
    priority_rank,
    readiness,
    ready_tasks,
    resolve_dependencies,
)
from ifcoord.core.snapshot import build_snapshot
from ifcoord.files.config import phase_sort_key
from ifcoord.models import Config, Snapshot

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "boards"


def snapshot(*boards: str, files: dict[str, bytes] | None = None) -> Snapshot:
    """Boards given as text become boards/PHASE-<i>.md, or pass (path, text) pairs via files."""
    raw = {f"boards/PHASE-{i}.md": text.encode() for i, text in enumerate(boards)}
    raw.update(files or {})
    return build_snapshot(raw)


def task(tid: str, *fields: str, heading: str = "##") -> str:
    return "\n".join([f"{heading} {tid}: Task {tid}", *fields, ""]) + "\n"


def board(*tasks: str, title: str = "# Board") -> str:
    return title + "\n\n" + "".join(tasks)


never_stale: frozenset[str] = frozenset()


def stale_owner(*sessions: str):
    return frozenset(sessions)


def ready_ids(snap: Snapshot, **kwargs) -> list[str]:
    return [t.id for t in ready_tasks(snap.tasks(), **kwargs)]


def is_ready(snap: Snapshot, tid: str, stale=never_stale) -> bool:
    tasks = snap.tasks()
    return readiness(tasks[tid], tasks, resolve_dependencies(tasks), stale).ready


# --- readiness ------------------------------------------------------------------------------


def test_open_task_whose_dependencies_are_done_and_has_no_owner_is_ready() -> None:
    snap = snapshot(board(task("T-1", "**Status:** done"), task("T-2", "**Depends on:** T-1")))
    assert is_ready(snap, "T-2")
    assert ready_ids(snap) == ["T-2"]


def test_task_with_an_unfinished_dependency_is_not_ready_and_says_what_it_waits_on() -> None:
    snap = snapshot(board(task("T-1", "**Status:** in progress"), task("T-2", "**Depends on:** T-1")))
    tasks = snap.tasks()
    r = readiness(tasks["T-2"], tasks, resolve_dependencies(tasks), never_stale)
    assert not r.ready
    assert r.unmet == ("T-1",)
    assert r.reason == "depends on T-1 (in_progress)"


def test_dependency_on_a_task_no_board_defines_is_unmet() -> None:
    snap = snapshot(board(task("T-2", "**Depends on:** X-9")))
    tasks = snap.tasks()
    r = readiness(tasks["T-2"], tasks, resolve_dependencies(tasks), never_stale)
    assert not r.ready
    assert r.reason == "depends on X-9 (not on any board)"


def test_open_task_with_a_live_owner_is_not_ready() -> None:
    snap = snapshot(board(task("T-1", "**Owner:** session-7")))
    tasks = snap.tasks()
    r = readiness(tasks["T-1"], tasks, resolve_dependencies(tasks), never_stale)
    assert not r.ready
    assert r.reason == "owned by session-7"


def test_open_task_with_a_stale_owner_is_ready() -> None:
    snap = snapshot(board(task("T-1", "**Owner:** session-7")))
    assert is_ready(snap, "T-1", stale_owner("session-7"))


@pytest.mark.parametrize("status", ["in progress", "claimed"])
def test_a_stale_owners_held_task_is_ready_for_reclaim(status: str) -> None:
    snap = snapshot(board(task("T-1", f"**Status:** {status}", "**Owner:** session-7")))
    assert not is_ready(snap, "T-1")
    assert is_ready(snap, "T-1", stale_owner("session-7"))
    assert not is_ready(snap, "T-1", stale_owner("session-8"))


def test_a_stale_owners_task_with_unmet_dependencies_is_still_not_ready() -> None:
    snap = snapshot(
        board(task("T-1"), task("T-2", "**Status:** in progress", "**Owner:** s7", "**Depends on:** T-1"))
    )
    assert not is_ready(snap, "T-2", stale_owner("s7"))


@pytest.mark.parametrize("status", ["done", "cancelled", "blocked", "review"])
def test_tasks_that_are_not_open_are_not_ready(status: str) -> None:
    snap = snapshot(board(task("T-1", f"**Status:** {status}")))
    tasks = snap.tasks()
    r = readiness(tasks["T-1"], tasks, resolve_dependencies(tasks), never_stale)
    assert not r.ready
    assert r.reason == f"state is {tasks['T-1'].state}"


def test_group_dependency_waits_for_every_member_of_the_group() -> None:
    def snap_with(a1: str, a2: str) -> Snapshot:
        return snapshot(
            board(
                task("P2A.1", f"**Status:** {a1}", heading="####"),
                task("P2A.2", f"**Status:** {a2}", heading="####"),
                task("P2C.1", "**Dependency:** P2A (tests must pass)", heading="####"),
            )
        )

    assert resolve_dependencies(snap_with("open", "open").tasks())["P2C.1"] == ["P2A.1", "P2A.2"]
    assert not is_ready(snap_with("open", "open"), "P2C.1")
    assert not is_ready(snap_with("done", "open"), "P2C.1")
    assert not is_ready(snap_with("open", "done"), "P2C.1")
    assert is_ready(snap_with("done", "done"), "P2C.1")


def test_group_dependency_inside_its_own_group_does_not_wait_on_itself() -> None:
    snap = snapshot(board(task("P2A.1", "**Status:** done"), task("P2A.2", "**Depends on:** P2A")))
    assert resolve_dependencies(snap.tasks())["P2A.2"] == ["P2A.1"]
    assert is_ready(snap, "P2A.2")


@pytest.mark.parametrize(
    "value", ["None (parallel with P2A)", "None (can run parallel)", "None", "N/A", "-", "—"]
)
def test_dependency_value_that_starts_with_none_means_no_dependencies(value: str) -> None:
    snap = snapshot(board(task("P2A.1"), task("P2B.1", f"**Dependency:** {value}")))
    assert resolve_dependencies(snap.tasks())["P2B.1"] == []
    assert is_ready(snap, "P2B.1")


def test_dependants_counts_tasks_unblocked_directly_and_indirectly() -> None:
    snap = snapshot(
        board(
            task("T-1"),
            task("T-2", "**Depends on:** T-1"),
            task("T-3", "**Depends on:** T-2"),
            task("T-4", "**Depends on:** T-3, T-1"),
        )
    )
    unblocks = dependants(resolve_dependencies(snap.tasks()))
    assert unblocks["T-1"] == {"T-2", "T-3", "T-4"}
    assert unblocks["T-3"] == {"T-4"}
    assert unblocks["T-4"] == set()


# --- order ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "word, rank",
    [
        ("CRITICAL", 0),
        ("P0", 0),
        ("HIGH", 1),
        ("P1", 1),
        ("medium", 2),
        ("P2", 2),
        ("LOW", 3),
        ("P3", 3),
        ("HIGH (blocks x)", 1),
        (None, 4),
        ("", 4),
        ("whenever", 4),
    ],
)
def test_priority_rank_reads_words_and_p_levels_absent_is_lowest(word: str | None, rank: int) -> None:
    assert priority_rank(word) == rank


def test_ready_tasks_come_in_priority_order_critical_high_medium_low_then_absent() -> None:
    snap = snapshot(
        board(
            task("T-1"),
            task("T-2", "**Priority:** LOW"),
            task("T-3", "**Priority:** MEDIUM"),
            task("T-4", "**Priority:** HIGH"),
            task("T-5", "**Priority:** CRITICAL"),
        )
    )
    assert ready_ids(snap) == ["T-5", "T-4", "T-3", "T-2", "T-1"]


def test_p_levels_rank_like_the_words_they_stand_for() -> None:
    snap = snapshot(
        board(
            task("T-1", "**Priority:** P3"),
            task("T-2", "**Priority:** P1"),
            task("T-3", "**Priority:** HIGH"),
            task("T-4", "**Priority:** P0"),
            task("T-5", "**Priority:** MEDIUM"),
        )
    )
    # P1 and HIGH tie, so file position decides between them
    assert ready_ids(snap) == ["T-4", "T-2", "T-3", "T-5", "T-1"]


def test_among_equal_priority_the_task_that_unblocks_more_comes_first_counting_indirect() -> None:
    snap = snapshot(
        board(
            task("A-1", "**Priority:** HIGH"),
            task("A-2", "**Depends on:** A-1"),
            task("B-1", "**Priority:** HIGH"),
            task("B-2", "**Depends on:** B-1"),
            task("B-3", "**Depends on:** B-2"),  # B-1 unblocks two, one of them indirectly
            task("C-1", "**Priority:** HIGH"),
        )
    )
    assert ready_ids(snap) == ["B-1", "A-1", "C-1"]


def test_priority_outranks_how_many_tasks_are_unblocked() -> None:
    snap = snapshot(
        board(
            task("A-1", "**Priority:** LOW"),
            task("A-2", "**Depends on:** A-1"),
            task("A-3", "**Depends on:** A-1"),
            task("B-1", "**Priority:** HIGH"),
        )
    )
    assert ready_ids(snap) == ["B-1", "A-1"]


def test_phase_order_breaks_ties_with_a_natural_phase_key() -> None:
    snap = snapshot(
        files={
            "boards/PHASE-10.md": board(task("X-10")).encode(),
            "boards/PHASE-2.md": board(task("X-2")).encode(),
        }
    )
    config = Config()
    assert ready_ids(snap, phase_key=lambda p: phase_sort_key(config, p)) == ["X-2", "X-10"]


def test_phase_order_follows_the_configured_phases_list() -> None:
    snap = snapshot(
        files={
            "ifcoord.yaml": b"phases: ['10', '2']\n",
            "boards/PHASE-10.md": board(task("X-10")).encode(),
            "boards/PHASE-2.md": board(task("X-2")).encode(),
        }
    )
    assert ready_ids(snap, phase_key=lambda p: phase_sort_key(snap.config, p)) == ["X-10", "X-2"]


def test_file_position_is_the_last_tie_breaker() -> None:
    snap = snapshot(board(task("Z-1"), task("A-1"), task("M-1")))
    assert ready_ids(snap) == ["Z-1", "A-1", "M-1"]


def test_primary_tasks_come_before_filler_tasks_whatever_their_priority() -> None:
    snap = snapshot(
        board(
            "## Filler Tasks When Blocked\n\n",
            task("F4.1", "**Priority:** CRITICAL", heading="###"),
            title="# Board",
        )
        + "## Main work\n\n"
        + task("P0.1", "**Priority:** LOW", heading="###")
    )
    tasks = snap.tasks()
    assert tasks["F4.1"].kind == "filler" and tasks["P0.1"].kind == "primary"
    assert ready_ids(snap) == ["P0.1", "F4.1"]


PRIORITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "P0", "P1", "P2", "P3", None]


@settings(max_examples=40, deadline=None)
@given(
    specs=st.lists(
        st.tuples(st.sampled_from(PRIORITIES), st.booleans(), st.integers(min_value=-1, max_value=7)),
        min_size=1,
        max_size=8,
    ),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_ready_order_is_a_total_order_consistent_with_kind_then_priority(specs, seed) -> None:
    parts = []
    for i, (prio, filler, dep) in enumerate(specs):
        fields = []
        if prio:
            fields.append(f"**Priority:** {prio}")
        if filler:
            fields.append("**Kind:** filler")
        if 0 <= dep < i:
            fields.append(f"**Depends on:** T-{dep}")
        parts.append(task(f"T-{i}", *fields))
    snap = snapshot(board(*parts))
    tasks = snap.tasks()
    order = ready_tasks(tasks)
    # kind first, then priority, never out of order
    keys = [(t.kind != "primary", priority_rank(t.priority)) for t in order]
    assert keys == sorted(keys)
    # a total order: the answer does not depend on the order tasks are handed in
    shuffled = list(tasks.items())
    random.Random(seed).shuffle(shuffled)
    assert [t.id for t in ready_tasks(dict(shuffled))] == [t.id for t in order]
    # exactly the tasks without an (unfinished) dependency are ready, each once
    assert sorted(t.id for t in order) == sorted(
        f"T-{i}" for i, (_, _, dep) in enumerate(specs) if not 0 <= dep < i
    )


# --- who may take a task --------------------------------------------------------------------


def test_session_field_restricts_a_task_to_the_named_session() -> None:
    snap = snapshot(board(task("T-1", "**Session:** session-4-sip"), task("T-2")))
    t1 = snap.tasks()["T-1"]
    assert may_take(t1, "session-4-sip")
    assert not may_take(t1, "session-5")
    assert ready_ids(snap, session="session-5") == ["T-2"]
    assert ready_ids(snap, session="session-4-sip") == ["T-1", "T-2"]


def test_session_field_may_be_a_glob() -> None:
    snap = snapshot(board(task("T-1", "**Reserved for:** session-[45]-???")))
    t1 = snap.tasks()["T-1"]
    assert may_take(t1, "session-4-sip")
    assert may_take(t1, "session-5-abc")
    assert not may_take(t1, "session-6-sip")
    assert not may_take(t1, "session-4-a")


def test_glob_session_matches_case_insensitively() -> None:
    t1 = snapshot(board(task("T-1"))).tasks()["T-1"].model_copy(update={"sessions": ["Session-4-*"]})
    assert may_take(t1, "session-4-sip")
    assert not may_take(t1, "session-40")


def test_star_glob_in_a_session_field_survives_parsing() -> None:
    snap = snapshot(board(task("T-1", "**Session:** session-4-*")))
    assert may_take(snap.tasks()["T-1"], "session-4-sip")


def test_session_field_may_list_several_sessions() -> None:
    snap = snapshot(board(task("T-1", "**Sessions:** s1, s2")))
    t1 = snap.tasks()["T-1"]
    assert may_take(t1, "s1") and may_take(t1, "s2") and not may_take(t1, "s3")


def test_board_wide_session_field_applies_to_every_task_of_the_file() -> None:
    snap = snapshot("# Board\n\n**Session:** s1\n\n" + task("T-1") + task("T-2", "**Session:** s2"))
    assert ready_ids(snap, session="s1") == ["T-1"]
    assert ready_ids(snap, session="s2") == ["T-2"]


# --- the next pick --------------------------------------------------------------------------


def test_next_for_returns_the_task_the_session_already_holds_first() -> None:
    snap = snapshot(
        board(task("T-1", "**Priority:** CRITICAL"), task("T-2", "**Status:** in progress", "**Owner:** s1"))
    )
    pick = next_for("s1", snap.tasks())
    assert (pick.kind, pick.task and pick.task.id) == ("current", "T-2")
    assert "already holds T-2" in pick.reason


def test_next_for_picks_the_first_ready_primary_task() -> None:
    snap = snapshot(board(task("T-1", "**Priority:** LOW"), task("T-2", "**Priority:** HIGH")))
    pick = next_for("s1", snap.tasks())
    assert (pick.kind, pick.task and pick.task.id) == ("primary", "T-2")
    assert [t.id for t in pick.candidates] == ["T-2", "T-1"]


def test_next_for_skips_excluded_tasks() -> None:
    snap = snapshot(board(task("T-1", "**Priority:** HIGH"), task("T-2")))
    pick = next_for("s1", snap.tasks(), exclude=["T-1"])
    assert pick.task is not None and pick.task.id == "T-2"


def test_next_for_falls_back_to_filler_and_names_blocked_primaries_and_what_they_wait_on() -> None:
    snap = snapshot(
        board(
            task("P0.1.4", "**Status:** in progress", "**Owner:** s9"),
            task("P0.1.5", "**Blocked until:** P0.1.4 completed"),
            task("F4.1", "**Kind:** filler"),
        )
    )
    pick = next_for("s1", snap.tasks())
    assert (pick.kind, pick.task and pick.task.id) == ("filler", "F4.1")
    assert "P0.1.5 depends on P0.1.4 (in_progress)" in pick.reason
    assert pick.reason.startswith("filler F4.1, because its primary tasks are blocked")


def test_a_session_whose_own_task_is_blocked_gets_filler_naming_the_blocker() -> None:
    snap = snapshot(
        board(
            task("T-1", "**Status:** blocked", "**Owner:** s1", "**Waiting on:** T-9"),
            task("F-1", "**Kind:** filler"),
        )
    )
    pick = next_for("s1", snap.tasks())
    assert (pick.kind, pick.task and pick.task.id) == ("filler", "F-1")
    assert "T-1 is blocked on T-9" in pick.reason


def test_next_for_says_none_when_neither_primary_nor_filler_is_ready() -> None:
    snap = snapshot(
        board(task("T-1", "**Status:** in progress", "**Owner:** s9"), task("T-2", "**Depends on:** T-1"))
    )
    pick = next_for("s1", snap.tasks())
    assert pick.task is None
    assert pick.kind == "none"
    assert "nothing to do for s1" in pick.reason
    assert "T-2 depends on T-1 (in_progress)" in pick.reason


def test_next_for_respects_the_session_restriction() -> None:
    snap = snapshot(board(task("T-1", "**Priority:** CRITICAL", "**Session:** s2"), task("T-2")))
    assert next_for("s1", snap.tasks()).task.id == "T-2"  # type: ignore[union-attr]
    assert next_for("s2", snap.tasks()).task.id == "T-1"  # type: ignore[union-attr]


def test_next_for_offers_a_stale_owners_task() -> None:
    snap = snapshot(
        board(task("T-1", "**Status:** in progress", "**Owner:** s9", "**Priority:** HIGH"), task("T-2"))
    )
    assert next_for("s1", snap.tasks()).task.id == "T-2"  # type: ignore[union-attr]
    assert next_for("s1", snap.tasks(), stale_owner("s9")).task.id == "T-1"  # type: ignore[union-attr]


# --- the real p2 board ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def p2() -> Snapshot:
    path = FIXTURES / "p2-atomic-task-list.md"
    if not path.is_file():
        pytest.skip(f"fixture board not found at {path}")
    return build_snapshot({"boards/p2-atomic-task-list.md": path.read_bytes()})


def test_p2_fixture_initial_ready_set_is_the_four_independent_tasks(p2: Snapshot) -> None:
    assert set(ready_ids(p2)) == {"P2A.1", "P2B.1", "P2D.1", "P2E.1"}


def test_p2_fixture_first_pick_is_the_critical_session_bug(p2: Snapshot) -> None:
    pick = next_for("session-1", p2.tasks(), phase_key=lambda p: phase_sort_key(p2.config, p))
    assert (pick.kind, pick.task and pick.task.id) == ("primary", "P2A.1")
    assert pick.task.priority == "CRITICAL"  # type: ignore[union-attr]


def test_p2_fixture_group_dependency_expands_to_every_p2a_task(p2: Snapshot) -> None:
    deps = resolve_dependencies(p2.tasks())
    assert deps["P2C.1"] == ["P2A.1", "P2A.2"]
    assert deps["P2B.1"] == []


# --- payloads: what agents read -------------------------------------------------------------


def test_task_json_has_the_fields_agents_rely_on() -> None:
    snap = snapshot(
        board(task("T-1", "**Status:** done"), task("T-2", "**Depends on:** T-1, T-3"), task("T-3"))
    )
    row = row_for(snap, "T-2")
    assert row is not None
    data = task_json(row)
    required = {"id", "title", "phase", "kind", "state", "owner", "depends_on", "ready", "progress"}
    required |= {"file", "line"}
    assert required <= set(data)
    assert data["id"] == "T-2"
    assert data["owner"] is None
    assert data["depends_on"] == ["T-1", "T-3"]
    assert data["unmet"] == ["T-3"]
    assert data["ready"] is False
    assert data["file"] == "boards/PHASE-0.md"
    assert data["phase"] == "0"


def test_task_rows_mark_stale_owners_and_their_tasks_ready() -> None:
    snap = snapshot(board(task("T-1", "**Status:** in progress", "**Owner:** s9")))
    (row,) = task_rows(snap, frozenset({"s9"}))
    assert row.ready and row.stale_owner
    (row,) = task_rows(snap)
    assert not row.ready and not row.stale_owner


def test_task_rows_list_a_duplicated_id_once() -> None:
    snap = snapshot(board(task("T-1")), board(task("T-1")))
    assert [r.task.file for r in task_rows(snap)] == ["boards/PHASE-0.md"]


@pytest.mark.parametrize(
    ("tasks", "why"),
    [
        ((task("T-1"), task("T-2", "**Priority:** HIGH")), "priority HIGH is above T-1's none"),
        (
            (task("T-1"), task("T-2"), task("T-3", "**Depends on:** T-2")),
            "it unblocks 1 task, T-1 unblocks 0",
        ),
        ((task("T-1"), task("T-2")), "it comes before T-2 on"),
        ((task("T-1"),), "the only one ready"),
    ],
)
def test_next_for_says_which_part_of_the_order_decided_the_pick(tasks: tuple[str, ...], why: str) -> None:
    pick = next_for("s1", snapshot(board(*tasks)).tasks())
    assert pick.kind == "primary"
    assert why in pick.reason


def test_a_filler_pick_carries_the_blocked_primaries_its_reason_names() -> None:
    snap = snapshot(
        board(
            task("P0.1.4", "**Status:** in progress", "**Owner:** s9"),
            task("P0.1.5", "**Blocked until:** P0.1.4 completed"),
            task("F4.1", "**Kind:** filler"),
        )
    )
    pick = next_for("s1", snap.tasks())
    assert pick.kind == "filler" and pick.blocked == ["P0.1.5"]
