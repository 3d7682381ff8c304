"""`make demo` (python -m ifcoord.demo): four sessions share the example board on a local bare
remote, each an `ifcoord poll --json` process driven by a scripted worker that reports
milestones and completes its tasks, while a live view shows the board.

`ScriptedWorker` is also what the end-to-end tests use to play an agent.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ifcoord.git.history import LogEntry
    from ifcoord.models import Snapshot

DEMO_CONFIG = """\
# ifcoord demo: short times so that a whole board finishes in well under two minutes
poll_seconds: 1
heartbeat_seconds: 10
lease_seconds: 60
"""


def ifcoord_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "ifcoord", *args]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@dataclass
class ScriptedWorker:
    """Plays an agent: follows one `ifcoord poll --json` process and works what it is handed."""

    session: str
    clone: Path
    remote: str
    interval: float = 0.5
    step_seconds: tuple[float, float] = (0.1, 0.3)
    env: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    _busy: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, extra: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen(
            ifcoord_argv("poll", "--json", "--session", self.session, "--remote", self.remote,
                         "--interval", str(self.interval), *extra),
            cwd=self.clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **self.env},
        )  # fmt: skip
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        self._threads.append(reader)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                self.errors.append(f"not JSON: {line!r}")
                continue
            with self._lock:
                self.events.append(event)
            if event.get("event") in ("claimed", "working") and event.get("task"):
                self._work_on(event["task"])

    def _work_on(self, task: str) -> None:
        with self._lock:
            if task in self._busy:
                return
            self._busy.add(task)
        t = threading.Thread(target=self._do, args=(task,), daemon=True)
        t.start()
        self._threads.append(t)

    def _do(self, task: str) -> None:
        for pct in (25, 50, 75):
            time.sleep(random.uniform(*self.step_seconds))
            if not self._run("progress", task, str(pct), "--note", f"{pct}% done"):
                return
        time.sleep(random.uniform(*self.step_seconds))
        if self._run("complete", task, "--tests-passed", "3", "--tests-failed", "0"):
            self.completed.append(task)

    def _run(self, *args: str) -> bool:
        """One ifcoord command, as an agent runs it: exit 5 (remote busy) is tried again."""
        for _attempt in range(3):
            proc = subprocess.run(
                ifcoord_argv(*args, "--session", self.session, "--remote", self.remote, "--json"),
                cwd=self.clone, capture_output=True, text=True, env={**os.environ, **self.env}, timeout=120,
            )  # fmt: skip
            if proc.returncode != 5:
                break
            time.sleep(0.5)
        if proc.returncode != 0:
            self.errors.append(f"{' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc.returncode == 0

    def names(self) -> list[str]:
        with self._lock:
            return [e["event"] for e in self.events]

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM the loop (it marks the session offline), wait for it and the worker threads."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=timeout)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# -- the demo ---------------------------------------------------------------------------------------


def all_done(snapshot: Snapshot) -> bool:
    from ifcoord.core.lifecycle import FINISHED

    tasks = snapshot.tasks()
    return bool(tasks) and all(t.state in FINISHED for t in tasks.values())


def load_factor() -> float:
    """How many runnable processes share each core (1 on an idle machine)."""
    try:
        return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    except OSError:
        return 1.0


def main(sessions: int = 4, stall_limit: float = 60.0, time_limit: float = 1800.0) -> int:
    """Four sessions work the example boards to the end. It gives up only when the branch has not
    moved for `stall_limit` seconds (longer on a loaded machine, where every command is slower)
    or after `time_limit`: a slow machine finishes late rather than being called incomplete."""
    from rich.console import Console, Group
    from rich.live import Live

    from ifcoord.core.rows import task_rows
    from ifcoord.git.history import read_log
    from ifcoord.session.workspace import Workspace
    from ifcoord.views.terminal import board_view, session_rows, status_view

    console = Console()
    root_dir = Path(__file__).resolve().parents[2]
    boards = [root_dir / "boards" / "PHASE-0.md", root_dir / "boards" / "PHASE-1-TASK-BOARD.md"]
    work = Path(tempfile.mkdtemp(prefix="ifcoord-demo-"))
    workers: list[ScriptedWorker] = []
    started = time.monotonic()
    try:
        remote = work / "remote.git"
        git("init", "-q", "--bare", str(remote), cwd=work)
        admin = work / "admin"
        git("init", "-q", str(admin), cwd=work)
        (admin / "ifcoord.yaml").write_text(DEMO_CONFIG)
        args = ["init", "--remote", str(remote), "--config", "ifcoord.yaml"]
        for b in boards:
            args += ["--board", str(b)]
        subprocess.run(ifcoord_argv(*args), cwd=admin, check=True, capture_output=True)
        console.print(
            f"[bold]ifcoord demo[/]: {sessions} sessions, boards {', '.join(b.name for b in boards)}, "
            f"remote {remote}"
        )
        for i in range(1, sessions + 1):
            clone = work / f"session-{i}"
            git("init", "-q", str(clone), cwd=work)
            w = ScriptedWorker(f"session-{i}", clone, str(remote))
            w.start()
            workers.append(w)
        ws = Workspace(start=admin, remote=str(remote))
        state = ws.read()
        last_move, tip = time.monotonic(), state.commit
        # Live frames only on a terminal: in a pipe or a CI log they would pile up, and the
        # summary below prints the final board once anyway.
        live_or_not = Live(console=console, refresh_per_second=4, transient=True)
        with live_or_not if console.is_terminal else contextlib.nullcontext() as live:
            while time.monotonic() - started < time_limit:
                state = ws.read()
                if state.commit != tip:
                    last_move, tip = time.monotonic(), state.commit
                elif time.monotonic() - last_move > stall_limit * load_factor():
                    break  # nothing happened for too long: report what there is
                snap = state.snapshot
                stale = ws.stale(snap)
                if live is not None:
                    rows = task_rows(snap, stale)
                    live.update(Group(board_view(snap, rows), status_view(session_rows(snap, stale))))
                if all_done(snap):
                    break
                time.sleep(0.5)
        for w in workers:
            w.stop()
        state = ws.read()
        entries = read_log(ws.store, state.commit, None, 100000) if state.commit else []
        return summarize(console, state.snapshot, entries, workers, time.monotonic() - started)
    finally:
        for w in workers:
            w.kill()
        shutil.rmtree(work, ignore_errors=True)


def summarize(
    console: Console,
    snapshot: Snapshot,
    entries: list[LogEntry],
    workers: list[ScriptedWorker],
    elapsed: float,
) -> int:
    from ifcoord.core.rows import task_rows
    from ifcoord.views.terminal import board_view

    console.print(board_view(snapshot, task_rows(snapshot)))
    completions = Counter(e.task for e in entries if e.op == "complete")
    claims = [e for e in entries if e.op in ("claim", "reclaim")]
    tasks = snapshot.tasks()
    done_once = all(completions.get(t, 0) == 1 for t in tasks)
    filler_takers = sorted({
        w.session for w in workers for e in w.events if e["event"] == "claimed" and e.get("kind") == "filler"
    })  # fmt: skip
    switches = sorted(
        {(w.session, e["task"]) for w in workers for e in w.events if e["event"] == "switch-to-primary"}
    )
    errors = [f"{w.session}: {err}" for w in workers for err in w.errors]
    console.print(f"\n[bold]Summary[/] after {elapsed:.1f}s")
    console.print(
        f"  tasks: {len(tasks)}, done: {sum(t.state == 'done' for t in tasks.values())}, "
        f"each completed exactly once: {'yes' if done_once else 'NO'}"
    )
    console.print(f"  claims: {len(claims)}, commits on the branch: {len(entries)}")
    console.print(
        f"  sessions that took filler tasks while their primary tasks were blocked: "
        f"{', '.join(filler_takers) or 'none'}"
    )
    if switches:
        console.print(
            "  told to switch back to a primary task: " + ", ".join(f"{s} ({t})" for s, t in switches)
        )
    for err in errors:
        console.print(f"  [red]worker error[/] {err}")
    ok = done_once and all(t.state == "done" for t in tasks.values())
    console.print(
        "[bold green]demo finished: every task done exactly once[/]" if ok else "[bold red]demo incomplete[/]"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
