"""The one place ifcoord starts git: a fixed, non-interactive environment, no inherited GIT_* variables."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ifcoord.errors import UsageError

ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "true",
    "SSH_ASKPASS": "true",
    "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
    "LC_ALL": "C",
}


class GitFailed(Exception):
    """A git command exited non-zero; carries its output for the caller to classify."""

    def __init__(self, args: list[str], code: int, stdout: str, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} exited {code}: {stderr.strip()}")
        self.args_ = args
        self.code = code
        self.stdout = stdout
        self.stderr = stderr


class GitRunner:
    """Runs git in one repository with a fixed, non-interactive environment."""

    def __init__(self, git_dir: Path, work_dir: Path | None = None) -> None:
        self.git_dir = git_dir
        self.work_dir = work_dir
        self.calls = 0  # how many git processes this runner started (benchmarks read it)
        self.last_code = 0

    def run(self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 60.0) -> str:
        self.calls += 1
        cmd = ["git", f"--git-dir={self.git_dir}", *args]
        env = {**os.environ, **ENV}
        try:
            proc = subprocess.run(
                cmd, input=input, capture_output=True, env=env, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise GitFailed(list(args), 124, "", f"timed out after {timeout:.0f}s") from exc
        self.last_code = proc.returncode
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            raise GitFailed(list(args), proc.returncode, out, err)
        return out


def find_repository(start: Path) -> tuple[Path, Path | None]:
    """The git dir (common dir for worktrees) and top-level of the clone containing `start`."""
    env = {**os.environ, **ENV}
    proc = subprocess.run(
        ["git", "rev-parse", "--git-common-dir", "--show-toplevel"],
        cwd=start,
        capture_output=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        # A bare repository has no top level; try again without it.
        proc = subprocess.run(
            ["git", "rev-parse", "--git-common-dir"],
            cwd=start,
            capture_output=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            raise UsageError(
                f"{start} is not inside a git repository",
                hint="run ifcoord inside a clone of your project (views like board also take --dir FOLDER)",
            )
    lines = proc.stdout.decode().splitlines()
    git_dir = (start / lines[0]).resolve()
    top = Path(lines[1]).resolve() if len(lines) > 1 else None
    return git_dir, top
