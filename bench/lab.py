"""Real repositories for the benchmarks: an isolated git config, bare remotes, `git daemon` on
127.0.0.1, clients' clones, generated boards, and long histories built with `git fast-import`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import IFCOORD, git, run


def board_text(phase: int, tasks: int, prefix: str = "T") -> str:
    """A board of independent open tasks, as a person would write it."""
    parts = [f"# Phase {phase}: benchmark board {phase}\n\nGenerated tasks, no dependencies.\n"]
    for i in range(1, tasks + 1):
        parts.append(
            f"## {prefix}{phase}.{i}: Task {i} of phase {phase}\n\n"
            "**Status:** open\n**Priority:** MEDIUM\n**Depends on:** None\n**Estimate:** 1h\n"
            f"**Deliverable:** `src/mod_{phase}_{i}.py`\n\n"
            "**Milestones:**\n- [ ] 50% - First half\n- [ ] 100% - Tests pass\n"
        )
    return "\n".join(parts)


def status_text(session: str) -> str:
    return (
        f"session: {session}\nstatus: idle\ncurrent_task: null\nepoch: null\nprogress: 0\n"
        "milestone: null\nblocked_on: null\nlast_poll: 2020-01-01T00:00:00Z\n"
    )


class Lab:
    """A scratch folder with its own HOME and git config; everything is removed on close."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ifcoord-bench-"))
        self.keep = keep
        self.home = self.root / "home"
        self.home.mkdir()
        (self.home / ".gitconfig").write_text(
            "[init]\n\tdefaultBranch = main\n[protocol]\n\tversion = 2\n"
            "[user]\n\tname = Bench\n\temail = bench@example.invalid\n"
        )
        self._daemons: list[subprocess.Popen[bytes]] = []
        self._saved_env = dict(os.environ)
        # In-process scenarios (Workspace, PollLoop) and every child see the same isolated git.
        # Commands run in their own processes unless a block of `with lab.server():` says
        # otherwise; a server of the person running the bench is never used.
        os.environ.update({"HOME": str(self.home), "GIT_CONFIG_NOSYSTEM": "1", "IFCOORD_SERVER": "0"})
        for var in (
            "IFCOORD_SESSION",
            "IFCOORD_REMOTE",
            "IFCOORD_BRANCH",
            "IFCOORD_DEADLINE",
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_TRACE",
        ):
            os.environ.pop(var, None)
        self._n = 0

    def path(self, name: str) -> Path:
        self._n += 1
        return self.root / f"{self._n:03d}-{name}"

    def close(self) -> None:
        for proc in self._daemons:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        os.environ.clear()
        os.environ.update(self._saved_env)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- remotes ---------------------------------------------------------------------------------

    def bare(self, name: str = "remote", where: Path | None = None) -> Path:
        path = (where / f"{name}.git") if where else self.path(f"{name}.git")
        git("init", "-q", "--bare", str(path))
        return path

    @contextmanager
    def daemon(self) -> Iterator[tuple[str, Path]]:
        """`git daemon` on 127.0.0.1 serving a folder; yields (url prefix, folder)."""
        base = self.path("served")
        base.mkdir()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # --verbose: each request is a line of the log, so that round trips are counted at the
        # server, whoever made them (git, or ifcoord without git: docs/protocol.md, section 2)
        log = open(self.path(f"daemon-{port}.log"), "wb")  # noqa: SIM115 - closed with the daemon
        proc = subprocess.Popen(
            ["git", "daemon", "--verbose", "--export-all", "--enable=receive-pack", "--reuseaddr",
             f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}",
             "--max-connections=128", str(base)],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        log.close()  # the daemon holds its own copy
        self._daemons.append(proc)
        prefix = f"git://127.0.0.1:{port}"
        probe = self.bare("probe", base)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if run(["git", "ls-remote", f"{prefix}/{probe.name}"], check=False).returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("git daemon did not start")
        try:
            yield prefix, base
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            self._daemons.remove(proc)

    def daemon_requests(self) -> int:
        """Requests the lab's git daemons have served so far (upload-pack: ls-remote, fetch;
        receive-pack: push), from their logs."""
        return sum(
            log.read_bytes().count(b"] Request ") for log in self.root.glob("*-daemon-*.log") if log.is_file()
        )

    @contextmanager
    def server(self) -> Iterator[str]:
        """`ifcoord serve` for this lab: one-shot commands started inside the block are served
        by it (docs/agents.md, section 6), as an agent's are by its running `poll`."""
        from testing.serving import start_server, stop_server

        name = f"bench-{os.getpid()}-{self.root.name}"
        proc = start_server([IFCOORD], name, timeout=30)
        saved = os.environ["IFCOORD_SERVER"]
        os.environ["IFCOORD_SERVER"] = name
        try:
            yield name
        finally:
            os.environ["IFCOORD_SERVER"] = saved
            stop_server(proc)

    # -- clients ---------------------------------------------------------------------------------

    def clone(self, remote: str, name: str = "clone") -> Path:
        """A user's clone: one commit on main, `origin` pointing at the remote."""
        where = self.path(name)
        git("init", "-q", str(where))
        git("remote", "add", "origin", remote, cwd=where)
        (where / "app.py").write_text("print('hello')\n")
        git("add", "app.py", cwd=where)
        git("commit", "-q", "-m", "initial", cwd=where)
        return where

    def light_clone(self, remote: str, name: str) -> Path:
        """A clone with no commit of its own (for many racing sessions: cheaper to make)."""
        where = self.path(name)
        git("init", "-q", str(where))
        git("remote", "add", "origin", remote, cwd=where)
        return where

    def boards_folder(self, files: int, tasks_per_file: int, statuses: int = 0) -> Path:
        folder = self.path("boards")
        (folder / "boards").mkdir(parents=True)
        for phase in range(files):
            (folder / "boards" / f"PHASE-{phase}.md").write_text(board_text(phase, tasks_per_file))
        if statuses:
            (folder / "status").mkdir()
            for i in range(statuses):
                (folder / "status" / f"idle-{i:03d}.yaml").write_text(status_text(f"idle-{i:03d}"))
        return folder

    def init_branch(self, clone: Path, boards: Path) -> None:
        files = sorted((boards / "boards").glob("*.md"))
        args = [a for f in files for a in ("--board", str(f))]
        run([IFCOORD, "init", *args], cwd=clone)

    def fast_import_branch(
        self, bare: Path, boards: Path, history: int, branch: str = "ifcoord", config: str | None = None
    ) -> None:
        """The branch as `history` small commits touching a filler file, then one commit
        holding the boards, the config and the status files (like a long-lived branch)."""
        from ifcoord.files.config import render_default_config

        stamp = 1_600_000_000
        out = bytearray()
        for i in range(history):
            msg = f"filler {i}\n".encode()
            body = f"{i}\n".encode()
            out += (
                f"commit refs/heads/{branch}\ncommitter Bench <bench@example.invalid> {stamp + i} +0000\n"
                f"data {len(msg)}\n"
            ).encode() + msg
            out += f"M 100644 inline filler.txt\ndata {len(body)}\n".encode() + body + b"\n"
        text = render_default_config() if config is None else config
        files = {"ifcoord.yaml": text.encode(), "status/.gitkeep": b""}
        for f in sorted(boards.rglob("*")):
            if f.is_file():
                files[f.relative_to(boards).as_posix()] = f.read_bytes()
        msg = b"ifcoord: init\n\nIfcoord-Op: init\n"
        out += (
            f"commit refs/heads/{branch}\ncommitter Bench <bench@example.invalid> {stamp + history} +0000\n"
            f"data {len(msg)}\n"
        ).encode() + msg
        for path, data in files.items():
            out += f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"
        out += b"done\n"
        run(["git", f"--git-dir={bare}", "fast-import", "--quiet", "--done"], input=bytes(out), timeout=600)
