"""Warm commands (serve/): a running `ifcoord serve` or `ifcoord poll` runs this user's one-shot
commands in a forked copy of itself, with the caller's folder, environment and streams.

Each test names its own server (IFCOORD_SERVER=<name>), so it never meets the suite's server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import git, ifcoord_cmd, make_clone, run_ifcoord

from ifcoord.serve import address as address_module

BOARD = (
    "# Phase 0\n\n"
    "## T1: First task\n**Status:** open\n\n"
    "## T2: Second task\n**Status:** open\n**Depends on:** T1\n\n"
    "## T3: Third task\n**Status:** open\n"
)


def wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Server:
    """`ifcoord serve -v` under its own name; its log lines are collected as they come."""

    def __init__(self, name: str, cwd: Path, *extra: str) -> None:
        self.env = {**os.environ, "IFCOORD_SERVER": name}
        self.proc = subprocess.Popen(
            [*ifcoord_cmd(), "serve", "-v", *extra], cwd=cwd, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_for(
            lambda: any("serving commands" in line for line in self.lines) or self.proc.poll() is not None,
            "the server to listen",
        )
        assert self.proc.poll() is None, self.lines

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def served(self) -> list[str]:
        return [line for line in self.lines if line.startswith("ifcoord: serving ") and " in " in line]

    def copy_pid(self, index: int = -1) -> int:
        return int(self.served()[index].rsplit("(pid ", 1)[1].rstrip(")"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.reader.join(timeout=10)
        return code


@pytest.fixture
def name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def admin(bare_remote: Path, tmp_path: Path) -> Path:
    admin = make_clone(bare_remote, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text(BOARD)
    done = run_ifcoord("init", "--board", "PHASE-0.md", cwd=admin, env={"IFCOORD_SERVER": "0"})
    assert done.returncode == 0, done.stderr
    return admin


@pytest.fixture
def server(admin: Path, name: str) -> Iterator[Server]:
    srv = Server(name, admin.parent)  # the server's own folder does not matter
    yield srv
    srv.stop()


def both(admin: Path, name: str, *args: str, stdin: str = "") -> tuple[subprocess.CompletedProcess[str], ...]:
    """The same command run locally and through the server."""
    out = []
    for mode in ("0", name):
        env = {**os.environ, "IFCOORD_SERVER": mode}
        out.append(subprocess.run([*ifcoord_cmd(), *args], cwd=admin, input=stdin, capture_output=True,
                                  text=True, timeout=60, env=env))  # fmt: skip
    return tuple(out)


@pytest.mark.parametrize(
    "args",
    [
        ("board", "--json"),
        ("next", "-s", "viewer", "--json"),
        ("show", "T2"),
        ("show", "NOPE"),  # exit 2 and its one line on stderr
        ("claim", "T2", "-s", "s1"),  # not ready: exit 4
        ("lint",),
        ("board", "--dir", "no-such-folder"),
        ("status", "--json"),
    ],
)
def test_a_served_command_prints_and_exits_exactly_as_a_local_one(
    admin: Path, name: str, server: Server, args: tuple[str, ...]
) -> None:
    local, served = both(admin, name, *args)
    assert (served.returncode, served.stdout, served.stderr) == (local.returncode, local.stdout, local.stderr)
    assert len(server.served()) == 1 and f"serving {args[0]} in {str(admin)!r}" in server.served()[0]


def test_served_operations_land_once_each_in_the_callers_environment(
    admin: Path, name: str, server: Server, bare_remote: Path
) -> None:
    env = {"IFCOORD_SERVER": name}
    first = run_ifcoord("claim", "T1", "-s", "s1", "--json", cwd=admin, env=env)
    assert first.returncode == 0, first.stderr
    again = run_ifcoord("claim", "T1", "-s", "s2", cwd=admin, env=env)
    assert again.returncode == 3 and "s1" in again.stderr  # a conflict, decided as always
    trailers = git("log", "--format=%(trailers:key=Ifcoord-Op,valueonly)", "ifcoord", cwd=bare_remote)
    assert trailers.split().count("claim") == 1
    # the session comes from the caller's IFCOORD_SESSION, not from the server's environment
    now = run_ifcoord("now", "--json", cwd=admin, env={**env, "IFCOORD_SESSION": "s1"})
    assert now.returncode == 0, now.stderr
    assert json.loads(now.stdout)["task"]["id"] == "T1"
    assert len(server.served()) == 3


def blocked_client(admin: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A served command that waits, reading its stdin (a hook's JSON), until it is written."""
    pipe = subprocess.PIPE
    argv = [*ifcoord_cmd(), "agent", "hook", "session-start"]
    return subprocess.Popen(argv, cwd=admin, env=env, stdin=pipe, stdout=pipe, stderr=pipe)


