"""The shortcuts that keep reads quick at thousands of tasks answer exactly what the long way does:
one task's row, readiness and dependencies, the lazily grouped dependency resolution; and a real process
ends without tearing its objects down, yet flushes its output, runs its exit handlers and
returns its exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ifcoord.core.rows import row_for, task_rows
from ifcoord.core.scheduler import is_ready, readiness, resolve_dependencies, task_dependencies
from ifcoord.models import Board, Snapshot, Task

IDS = ["A", "A.1", "A.2", "A.1.1", "A.10", "B.1", "B.1.2", "C1", "P2A.1", "P2A.2", "X.", "A1."]
TOKENS = [*IDS, "P2A", "B", "B.1", "Z", "Z.9", "A.1.1.1"]


def eager_resolution(tasks: dict[str, Task]) -> dict[str, list[str]]:
    """The resolution as it was written before groups were built lazily: the specification."""
    groups: dict[str, list[str]] = {}
    for task_id in tasks:
        parts = task_id.split(".")
        for i in range(1, len(parts)):
            groups.setdefault(".".join(parts[:i]), []).append(task_id)
    resolved: dict[str, list[str]] = {}
    for task_id, task in tasks.items():
        deps: dict[str, None] = {}
        for token in task.depends_tokens:
            members = [token] if token in tasks else groups.get(token, [token])
            deps.update((m, None) for m in members if m != task_id)
        resolved[task_id] = list(deps)
    return resolved


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    boards = []
    for b in range(draw(st.integers(1, 3))):
        ids = draw(st.lists(st.sampled_from(IDS), max_size=8))  # duplicates across boards happen
        tasks = [
            Task(
                id=tid,
                title="t",
                file=f"boards/{b}.md",
                line=i + 1,
                end_line=i + 1,
                level=2,
                phase=str(b),
                position=i,
                depends_tokens=draw(st.lists(st.sampled_from(TOKENS), max_size=3)),
                state=draw(st.sampled_from(["open", "done", "claimed", "blocked"])),
                owner=draw(st.sampled_from([None, "s1", "s2"])),
                waiting_on=draw(st.lists(st.sampled_from(TOKENS), max_size=2)),
            )  # fmt: skip
            for i, tid in enumerate(ids)
        ]
        boards.append(Board(path=f"boards/{b}.md", phase=str(b), tasks=tasks))
    return Snapshot(boards=boards)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), st.sampled_from([frozenset(), frozenset({"s1"})]))
def test_one_tasks_row_and_dependencies_equal_the_whole_boards(
    snapshot: Snapshot, stale: frozenset[str]
) -> None:
    tasks = snapshot.tasks()
    resolved = resolve_dependencies(tasks)
    assert resolved == eager_resolution(tasks)
    rows = task_rows(snapshot, stale)
    assert task_rows(snapshot, stale, resolved) == rows
    for task_id, task in tasks.items():
        assert task_dependencies(task, tasks) == resolved[task_id]
        assert is_ready(task, tasks, resolved, stale) == readiness(task, tasks, resolved, stale).ready
        assert row_for(snapshot, task_id, stale) == next(r for r in rows if r.task.id == task_id)
    assert row_for(snapshot, "NOPE.1", stale) is None


def test_a_real_process_flushes_runs_exit_handlers_and_keeps_its_exit_code(tmp_path: Path) -> None:
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "PHASE-1.md").write_text("# Phase 1\n\n## T-1: only\n\n**Status:** done\n")
    marker, torn = tmp_path / "exit-handler-ran", tmp_path / "torn-down"
    script = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').close())\n"
        "class Model:\n"
        f"    def __del__(self, _open=open): _open({str(torn)!r}, 'w').close()\n"
        "kept = Model()  # stands for the thousands of parsed models a command leaves behind\n"
        "from ifcoord.__main__ import main\n"
        "sys.argv = ['ifcoord', 'next', '--dir', sys.argv[1], '-s', 'viewer', '--json']\n"
        "sys.exit(main())\n"
    )
    env = {**os.environ, "IFCOORD_SERVER": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 4, proc.stderr  # nothing to do: exit 4, as documented
    assert proc.stdout.strip().startswith("{") and '"kind": "none"' in proc.stdout
    assert marker.exists()
    assert not torn.exists()  # the process ended without freeing its objects one by one
