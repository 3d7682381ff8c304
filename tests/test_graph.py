"""The dependency graph: group dependencies expanded, the critical path, mermaid/dot/text output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ifcoord.core.snapshot import build_snapshot
from ifcoord.views.graph import (
    build_graph,
    critical_path,
    estimate_hours,
    node_ids,
    render_dot,
    render_mermaid,
    render_text,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "boards"


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"fixture board {path} is missing")
    return path.read_bytes()


def snapshot_of(boards: dict[str, str | bytes]):  # type: ignore[no-untyped-def]
    return build_snapshot({p: b.encode() if isinstance(b, str) else b for p, b in boards.items()})


def board(*tasks: str) -> str:
    return "# Phase 0\n\n" + "\n".join(tasks)


def task(tid: str, deps: str = "None", state: str = "open", estimate: str = "1h") -> str:
    return f"## {tid}: Task {tid}\n**Status:** {state}\n**Depends on:** {deps}\n**Estimate:** {estimate}\n"


def mermaid_edges(text: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^\s+(\w+) (?:-->|==>) (\w+)$", text, flags=re.M))


def test_mermaid_of_the_p2_fixture_has_each_dependency_as_an_edge() -> None:
    snap = snapshot_of({"boards/p2-atomic-task-list.md": fixture("p2-atomic-task-list.md")})
    text = render_mermaid(build_graph(snap))
    edges = mermaid_edges(text)
    assert text.startswith("flowchart LR\n")
    assert ("P2A_1", "P2A_2") in edges
    assert ("P2C_1", "P2C_2") in edges
    assert ("P2E_2", "P2E_3") in edges and ("P2B_1", "P2E_3") in edges
    # `None (parallel with P2A)` is no dependency at all
    assert not any(b == "P2B_1" for _, b in edges)


def test_group_dependency_expands_to_an_edge_from_every_member() -> None:
    snap = snapshot_of({"boards/p2-atomic-task-list.md": fixture("p2-atomic-task-list.md")})
    edges = mermaid_edges(render_mermaid(build_graph(snap)))
    assert {a for a, b in edges if b == "P2C_1"} == {"P2A_1", "P2A_2"}
    assert {a for a, b in edges if b == "P2F_1"} == {"P2A_1", "P2A_2"}
    # P2G.1 depends on the groups P2A, P2B and P2E
    assert {a for a, b in edges if b == "P2G_1"} == {
        "P2A_1", "P2A_2", "P2B_1", "P2B_2", "P2E_1", "P2E_2", "P2E_3", "P2E_4",
    }  # fmt: skip


def test_mermaid_node_names_have_no_dots_and_labels_keep_the_real_id_and_state() -> None:
    snap = snapshot_of({"boards/p2-atomic-task-list.md": fixture("p2-atomic-task-list.md")})
    text = render_mermaid(build_graph(snap))
    assert 'P2A_1["P2A.1: Debug & Fix Session Retrieval Bug (ready)"]' in text
    assert 'P2A_2["P2A.2: Fix Session List Filtering (open)"]' in text
    for line in text.splitlines()[1:]:
        name = line.split()[0] if line.split()[0] not in ("class", "classDef") else ""
        assert "." not in name.split("[")[0], line
    assert re.search(r"^  class .*P2A_1.* ready$", text, flags=re.M)


def test_dependencies_on_no_board_show_as_missing_nodes() -> None:
    snap = snapshot_of({"boards/session-4-instructions.md": fixture("session-4-instructions.md")})
    g = build_graph(snap)
    assert g.nodes["P0.1.1"].state == "missing"
    assert ("P0.1.4", "P0.1.5") in g.edges
    text = render_mermaid(g)
    assert 'P0_1_1["P0.1.1: not on any board"]' in text
    assert "stroke-dasharray" in text
    assert "not on any board (unmet): P0.1.1" in render_text(g)


def test_critical_path_of_the_p2_fixture_is_its_longest_open_chain() -> None:
    snap = snapshot_of({"boards/p2-atomic-task-list.md": fixture("p2-atomic-task-list.md")})
    assert critical_path(snap.tasks()) == ["P2E.1", "P2E.2", "P2E.3", "P2E.4", "P2G.1", "P2G.2"]


def test_critical_path_leaves_out_finished_tasks() -> None:
    snap = snapshot_of({"boards/PHASE-0.md": board(
        task("T1", state="done"), task("T2", "T1"), task("T3", "T2"), task("T4"), task("T5", "T4"),
    )})  # fmt: skip
    assert critical_path(snap.tasks()) == ["T2", "T3"]


def test_critical_path_ties_go_to_more_estimated_hours_then_board_order() -> None:
    snap = snapshot_of({"boards/PHASE-0.md": board(
        task("A1", estimate="1h"), task("A2", "A1", estimate="1h"),
        task("B1", estimate="3-4 hours"), task("B2", "B1", estimate="30m"),
        task("C1", estimate="1h"), task("C2", "C1", estimate="1h"),
    )})  # fmt: skip
    assert critical_path(snap.tasks()) == ["B1", "B2"]
    even = snapshot_of(
        {"boards/PHASE-0.md": board(task("A1"), task("A2", "A1"), task("C1"), task("C2", "C1"))}
    )
    assert critical_path(even.tasks()) == ["A1", "A2"]


def test_critical_path_is_empty_when_everything_is_done_and_survives_a_cycle() -> None:
    done = snapshot_of({"boards/PHASE-0.md": board(task("T1", state="done"), task("T2", "T1", state="done"))})
    assert critical_path(done.tasks()) == []
    cycle = snapshot_of({"boards/PHASE-0.md": board(task("T1", "T3"), task("T2", "T1"), task("T3", "T2"))})
    path = critical_path(cycle.tasks())
    assert len(path) == 3 and len(set(path)) == 3


def test_critical_path_edges_are_drawn_thick_in_mermaid_and_red_in_dot() -> None:
    snap = snapshot_of({"boards/PHASE-0.md": board(task("T1"), task("T2", "T1"), task("T3"))})
    g = build_graph(snap)
    assert g.critical == ["T1", "T2"]
    mermaid = render_mermaid(g)
    assert "  T1 ==> T2" in mermaid
    assert "  class T1,T2 critical" in mermaid
    dot = render_dot(g)
    assert '"T1" -> "T2" [color="#dd0000", penwidth=3];' in dot
    assert dot.startswith("digraph ifcoord {") and dot.rstrip().endswith("}")


def test_text_lists_tasks_by_level_with_what_they_wait_on() -> None:
    snap = snapshot_of(
        {"boards/PHASE-0.md": board(task("T1", state="done"), task("T2", "T1"), task("T3", "T2"))}
    )
    text = render_text(build_graph(snap))
    assert "critical path: T2 -> T3" in text
    lines = text.splitlines()
    assert lines.index("level 0") < next(
        i for i, line in enumerate(lines) if "T1" in line and "[done]" in line
    )
    assert any(line.startswith(" * T3") and "<- T2 (open)" in line for line in lines)


def test_dot_quotes_ids_and_escapes_titles() -> None:
    snap = snapshot_of(
        {"boards/PHASE-0.md": '# P\n\n## T1.1: Say "hi"\n\n## T1.2: Next\n**Depends on:** T1.1\n'}
    )
    dot = render_dot(build_graph(snap))
    assert '"T1.1" -> "T1.2"' in dot
    assert 'label="T1.1: Say \\"hi\\" (ready)"' in dot


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("2h", 2.0),
        ("3-4 hours", 4.0),
        ("30m", 0.5),
        ("1 day", 8.0),
        ("1-2 weeks", 80.0),
        ("soon", 0.0),
        (None, 0.0),
    ],
)
def test_estimate_hours_reads_what_boards_write(text: str | None, hours: float) -> None:
    assert estimate_hours(text) == hours


def test_node_ids_stay_unique_when_sanitising_collides() -> None:
    names = node_ids(["A.1", "A-1", "A_1"])
    assert len(set(names.values())) == 3
    assert names["A.1"] == "A_1"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["open", "claimed", "in_progress", "blocked", "done", "cancelled"]),
            st.sampled_from(["1h", "2h", "30m", "1d"]),
            st.lists(st.integers(0, 11), max_size=3),
        ),
        min_size=1,
        max_size=12,
    ),
    st.lists(
        st.tuples(st.integers(0, 11), st.sampled_from(["open", "claimed", "done", "cancelled"])), max_size=8
    ),
)
def test_a_kept_critical_path_is_the_one_a_fresh_walk_finds(
    spec: list[tuple[str, str, list[int]]], changes: list[tuple[int, str]]
) -> None:
    """The path is kept by what it depends on: after any change of states (which a claim
    leaves unchanged as far as the path goes, and a completion does not), the kept answer is
    the walk's."""
    from ifcoord.core.scheduler import resolve_dependencies
    from ifcoord.views.graph import _critical_path

    states = [s for s, _, _ in spec]
    for step in [None, *changes]:
        if step is not None:
            states[step[0] % len(states)] = step[1]
        tasks_md = [
            task(
                f"T{i}",
                ", ".join(f"T{d}" for d in deps if d < len(spec) and d != i) or "None",
                states[i],
                est,
            )
            for i, (_, est, deps) in enumerate(spec)
        ]
        tasks = snapshot_of({"boards/PHASE-0.md": board(*tasks_md)}).tasks()
        assert critical_path(tasks) == _critical_path(tasks, resolve_dependencies(tasks))