def test_killing_the_client_kills_the_command(admin: Path, name: str, server: Server) -> None:
    """A SIGKILLed agent command must not go on running in the server's copy."""
    client = blocked_client(admin, {**os.environ, "IFCOORD_SERVER": name})
    wait_for(lambda: server.served(), "the command to be served")
    copy = server.copy_pid()
    assert Path(f"/proc/{copy}").exists()  # blocked, reading the client's stdin
    client.kill()
    client.wait(timeout=10)
    wait_for(lambda: not Path(f"/proc/{copy}").exists(), "the copy to die with its client")


def test_sigterm_reaches_the_copy_and_the_client_dies_of_it(admin: Path, name: str, server: Server) -> None:
    client = blocked_client(admin, {**os.environ, "IFCOORD_SERVER": name})
    wait_for(lambda: server.served(), "the command to be served")
    copy = server.copy_pid()
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=30) == -signal.SIGTERM
    wait_for(lambda: not Path(f"/proc/{copy}").exists(), "the copy to stop")


def test_without_a_server_the_command_runs_locally(admin: Path, name: str) -> None:
    done = run_ifcoord("board", "--json", cwd=admin, env={"IFCOORD_SERVER": name})
    assert done.returncode == 0 and '"T1"' in done.stdout


def test_a_second_server_of_the_same_name_is_refused(admin: Path, name: str, server: Server) -> None:
    second = run_ifcoord("serve", cwd=admin, env={"IFCOORD_SERVER": name})
    assert second.returncode == 3
    assert second.stderr.count("\n") == 1 and "already runs" in second.stderr
    off = run_ifcoord("serve", cwd=admin, env={"IFCOORD_SERVER": "0"})
    assert off.returncode == 2 and "turned off" in off.stderr


def test_idle_exit_stops_a_server_nobody_uses(admin: Path, name: str) -> None:
    srv = Server(name, admin, "--idle-exit", "0.5")
    assert srv.proc.wait(timeout=30) == 0
    done = run_ifcoord("board", "--json", cwd=admin, env={"IFCOORD_SERVER": name})
    assert done.returncode == 0  # locally, since nobody serves any more


def test_a_running_poll_serves_the_users_commands(admin: Path, name: str, tmp_path: Path) -> None:
    env = {**os.environ, "IFCOORD_SERVER": name}
    argv = [*ifcoord_cmd(), "poll", "-s", "p1", "--interval", "0.3", "--no-claim", "--json"]
    poll = subprocess.Popen(argv, cwd=admin, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        client = blocked_client(admin, env)

        def copies() -> list[int]:
            found = []
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                    cmdline = (stat.parent / "cmdline").read_bytes()
                except OSError:
                    continue
                if int(fields[1]) == poll.pid and b"poll" in cmdline:
                    found.append(int(stat.parent.name))
            return found

        wait_for(copies, "poll to fork a copy for the command")
        out, err = client.communicate(input=b"{}", timeout=60)
        assert client.returncode == 0, err
        assert isinstance(json.loads(out), dict)
    finally:
        poll.send_signal(signal.SIGTERM)
        poll.wait(timeout=60)


def test_a_changed_ifcoord_has_another_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    monkeypatch.setattr(address_module, "PACKAGE", str(package))
    before = address_module.fingerprint()
    assert address_module.fingerprint() == before  # stable
    os.utime(package / "sub" / "b.py", ns=(1, 1))
    assert address_module.fingerprint() != before
    monkeypatch.setenv("IFCOORD_SERVER", "one")
    one = address_module.address()
    monkeypatch.setenv("IFCOORD_SERVER", "two")
    assert address_module.address() != one


# The rule counts the threads of the whole process: run where only this check's threads are
# (a pytest worker may still hold a thread of an earlier test, a proxy's or a lock waiter's).
NO_FORK_CHECK = """
import threading
from ifcoord.serve.server import CommandServer

server = CommandServer(lambda argv: 0)
request = {"argv": ["board"], "cwd": "/", "env": {}}
assert server.refusal(request, 3) == "", server.refusal(request, 3)
assert "one-shot" in server.refusal({**request, "argv": ["poll"]}, 3)
assert "standard" in server.refusal(request, 2)
release = threading.Event()
worker = threading.Thread(target=release.wait)
worker.start()
try:
    assert "threads" in server.refusal(request, 3)
finally:
    release.set()
    worker.join()
assert server.refusal(request, 3) == ""
"""


def test_no_fork_while_the_server_runs_other_threads() -> None:
    done = subprocess.run([sys.executable, "-c", NO_FORK_CHECK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
