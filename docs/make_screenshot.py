"""Make the screenshots of docs/views.md: `ifcoord board`, `ifcoord watch` and the dashboard.

Runs three sessions through a few real operations against a throwaway bare remote, then renders
each view exactly as ifcoord prints it, recorded by rich (`Console(record=True)`):

- docs/board.svg: `ifcoord board` at 110 columns;
- docs/watch.svg: one `ifcoord watch` frame in an 80x24 terminal;
- docs/dashboard.svg: the dashboard `boards/README.md` as rich renders its markdown;
- the dashboard's mermaid graph, pasted between the markers in docs/views.md (no offline
  mermaid renderer is packaged for Debian or PyPI; git hosts draw the block themselves).

    make screenshots        (or: .venv/bin/python docs/make_screenshot.py)
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MERMAID_START = "<!-- make screenshots: dashboard mermaid -->"
MERMAID_END = "<!-- end of the generated mermaid -->"
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


def record(path: Path, title: str, width: int, height: int | None, view: Any) -> None:
    """Print `view` (or `view(console)`) on a recording console of that size; save it as SVG."""
    from rich.console import Console

    console = Console(
        record=True, width=width, height=height, force_terminal=True, color_system="truecolor",
        file=io.StringIO(),
    )  # fmt: skip
    console.print(view(console) if callable(view) else view)
    console.save_svg(str(path), title=title)
    print(f"wrote {path.relative_to(ROOT)}")


def paste_mermaid(doc: Path, dashboard: str) -> None:
    """Replace the block between the markers in `doc` with the dashboard's mermaid block."""
    match = re.search(r"```mermaid\n.*?\n```", dashboard, re.DOTALL)
    if match is None:
        return
    text = doc.read_text(encoding="utf-8")
    start, end = text.index(MERMAID_START) + len(MERMAID_START), text.index(MERMAID_END)
    doc.write_text(text[:start] + "\n" + match.group(0) + "\n" + text[end:], encoding="utf-8")
    print(f"pasted the dashboard's mermaid into {doc.relative_to(ROOT)}")


def main() -> int:

    from rich.markdown import Markdown

    from ifcoord.core.rows import task_rows
    from ifcoord.session.workspace import Workspace
    from ifcoord.views.dashboard import render_dashboard
    from ifcoord.views.terminal import board_view
    from ifcoord.views.watch import Watcher

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
        stale = ws.stale(snapshot)
        rows = task_rows(snapshot, stale)
        record(DOCS / "board.svg", "ifcoord board", 110, None, board_view(snapshot, rows))
        watcher = Watcher(ws)
        watcher.update()
        record(DOCS / "watch.svg", "ifcoord watch (80x24)", 80, 24, lambda c: watcher.frame(c))
        dashboard = render_dashboard(snapshot)
        record(DOCS / "dashboard.svg", "boards/README.md", 110, None, Markdown(dashboard))
        paste_mermaid(DOCS / "views.md", dashboard)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
