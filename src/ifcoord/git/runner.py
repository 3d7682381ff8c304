"""The one place ifcoord starts git: a fixed, non-interactive environment, no inherited GIT_* variables.

Run from a git hook (or any shell that exported them), `GIT_DIR`, `GIT_INDEX_FILE`,
`GIT_OBJECT_DIRECTORY`, `GIT_WORK_TREE` and friends would point ifcoord's plumbing at the user's
repository or index; like pre-commit's `no_git_env`, every `GIT_*` variable is dropped except
the few that only say how to reach a remote or which config to read.

Git children run in their own process group: Ctrl-C sent to a terminal's foreground group
(`ifcoord poll` stopping) reaches ifcoord, which finishes its step and says goodbye, and not
the git process it is waiting for.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ifcoord.errors import UsageError

# Kept from the caller's environment: how to reach remotes (ssh command, proxies set by the
# user's git) and which config files to read; nothing that names a repository, index or tree.
KEPT_GIT_VARIABLES = frozenset(
    {
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_EXEC_PATH",
        "GIT_HTTP_LOW_SPEED_LIMIT",
        "GIT_HTTP_LOW_SPEED_TIME",
        "GIT_SSL_NO_VERIFY",
        "GIT_SSL_CAINFO",
        "GIT_TRACE",
        "GIT_TRACE_PACKET",
        "GIT_CURL_VERBOSE",
    }
)

FIXED = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "true",
    "SSH_ASKPASS": "true",
    "LC_ALL": "C",
}


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for every git process ifcoord starts (GitPython's included)."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("GIT_") or k in KEPT_GIT_VARIABLES}
    env.update(FIXED)
    ssh = env.get("GIT_SSH_COMMAND", "ssh")
    if "BatchMode" not in ssh and "GIT_SSH" not in env:
        # Never wait for a password or a host-key question nobody will answer.
        env["GIT_SSH_COMMAND"] = f"{ssh} -o BatchMode=yes"
    return env


def stripped_variables(base: Mapping[str, str] | None = None) -> list[str]:
    """The GIT_* variables `git_env` drops (GitPython's own environment is cleaned of them)."""
    source = os.environ if base is None else base
    return [k for k in source if k.startswith("GIT_") and k not in KEPT_GIT_VARIABLES and k not in FIXED]


class GitFailed(Exception):
    """A git command exited non-zero; carries its output for the caller to classify."""

    def __init__(self, args: list[str], code: int, stdout: str, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} exited {code}: {stderr.strip()}")
        self.args_ = args
        self.code = code
        self.stdout = stdout
        self.stderr = stderr


def run_git(
    args: list[str],
    *,
    cwd: Path | None = None,
    input: bytes | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[bytes]:
    """Start one git process with ifcoord's environment, in its own process group."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=input,
            capture_output=True,
            env=git_env(),
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise GitFailed(list(args), 124, "", f"timed out after {timeout:.0f}s") from exc


class GitRunner:
    """Runs git in one repository with a fixed, non-interactive environment."""

    def __init__(self, git_dir: Path, work_dir: Path | None = None) -> None:
        self.git_dir = git_dir
        self.work_dir = work_dir
        self.calls = 0  # how many git processes this runner started (benchmarks read it)
        self.last_code = 0

    def run(self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 60.0) -> str:
        self.calls += 1
        proc = run_git([f"--git-dir={self.git_dir}", *args], input=input, timeout=timeout)
        self.last_code = proc.returncode
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            raise GitFailed(list(args), proc.returncode, out, err)
        return out


def find_repository(start: Path) -> tuple[Path, Path | None]:
    """The git dir (common dir for worktrees) and top-level of the clone containing `start`."""
    proc = run_git(["rev-parse", "--git-common-dir", "--show-toplevel"], cwd=start)
    if proc.returncode != 0:
        # A bare repository has no top level; try again without it.
        proc = run_git(["rev-parse", "--git-common-dir"], cwd=start)
        if proc.returncode != 0:
            raise UsageError(
                f"{start} is not inside a git repository",
                hint="run ifcoord inside a clone of your project (views like board also take --dir FOLDER)",
            )
    lines = proc.stdout.decode().splitlines()
    git_dir = (start / lines[0]).resolve()
    top = Path(lines[1]).resolve() if len(lines) > 1 else None
    return git_dir, top
