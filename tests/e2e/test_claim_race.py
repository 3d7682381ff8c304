"""Exactly-once claims: many real processes racing against real remotes."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import git, ifcoord_cmd, make_clone, run_ifcoord

N = 16


def board_with(n: int, prefix: str = "T") -> str:
    tasks = "\n".join(f"## {prefix}{i}: Task number {i}\n**Status:** open\n" for i in range(1, n + 1))
    return f"# Phase 0\n\n{tasks}"


def setup_branch(remote: str, tmp_path: Path, board: str) -> None:
    admin = make_clone(remote, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text(board)
    done = run_ifcoord("init", "--remote", remote, "--board", "PHASE-0.md", cwd=admin)
    assert done.returncode == 0, done.stderr


def clones(remote: str, tmp_path: Path, n: int) -> list[Path]:
    return [make_clone(remote, tmp_path / f"s{i}") for i in range(n)]


def race(commands: list[tuple[list[str], Path]]) -> list[subprocess.CompletedProcess[str]]:
    """Start every process first, then collect: they really run at once."""
    procs = [
        subprocess.Popen(
            [*ifcoord_cmd(), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args, cwd in commands
    ]

    def collect(p: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
        out, err = p.communicate(timeout=120)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    with ThreadPoolExecutor(len(procs)) as pool:
        return list(pool.map(collect, procs))


def claims_in_history(bare: Path, task: str) -> list[str]:
    log = git(
        "log",
        "--format=%(trailers:key=Ifcoord-Op,valueonly)%x00%(trailers:key=Ifcoord-Task,valueonly)%x1e",
        "ifcoord",
        cwd=bare,
    )
    out = []
    for rec in log.split("\x1e"):
        if "\x00" in rec:
            op, t = (x.strip() for x in rec.split("\x00"))
            if op in ("claim", "reclaim") and t == task:
                out.append(t)
    return out


@pytest.mark.parametrize("server", ["bare", "daemon", "http", "ssh"])
def test_sixteen_processes_claim_one_task_exactly_one_wins(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fixture = {"bare": "bare_remote", "daemon": "git_daemon", "http": "http_remote", "ssh": "ssh_remote"}
    served = request.getfixturevalue(fixture[server])
    remote, bare = (str(served), served) if server == "bare" else (str(served[0]), served[1])
    setup_branch(remote, tmp_path, board_with(3))
    sessions = clones(remote, tmp_path, N)
    results = race(
        [
            (["claim", "T1", "--session", f"session-{i}", "--remote", remote, "--json"], c)
            for i, c in enumerate(sessions)
        ]
    )
    codes = sorted(r.returncode for r in results)
    assert codes == [0] + [3] * (N - 1), [(r.returncode, r.stderr) for r in results]
    winner = next(i for i, r in enumerate(results) if r.returncode == 0)
    for r in results:
        if r.returncode == 3:
            err = json.loads(r.stdout)["error"]
            assert err["code"] == 3
            assert f"claimed by session-{winner}" in err["message"]
    assert claims_in_history(bare, "T1") == ["T1"]
    board = git("show", "ifcoord:boards/PHASE-0.md", cwd=bare)
    assert f"**Owner:** session-{winner}" in board


def test_sixteen_processes_claim_next_get_sixteen_different_tasks(
    git_daemon: tuple[str, Path], tmp_path: Path
) -> None:
    remote, bare = git_daemon
    setup_branch(remote, tmp_path, board_with(N))
    sessions = clones(remote, tmp_path, N)
    results = race(
        [
            (["claim", "--next", "--session", f"session-{i}", "--remote", remote, "--json"], c)
            for i, c in enumerate(sessions)
        ]
    )
    assert all(r.returncode == 0 for r in results), [(r.returncode, r.stderr) for r in results]
    claimed = [json.loads(r.stdout)["task"]["id"] for r in results]
    assert sorted(claimed) == sorted(f"T{i}" for i in range(1, N + 1))
    # sessions on one machine take turns at the branch (MachineQueue): none lost a push to another
    assert [json.loads(r.stdout)["attempts"] for r in results] == [1] * N
    # no status update was lost: every session's STATUS file names its task
    for i, task in enumerate(claimed):
        status = git("show", f"ifcoord:status/session-{i}.yaml", cwd=bare)
        assert f"current_task: {task}" in status
