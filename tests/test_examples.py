"""The example boards, status files and config in the repository read cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifcoord.files.config import is_board_path, is_status_path, parse_config
from ifcoord.files.status import parse_status

ROOT = Path(__file__).resolve().parents[1]


def test_example_status_files_parse() -> None:
    config = parse_config((ROOT / "ifcoord.yaml").read_bytes())
    for name in ("session-1", "session-2"):
        path = f"status/{name}.yaml"
        assert is_status_path(config, path)
        assert parse_status(path, (ROOT / path).read_bytes()).session == name


@pytest.mark.parametrize(
    ("path", "phase", "count"),
    [("boards/PHASE-0.md", "0", 11), ("boards/PHASE-1-TASK-BOARD.md", "1", 5)],
)
def test_example_boards_parse_without_diagnostics(path: str, phase: str, count: int) -> None:
    boardfile = pytest.importorskip("ifcoord.files.board")
    assert is_board_path(parse_config(None), path)
    board = boardfile.parse_board(path, (ROOT / path).read_text(encoding="utf-8"))
    assert board.phase == phase
    assert len(board.tasks) == count
    assert board.diagnostics == []
    assert all(len(t.milestones) == 4 for t in board.tasks)


def test_example_dependencies_exist_and_only_a_few_tasks_start_ready() -> None:
    boardfile = pytest.importorskip("ifcoord.files.board")
    tasks = {
        t.id: t
        for path in ("boards/PHASE-0.md", "boards/PHASE-1-TASK-BOARD.md")
        for t in boardfile.parse_board(path, (ROOT / path).read_text(encoding="utf-8")).tasks
    }
    for task in tasks.values():
        assert set(task.depends_tokens) <= set(tasks), task.id
    ready = sorted(t.id for t in tasks.values() if t.kind == "primary" and not t.depends_tokens)
    assert ready == ["T0.1", "T0.2"]
    assert sorted(t.id for t in tasks.values() if t.kind == "filler") == ["F0.1", "F0.2", "F0.3"]
