"""The views for people, end to end over real remotes: dashboard, graph, brief, task add, watch."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import EXAMPLE_BOARDS, FIXTURE_BOARDS, git, make_clone, run_ifcoord

from ifcoord.core.snapshot import build_snapshot
from ifcoord.views.dashboard import DASHBOARD_MARK, render_dashboard

HUMAN = [sys.executable, "-m", "ifcoord"]


def run_human(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUMAN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def fixture_board(name: str) -> Path:
    path = FIXTURE_BOARDS / name
    if not path.is_file():
        pytest.skip(f"fixture board {path} is missing")
    return path


def setup_branch(remote: Path | str, tmp_path: Path, *boards: Path) -> Path:
    admin = make_clone(remote, tmp_path / "admin")
    args = ["init", "--remote", str(remote)]
    for b in boards:
        args += ["--board", str(b)]
    done = run_ifcoord(*args, cwd=admin)
    assert done.returncode == 0, done.stderr
    return admin


def show(bare: Path, path: str, rev: str = "ifcoord") -> str:
    return git("show", f"{rev}:{path}", cwd=bare)


def tree_files(bare: Path, rev: str = "ifcoord") -> dict[str, bytes]:
    names = git("ls-tree", "-r", "--name-only", rev, cwd=bare).splitlines()
    return {
        n: subprocess.run(["git", "show", f"{rev}:{n}"], cwd=bare, capture_output=True, check=True).stdout
        for n in names
    }


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc


# -- the dashboard on the branch ------------------------------------------------------------------


def test_dashboard_on_the_branch_follows_claims_and_completions(bare_remote: Path, tmp_path: Path) -> None:
    admin = setup_branch(bare_remote, tmp_path, EXAMPLE_BOARDS / "PHASE-0.md")
    ok(run_ifcoord("claim", "T0.1", "--session", "session-1", cwd=admin))
    ok(run_ifcoord("claim", "T0.2", "--session", "session-2", cwd=admin))
    ok(run_ifcoord("complete", "T0.1", "--session", "session-1", cwd=admin))
    ok(run_ifcoord("progress", "T0.2", "50", "--session", "session-2", cwd=admin))

    text = show(bare_remote, "boards/README.md")
    assert text.splitlines()[0] == DASHBOARD_MARK
    assert "### Phase 0: 1/11 done" in text
    assert "| T0.1 | Project skeleton and CI | ✅ done | session-1 | `██████████ 100%` |  |" in text
    assert (
        "| **T0.2** ★ | Storage schema and migrations | in progress | session-2 | `█████░░░░░  50%` |  |"
        in text
    )
    assert "| T0.3 | Slug generator | ▶ ready |  |" in text  # T0.1 is done
    assert "**Ready to claim:** T0.3, T0.7, F0.1, F0.2, F0.3" in text
    assert re.search(r"\| session-1 \| idle \|  \|  \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \|  \|", text)
    assert re.search(
        r"\| session-2 \| working \| T0.2 \| 50% - Migration script applies to an empty SQLite "
        r"file \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \| T0.2 \|",
        text,
    )
    assert "```mermaid\nflowchart LR\n" in text and "  T0_1 --> T0_3" in text
    # rewritten in the same commit as the operation, and exactly what the branch's content renders to
    assert "boards/README.md" in git("show", "--name-only", "--format=", "ifcoord", cwd=bare_remote).split()
    assert render_dashboard(build_snapshot(tree_files(bare_remote))).rstrip("\n") == text


def test_init_writes_the_dashboard_in_its_first_commit(bare_remote: Path, tmp_path: Path) -> None:
    setup_branch(bare_remote, tmp_path, EXAMPLE_BOARDS / "PHASE-0.md")
    assert git("rev-list", "--count", "ifcoord", cwd=bare_remote).strip() == "1"
    text = show(bare_remote, "boards/README.md")
    assert text.splitlines()[0] == DASHBOARD_MARK and "### Phase 0: 0/11 done" in text
    assert render_dashboard(build_snapshot(tree_files(bare_remote))).rstrip("\n") == text


def test_dashboard_false_in_the_config_writes_none(bare_remote: Path, tmp_path: Path) -> None:
    # init writes the dashboard unless the config it starts with says not to (issue 16)
    config = tmp_path / "ifcoord.yaml"
    config.write_text("dashboard: false\n")
    admin = make_clone(bare_remote, tmp_path / "admin")
    ok(run_ifcoord("init", "--board", str(EXAMPLE_BOARDS / "PHASE-0.md"), "--config", str(config), cwd=admin))
    assert "boards/README.md" not in tree_files(bare_remote)
    ok(run_ifcoord("claim", "T0.1", "--session", "session-1", cwd=admin))
    ok(run_human("task", "add", "T0.9", "Another", cwd=admin))
    assert "boards/README.md" not in tree_files(bare_remote)


# -- graph and brief ------------------------------------------------------------------------------


def test_graph_command_reads_the_branch_or_a_folder(bare_remote: Path, tmp_path: Path) -> None:
    board = fixture_board("p2-atomic-task-list.md")
    admin = setup_branch(bare_remote, tmp_path, board)
    mermaid = ok(run_human("graph", cwd=admin)).stdout
    assert mermaid.startswith("flowchart LR\n")
    for edge in ("P2A_1 --> P2A_2", "P2A_1 --> P2C_1", "P2A_2 --> P2C_1", "P2B_1 --> P2E_3"):
        assert f"  {edge}\n" in mermaid
    data = json.loads(ok(run_human("graph", "--json", cwd=admin)).stdout)
    assert {"from": "P2A.2", "to": "P2C.1"} in data["edges"]
    assert data["critical_path"] == ["P2E.1", "P2E.2", "P2E.3", "P2E.4", "P2G.1", "P2G.2"]
    folder = tmp_path / "files" / "boards"
    folder.mkdir(parents=True)
    (folder / "p2.md").write_bytes(board.read_bytes())
    text = ok(run_human("graph", "--format", "text", "--dir", str(folder.parent), cwd=admin)).stdout
    assert "critical path: P2E.1 -> P2E.2 -> P2E.3 -> P2E.4 -> P2G.1 -> P2G.2" in text
    dot = ok(run_human("graph", "--format", "dot", cwd=admin)).stdout
    assert '"P2A.1" -> "P2A.2"' in dot
    bad = run_human("graph", "--format", "png", cwd=admin)
    assert bad.returncode == 2 and "unknown graph format" in bad.stderr


def test_brief_for_session_4_from_the_imported_fixture(bare_remote: Path, tmp_path: Path) -> None:
    admin = setup_branch(bare_remote, tmp_path, fixture_board("session-4-instructions.md"))
    out = tmp_path / "BRIEF.md"
    data = json.loads(
        ok(run_human("brief", "session-4-sip", "--output", str(out), "--json", cwd=admin)).stdout
    )
    assert data["primary"] == ["P0.1.5", "P0.2.6", "P0.3.6"]
    assert data["filler"] == ["F4.1", "F4.2", "F4.3", "F4.4", "F4.5"]
    text = out.read_text(encoding="utf-8")
    assert text == data["markdown"]
    assert text.startswith("# Brief for session-4-sip\n")
    for tid in ("P0.1.5", "P0.2.6", "P0.3.6", "F4.1", "F4.2", "F4.3", "F4.4", "F4.5"):
        assert f"\n### {tid}: " in text
    assert "P0.1.4 (not on any board, unmet)" in text
    assert "P0.3.5 (not on any board, unmet)" in text
    assert "`ifcoord poll --session session-4-sip --json`" in text
    printed = ok(run_human("brief", "session-4-sip", cwd=admin)).stdout
    assert printed == text
    bad = run_human("brief", "Not A Name", cwd=admin)
    assert bad.returncode == 2


# -- task add -------------------------------------------------------------------------------------


def test_task_add_writes_the_board_and_the_dashboard_in_one_commit(bare_remote: Path, tmp_path: Path) -> None:
    admin = setup_branch(
        bare_remote, tmp_path, EXAMPLE_BOARDS / "PHASE-0.md", EXAMPLE_BOARDS / "PHASE-1-TASK-BOARD.md"
    )
    done = ok(
        run_human(
            "task",
            "add",
            "P1.6",
            "Audit logging",
            "--depends-on",
            "P1.1,T0.4",
            "--priority",
            "HIGH",
            "--estimate",
            "2h",
            "--deliverable",
            "src/shorty/audit.py",
            "--json",
            cwd=admin,
        )
    )
    data = json.loads(done.stdout)
    assert data["board"] == "boards/PHASE-1-TASK-BOARD.md"  # the last phase's board
    assert data["task"]["depends_on"] == ["P1.1", "T0.4"] and data["task"]["kind"] == "primary"
    message = git("log", "-1", "--format=%B", "ifcoord", cwd=bare_remote)
    assert message.splitlines()[0] == "ifcoord: add P1.6 by human"
    assert "Ifcoord-Op: add" in message and "Ifcoord-Task: P1.6" in message
    changed = git("show", "--name-only", "--format=", "ifcoord", cwd=bare_remote).split()
    assert sorted(changed) == ["boards/PHASE-1-TASK-BOARD.md", "boards/README.md"]
    board = show(bare_remote, "boards/PHASE-1-TASK-BOARD.md")
    # written in the board's dialect: bold headings at its level, its status words
    assert "#### **P1.6: Audit logging**\n**Status:** NOT STARTED\n**Priority:** HIGH\n" in board
    assert "| P1.6 | Audit logging | open |" in show(bare_remote, "boards/README.md")
    assert json.loads(ok(run_ifcoord("show", "P1.6", "--json", cwd=admin)).stdout)["task"]["estimate"] == "2h"


def test_task_add_keeps_primary_tasks_out_of_the_filler_section(bare_remote: Path, tmp_path: Path) -> None:
    admin = setup_branch(bare_remote, tmp_path, EXAMPLE_BOARDS / "PHASE-0.md")
    ok(run_human("task", "add", "T0.9", "Backups", "--board", "PHASE-0.md", "--for", "session-9", cwd=admin))
    ok(run_human("task", "add", "F0.4", "Spelling", "--kind", "filler", "--by", "session-2", cwd=admin))
    tasks = {t["id"]: t for t in json.loads(ok(run_ifcoord("board", "--json", cwd=admin)).stdout)["tasks"]}
    assert tasks["T0.9"]["kind"] == "primary" and tasks["F0.4"]["kind"] == "filler"
    board = show(bare_remote, "boards/PHASE-0.md")
    assert (
        board.index("## T0.9: Backups") < board.index("## Filler tasks") < board.index("### F0.4: Spelling")
    )
    assert "**Session:** session-9" in board
    assert git("log", "-1", "--format=%s", "ifcoord", cwd=bare_remote) == "ifcoord: add F0.4 by session-2"


def test_task_add_refuses_a_duplicate_id_and_an_unknown_board(bare_remote: Path, tmp_path: Path) -> None:
    admin = setup_branch(bare_remote, tmp_path, EXAMPLE_BOARDS / "PHASE-0.md")
    tip = git("rev-parse", "ifcoord", cwd=bare_remote)
    dup = run_human("task", "add", "t0.3", "Again", "--json", cwd=admin)
    assert dup.returncode == 2
    assert "T0.3 is already on boards/PHASE-0.md" in json.loads(dup.stdout)["error"]["message"]
    unknown = run_human("task", "add", "T0.9", "Elsewhere", "--board", "PHASE-7.md", cwd=admin)
    assert unknown.returncode == 2 and "no board PHASE-7.md" in unknown.stderr
    bad_id = run_human("task", "add", "nodigits", "Title", cwd=admin)
    assert bad_id.returncode == 2
    assert git("rev-parse", "ifcoord", cwd=bare_remote) == tip


def test_task_add_on_a_branch_without_boards_starts_phase_0(bare_remote: Path, tmp_path: Path) -> None:
    admin = setup_branch(bare_remote, tmp_path)
    ok(run_human("task", "add", "T1", "First task", cwd=admin))
    assert show(bare_remote, "boards/PHASE-0.md").startswith("# Phase 0\n")
    tasks = json.loads(ok(run_ifcoord("board", "--json", cwd=admin)).stdout)["tasks"]
    assert [(t["id"], t["phase"], t["ready"]) for t in tasks] == [("T1", "0", True)]


def test_task_add_under_contention_keeps_every_task(bare_remote: Path, tmp_path: Path) -> None:
    admin = setup_branch(bare_remote, tmp_path, EXAMPLE_BOARDS / "PHASE-0.md")
    commands = [
        (
            [
                *HUMAN,
                "task",
                "add",
                f"N{i}.1",
                f"New task {i}",
                "--board",
                "PHASE-0.md",
                "--by",
                f"adder-{i}",
            ],
            make_clone(bare_remote, tmp_path / f"adder-{i}"),
        )
        for i in range(8)
    ]
    commands.append(
        (
            [sys.executable, "-m", "ifcoord", "claim", "T0.1", "--session", "claimer"],
            make_clone(bare_remote, tmp_path / "claimer"),
        )
    )
    procs = [
        subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args, cwd in commands
    ]

    def collect(p: subprocess.Popen[str]) -> tuple[int, str]:
        _, err = p.communicate(timeout=60)
        return p.returncode, err

    with ThreadPoolExecutor(len(procs)) as pool:
        results = list(pool.map(collect, procs))
    assert [code for code, _ in results] == [0] * 9, results
    tasks = {t["id"]: t for t in json.loads(ok(run_ifcoord("board", "--json", cwd=admin)).stdout)["tasks"]}
    assert {f"N{i}.1" for i in range(8)} <= set(tasks)
    assert len(tasks) == 11 + 8
    assert tasks["T0.1"]["owner"] == "claimer"
    subjects = git("log", "--format=%s", "ifcoord", cwd=bare_remote).splitlines()
    assert sum(s.startswith("ifcoord: add ") for s in subjects) == 8
    dashboard = show(bare_remote, "boards/README.md")
    assert all(f"| N{i}.1 |" in dashboard for i in range(8)) and "| claimer |" in dashboard


# -- watch ----------------------------------------------------------------------------------------


def _default_signals() -> None:
    """Ctrl-C and Ctrl-\\ as a terminal emulator starts a program: at their defaults. A suite run
    as a background job of a script inherits them ignored (POSIX shells ignore both in the
    commands of an asynchronous list), and a program started so ignores the tests' SIGINT, as
    it should: the three runs of the suite started that way all failed both watch tests."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class Terminal:
    """A process on a pseudo-terminal, its output collected as it comes."""

    def __init__(self, args: list[str], cwd: Path, size: tuple[int, int] | None = None) -> None:
        master, slave = os.openpty()
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "160", "LINES": "60"}
        if size is not None:  # a real window size, as a terminal emulator sets it
            import fcntl
            import struct
            import termios

            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
            env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
        self.proc = subprocess.Popen(
            args, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
            preexec_fn=_default_signals,
        )  # fmt: skip
        os.close(slave)
        self.master = master
        self.output = b""

    def read_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    return
                if not chunk:
                    return
                self.output += chunk

    def diagnose(self) -> str:
        """What the process is doing, for a failure message: its state, signal masks and
        dispositions, where it sleeps in the kernel, and its children."""
        pid = self.proc.pid
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            wchan = Path(f"/proc/{pid}/wchan").read_text()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError as exc:
            return f"pid {pid}: {exc}"
        keep = [
            ln
            for ln in status
            if ln.split(":")[0] in ("State", "SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd", "Threads")
        ]
        return f"pid {pid} wchan {wchan!r} children {children!r} " + "; ".join(keep)

    def text(self) -> str:
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.output.decode("utf-8", "replace"))

    def wait_for(self, needle: str, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if needle in self.text():
                return True
            self.read_for(0.1)
        return needle in self.text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


# How long `watch` may take to end after SIGINT: at once on a quiet machine, longer on a loaded one.
EXIT_WAIT = 30.0


def test_watch_redraws_when_the_tip_moves_and_exits_cleanly_on_sigint(
    bare_remote: Path, tmp_path: Path
) -> None:
    admin = setup_branch(bare_remote, tmp_path, EXAMPLE_BOARDS / "PHASE-0.md")
    other = make_clone(bare_remote, tmp_path / "other")
    term = Terminal([*HUMAN, "watch"], cwd=admin)
    try:
        assert term.wait_for("T0.8", 10), term.text()[-2000:]
        assert b"\x1b[?1049h" not in term.output  # drawn in place, not on the alternate screen
        assert "watcher-7" not in term.text()
        ok(run_ifcoord("claim", "T0.2", "--session", "watcher-7", cwd=other))
        assert term.wait_for("watcher-7", 8), term.text()[-2000:]
        os.kill(term.proc.pid, signal.SIGINT)
        started = time.monotonic()
        while term.proc.poll() is None and time.monotonic() - started < EXIT_WAIT:
            term.read_for(0.1)
        term.read_for(0.2)
        assert term.proc.returncode == 0, term.diagnose() + "\n" + term.text()[-1500:]
        # the terminal is given back with the last frame on it: nothing cleared, cursor shown
        assert term.output.rstrip().endswith(b"\x1b[?25h")
        assert b"\x1b[2J" not in term.output and b"\x1b[?1049l" not in term.output
        assert "watcher-7" in last_frame(term.output)
    finally:
        term.close()


def last_frame(output: bytes) -> str:
    """The text the terminal shows at the end: what follows the last in-place redraw (rich's
    Live moves the cursor up and erases each line of the previous frame before drawing)."""
    tail = output.rsplit(b"\x1b[2K", 1)[-1].decode("utf-8", "replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", tail).replace("\r", "")


def test_watch_fits_an_80x24_terminal_pages_the_tasks_and_leaves_its_last_frame(
    bare_remote: Path, tmp_path: Path
) -> None:
    admin = setup_branch(bare_remote, tmp_path, EXAMPLE_BOARDS / "PHASE-0.md")
    ok(run_ifcoord("claim", "T0.1", "--session", "session-1", cwd=admin))
    ok(
        run_ifcoord(
            "block",
            "T0.1",
            "--on",
            "T0.2",
            "--reason",
            "needs the schema",
            "--session",
            "session-1",
            cwd=admin,
        )
    )
    term = Terminal([*HUMAN, "watch", "--interval", "0.2"], cwd=admin, size=(24, 80))
    try:
        assert term.wait_for("page 1/", 15), term.text()[-2000:]
        os.kill(term.proc.pid, signal.SIGINT)
        started = time.monotonic()
        while term.proc.poll() is None and time.monotonic() - started < EXIT_WAIT:
            term.read_for(0.1)
        term.read_for(0.2)
        assert term.proc.returncode == 0, term.diagnose() + "\n" + term.text()[-1500:]
        frame = last_frame(term.output)
        lines = frame.rstrip("\n").split("\n")
        assert len(lines) <= 24, frame
        assert max(len(line) for line in lines) <= 80, frame
        assert lines[0].startswith("ifcoord watch")
        # sessions and what needs attention come before the task rows, which are paged
        assert "session-1" in frame and "⚠ T0.1 blocked on T0.2: needs the schema" in frame
        assert re.search(r"tasks 1-\d+ of \d+, page 1/\d", frame), frame
        assert frame.index("⚠ T0.1") < frame.index("Progress")
        assert re.search(r"░+ +0%", frame)  # the Progress column is whole at 80 columns
        assert b"\x1b[?1049h" not in term.output and b"\x1b[2J" not in term.output
    finally:
        term.close()


def test_watch_not_on_a_terminal_prints_one_plain_frame_and_exits(bare_remote: Path, tmp_path: Path) -> None:
    admin = setup_branch(bare_remote, tmp_path, EXAMPLE_BOARDS / "PHASE-0.md")
    done = ok(run_human("watch", cwd=admin, timeout=30))
    assert "\x1b[" not in done.stdout
    assert done.stdout.count("ifcoord watch") == 1
    assert "T0.8" in done.stdout
