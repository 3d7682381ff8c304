"""A coordination branch written with plain git, the way a careless person pushes, and ifcoord
run in-process against a clone of it (fast enough for many cases per test)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


@dataclass
class Result:
    code: int
    out: str
    err: str


def ifcoord(*args: str, cwd: Path) -> Result:
    """`ifcoord ARGS` in this process (cli.app.run), with cwd, stdout and stderr captured."""
    from ifcoord.cli.app import run

    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(list(args))
    finally:
        os.chdir(old)
    return Result(code, out.getvalue(), err.getvalue())


class HandBranch:
    """The `ifcoord` branch of a bare remote, edited through a person's own clone with git."""

    def __init__(self, remote: Path, where: Path) -> None:
        self.remote = remote
        self.work = where / "person"
        git("init", "-q", "-b", "ifcoord", str(self.work), cwd=where)
        git("remote", "add", "origin", str(remote), cwd=self.work)
        self.pushed = False

    def write(self, files: dict[str, bytes | str | None], message: str = "edit by hand") -> str:
        """Write (None deletes) the files, commit as the person, push; the new tip."""
        if self.pushed:
            git("fetch", "-q", "origin", "ifcoord", cwd=self.work)
            git("reset", "-q", "--hard", "FETCH_HEAD", cwd=self.work)
        for path, data in files.items():
            target = self.work / path
            if data is None:
                git("rm", "-q", "-r", "--cached", path, cwd=self.work)
                if target.is_symlink() or target.is_file():
                    target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.encode() if isinstance(data, str) else data)
            git("add", path, cwd=self.work)
        return self.commit(message)

    def symlink(self, path: str, points_to: str) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(points_to)
        git("add", path, cwd=self.work)

    def gitlink(self, path: str) -> None:
        git("update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},{path}", cwd=self.work)

    def commit(self, message: str) -> str:
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "-q", "-f", "origin", "HEAD:refs/heads/ifcoord", cwd=self.work)
        self.pushed = True
        return git("rev-parse", "HEAD", cwd=self.work)

    def show(self, path: str) -> bytes:
        return subprocess.run(
            ["git", "show", f"ifcoord:{path}"], cwd=self.remote, capture_output=True, check=True
        ).stdout

    def ls(self, path: str) -> str:
        """`git ls-tree` of one path on the remote branch (mode, type, sha, name)."""
        return git("ls-tree", "ifcoord", "--", path, cwd=self.remote)


BOARD = """\
# Phase 0

## T-1: First
**Status:** open
**Priority:** HIGH

## T-2: Second
**Status:** open
**Depends on:** T-1

## T-3: Third
**Status:** open
"""


def status_yaml(session: str, when: str = "2099-01-01T00:00:00Z", **extra: str) -> str:
    lines = [f"session: {session}", "status: working", f"last_poll: {when}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"
