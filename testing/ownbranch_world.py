"""Own-branch worlds for tests and the checker: a remote that lets sessions push only their own
branch, a coordination branch in own-branch mode, session clones, an arbiter's clone, readers.

Not shipped. Everything is real git over real remotes (a bare repository with a pre-receive hook
here; tests/servers_gitolite.py for a real server with per-key rules).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HOOK = """#!/bin/sh
# Only the arbiter may push the coordination branch; sessions push only claude/<their name>.
while read old new ref; do
  if [ "$ref" = "refs/heads/ifcoord" ] && [ "$IFCOORD_ROLE" != "arbiter" ]; then
    echo "sessions may push only their own branch" >&2; exit 1
  fi
  if [ -n "$IFCOORD_SESSION_BRANCH" ] && [ "$ref" != "refs/heads/$IFCOORD_SESSION_BRANCH" ]; then
    echo "session pushed $ref, not its own branch" >&2; exit 1
  fi
  if [ "$BLOCK_SESSION_PUSHES" = "1" ]; then echo "pushes paused" >&2; exit 1; fi
done
"""
ARBITER_ENV = {"IFCOORD_ROLE": "arbiter"}


def git(*args: str, cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def ifcoord(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    argv = [sys.executable, "-m", "ifcoord", *args]
    return subprocess.run(argv, cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)


def config_text(
    lease: float = 600, skew: float = 120, poll: float = 0.3, heartbeat: float | None = None
) -> str:
    # A heartbeat must come well within the lease (ifcoord.yaml is validated so).
    heartbeat = min(120.0, lease / 3) if heartbeat is None else heartbeat
    return (
        f'mode: own-branch\nsession_branches: "claude/*"\npoll_seconds: {poll}\n'
        f"heartbeat_seconds: {heartbeat}\nlease_seconds: {lease}\nskew_seconds: {skew}\n"
    )


def guarded_remote(where: Path) -> Path:
    bare = where / "remote.git"
    git("init", "-q", "--bare", str(bare))
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    return bare


def init_coordination(url: str, where: Path, board: str, config: str, env: dict[str, str] | None = None,
                      board_name: str = "PHASE-0.md") -> Path:  # fmt: skip
    """The arbiter's clone (`admin`), which creates the coordination branch."""
    admin = where / "admin"
    git("init", "-q", str(admin))
    git("remote", "add", "origin", url, cwd=admin)
    (admin / "ifcoord.yaml").write_text(config)
    (admin / board_name).write_text(board)
    done = ifcoord("init", "--board", board_name, "--config", "ifcoord.yaml", cwd=admin,
                   env=env if env is not None else ARBITER_ENV)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return admin


def session_clone(url: str, where: Path, name: str, env: dict[str, str] | None = None) -> Path:
    """An agent's clone on its own branch claude/<name>, already pushed, joined as <name>."""
    clone = where / name
    git("init", "-q", str(clone))
    git("remote", "add", "origin", url, cwd=clone)
    git("checkout", "-q", "-b", f"claude/{name}", cwd=clone)
    (clone / "work.py").write_text(f"# {name}'s work\n")
    git("add", "work.py", cwd=clone)
    git("commit", "-q", "-m", "start", cwd=clone)
    git("push", "-q", "origin", f"claude/{name}", cwd=clone, env=env or session_env(name))
    assert ifcoord("join", name, cwd=clone).returncode == 0
    return clone


def reader_clone(url: str, where: Path, name: str) -> Path:
    clone = where / name
    git("init", "-q", str(clone))
    git("remote", "add", "origin", url, cwd=clone)
    return clone


def session_env(name: str, **extra: str) -> dict[str, str]:
    return {"IFCOORD_SESSION_BRANCH": f"claude/{name}", **extra}


def board_json(clone: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = ifcoord("board", "--json", cwd=clone, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def owners(clone: Path, env: dict[str, str] | None = None) -> dict[str, tuple[Any, ...]]:
    """Every task's decided facts as this reader shows them."""
    return {t["id"]: (t["owner"], t["state"], t.get("epoch")) for t in board_json(clone, env)["tasks"]}


def arbitrate(admin: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = ifcoord(
        "arbitrate", "--once", "--json", *extra, cwd=admin, env=env if env is not None else ARBITER_ENV
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def wait_for(condition: Callable[[], Any], timeout: float = 60, every: float = 0.2, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(every)
