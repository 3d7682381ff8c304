"""Make docs/board.svg: `ifcoord board` on the example boards, mid-run.

Runs three sessions through a few real operations against a throwaway bare remote, then renders
the board exactly as `ifcoord board` prints it, recorded by rich at 110 columns.

    .venv/bin/python docs/make_screenshot.py
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "board.svg"
BOARDS = [ROOT / "boards" / "PHASE-0.md", ROOT / "boards" / "PHASE-1-TASK-BOARD.md"]

# (session, command...) in order: two tasks done, work in flight, one blocked, one on filler.
STEPS = [
    ("session-1", "claim", "T0.1"),
    ("session-2", "claim", "T0.2"),
    ("session-1", "complete", "T0.1", "--tests-passed", "4"),
    ("session-2", "progress", "T0.2", "100"),
    ("session-2", "complete", "T0.2"),
    ("session-1", "claim", "T0.3"),
    ("session-1", "progress", "T0.3", "50", "--note", "alphabet chosen"),
    ("session-3", "claim", "T0.7"),
    ("session-3", "progress", "T0.7", "25"),
    ("session-3", "block", "T0.7", "--reason", "registry credentials missing"),
    ("session-2", "claim", "F0.1"),
    ("session-2", "progress", "F0.1", "75"),
]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, env=env)


def main() -> int:
    from rich.console import Console

    from ifcoord.core.rows import task_rows
    from ifcoord.views.terminal import board_view
    from ifcoord.session.workspace import Workspace

    work = Path(tempfile.mkdtemp(prefix="ifcoord-shot-"))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "demo",
        "GIT_AUTHOR_EMAIL": "demo@example.invalid",
        "GIT_COMMITTER_NAME": "demo",
        "GIT_COMMITTER_EMAIL": "demo@example.invalid",
    }
    try:
        remote, clone = work / "remote.git", work / "clone"
        run("git", "init", "-q", "--bare", str(remote), cwd=work, env=env)
        run("git", "init", "-q", str(clone), cwd=work, env=env)
        run("git", "remote", "add", "origin", str(remote), cwd=clone, env=env)
        ifcoord = [sys.executable, "-m", "ifcoord"]
        init = [*ifcoord, "init"]
        for board in BOARDS:
            init += ["--board", str(board)]
        run(*init, cwd=clone, env=env)
        for session, *args in STEPS:
            run(*ifcoord, *args, "--session", session, cwd=clone, env=env)
        ws = Workspace(start=clone)
        state = ws.read()
        snapshot = state.snapshot
        console = Console(
            record=True, width=110, force_terminal=True, color_system="truecolor", file=io.StringIO()
        )
        console.print(board_view(snapshot, task_rows(snapshot, ws.stale(snapshot))))
        OUT.write_text(console.export_svg(title="ifcoord board"), encoding="utf-8")
        print(f"wrote {OUT.relative_to(ROOT)}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
