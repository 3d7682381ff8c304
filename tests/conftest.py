"""Real git for every test: temporary bare remotes, clones, and `git daemon` on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import USED, smart_http, ssh_server

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the `testing` helpers at the repository root
FIXTURE_BOARDS = ROOT.parent / "shared" / "fixtures" / "boards"
EXAMPLE_BOARDS = ROOT / "boards"


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config leaks in; ifcoord's variables start unset; what ifcoord
    shares between clones (~/.cache/ifcoord) is the test's own."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)  # queues and parses: under this test's HOME
    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(var, "Test Person")
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "test@example.invalid")
    for var in ("IFCOORD_SESSION", "IFCOORD_REMOTE", "IFCOORD_BRANCH", "IFCOORD_DEADLINE"):
        monkeypatch.delenv(var, raising=False)
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[protocol]\n\tversion = 2\n")


@pytest.fixture
def bare_remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(path))
    return path


def make_clone(remote: str | Path, where: Path) -> Path:
    """A user's clone with one commit on main and a dirty work tree, like a real one mid-work."""
    git("init", "-q", str(where))
    git("remote", "add", "origin", str(remote), cwd=where)
    (where / "app.py").write_text("print('hello')\n")
    git("add", "app.py", cwd=where)
    git("commit", "-q", "-m", "initial", cwd=where)
    return where


@pytest.fixture
def clone(bare_remote: Path, tmp_path: Path) -> Path:
    return make_clone(bare_remote, tmp_path / "clone")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real git server on 127.0.0.1 serving one bare repository; yields (url, bare path)."""
    base = tmp_path / "served"
    base.mkdir()
    bare = base / "remote.git"
    git("init", "-q", "--bare", str(bare))
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--enable=receive-pack",
            "--reuseaddr",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            "--max-connections=64",
            str(base),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"git://127.0.0.1:{port}/remote.git"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        raise AssertionError("git daemon did not start")
    USED.add("git daemon")
    try:
        yield url, bare
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def http_remote(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Smart HTTP: nginx + fcgiwrap + git http-backend on 127.0.0.1; yields (url, bare path)."""
    with smart_http(tmp_path) as (url, bare, _):
        yield url, bare


@pytest.fixture
def ssh_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """ssh: openssh-server on 127.0.0.1 with a generated key; yields (url, bare path)."""
    with ssh_server(tmp_path) as (url, bare, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield url, bare


@pytest.fixture(params=["file", "http", "ssh"])
def served_remote(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """The same test over a file remote, smart HTTP and ssh: (url, bare path)."""
    if request.param == "file":
        bare = tmp_path / "remote.git"
        git("init", "-q", "--bare", str(bare))
        return str(bare), bare
    fixture = "http_remote" if request.param == "http" else "ssh_remote"
    url, bare = request.getfixturevalue(fixture)
    return str(url), bare


def pytest_configure(config: pytest.Config) -> None:
    """The run's command server (docs/agents.md, section 6): the ifcoord processes the tests
    start are served by it, as an agent's are by its poll. One per run, named for the run so
    that it never serves or meets anything else; the controller starts it before the workers
    exist, and they inherit its name. IFCOORD_TEST_SERVER=0 runs every process on its own."""
    if hasattr(config, "workerinput"):
        return
    if os.environ.get("IFCOORD_TEST_SERVER", "1") == "0":
        os.environ["IFCOORD_SERVER"] = "0"
        return
    from testing.serving import start_server

    name = f"tests-{os.getpid()}-{time.time_ns()}"
    try:
        config.stash[_SERVER] = start_server(ifcoord_cmd(), name, "--idle-exit", "900")
    except RuntimeError:
        raise pytest.UsageError(
            "the test run's command server did not start; IFCOORD_TEST_SERVER=0 runs without it"
        ) from None
    os.environ["IFCOORD_SERVER"] = name  # the workers and every process they start inherit it


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long scenarios (marked `slow(seconds)`) start first, one in each worker (testing/suite_order.py)."""
    from testing.suite_order import long_ones_first

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)  # set in each worker

    def seconds(item: pytest.Item) -> float | None:
        marker = item.get_closest_marker("slow")
        return None if marker is None else float(marker.args[0]) if marker.args else 0.0

    items[:] = long_ones_first(items, workers, seconds)


def pytest_unconfigure(config: pytest.Config) -> None:
    from testing.serving import stop_server

    proc = config.stash.get(_SERVER, None)
    if proc is not None:
        stop_server(proc)


_SERVER = pytest.StashKey["subprocess.Popen[bytes]"]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist each worker hands the remotes it served to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["remotes"] = sorted(USED)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    USED.update(getattr(node, "workeroutput", {}).get("remotes", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    kinds = ["file (bare repository)", *sorted(USED)]
    terminalreporter.write_line("remotes served in this run: " + ", ".join(kinds))


def ifcoord_cmd() -> list[str]:
    return [sys.executable, "-m", "ifcoord"]


def run_ifcoord(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """ifcoord as a separate process, exactly as an agent runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*ifcoord_cmd(), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
