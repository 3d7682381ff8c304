"""Every (operation, state, actor) cell of the lifecycle table, through the CLI, on a real remote.

One bare remote holds a board with a task in each state. For each cell the remote branch is put
back to that starting commit, the command runs in-process (the same `run()` the console script
calls) from a clone, and then the exit code and the remote board are checked against the matrix
in tests/test_lifecycle_table.py (written by hand from docs/protocol.md section 4).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import git, make_clone, run_ifcoord
from test_lifecycle_table import ACTORS, expected_cells

from ifcoord.cli.app import run
from ifcoord.core.snapshot import build_snapshot

STATE_TASK = {
    "open": "T-1", "claimed": "T-2", "in_progress": "T-3", "blocked": "T-4",
    "review": "T-5", "done": "T-6", "cancelled": "T-7",
}  # fmt: skip
WORDS = {
    "open": "open", "claimed": "claimed", "in_progress": "in progress", "blocked": "blocked",
    "review": "review", "done": "done", "cancelled": "cancelled",
}  # fmt: skip
ARGS = {
    "claim": ["claim", "{t}"],
    "reclaim": ["reclaim", "{t}"],
    "progress": ["progress", "{t}", "50"],
    "block": ["block", "{t}", "--reason", "waiting for a decision"],
    "unblock": ["unblock", "{t}"],
    "complete": ["complete", "{t}"],
    "release": ["release", "{t}"],
    "cancel": ["task", "cancel", "{t}", "--reason", "not needed"],
    "reopen": ["task", "reopen", "{t}"],
}
PERSON_ONLY = ("cancel", "reopen")  # `task cancel` and `task reopen` are always a person's


def board_text() -> str:
    out = ["# Phase 0\n"]
    for state, tid in STATE_TASK.items():
        lines = [f"## {tid}: Task in state {state}", f"**Status:** {WORDS[state]}"]
        if state not in ("open", "cancelled"):
            lines += ["**Owner:** s1", "**Epoch:** 1", "**Claimed at:** 2026-01-01T10:00:00Z"]
        if state == "done":
            lines.append("**Completed at:** 2026-01-01T12:00:00Z")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def status_yaml(session: str) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"session: {session}\nstatus: working\nlast_poll: {now}\n"


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(bare remote, clone, base commit): the board of seven states, s1 and s2 both live."""
    root = tmp_path_factory.mktemp("walk")
    bare = root / "remote.git"
    git("init", "-q", "--bare", str(bare))
    admin = make_clone(bare, root / "admin")
    (admin / "PHASE-0.md").write_text(board_text())
    (admin / "ifcoord.yaml").write_text("lease_seconds: 86400\nheartbeat_seconds: 60\ndashboard: false\n")
    done = run_ifcoord(
        "init", "--remote", str(bare), "--board", "PHASE-0.md", "--config", "ifcoord.yaml", cwd=admin
    )
    assert done.returncode == 0, done.stderr
    edit = root / "edit"
    git("clone", "-q", "-b", "ifcoord", str(bare), str(edit))
    (edit / "status").mkdir(exist_ok=True)
    for s in ("s1", "s2"):
        (edit / "status" / f"{s}.yaml").write_text(status_yaml(s))
    git("add", "-A", cwd=edit)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "two live sessions", cwd=edit)
    git("push", "-q", "origin", "ifcoord", cwd=edit)
    base = git("rev-parse", "ifcoord", cwd=bare)
    return bare, make_clone(bare, root / "clone"), base


def remote_tasks(bare: Path) -> dict[str, object]:
    tree = git("ls-tree", "-r", "--name-only", "ifcoord", cwd=bare).splitlines()
    files = {
        p: git("show", f"ifcoord:{p}", cwd=bare).encode() + b"\n"
        for p in tree
        if p.endswith((".md", ".yaml"))
    }
    return build_snapshot(files).tasks()  # type: ignore[return-value]


CELLS = [c for c in expected_cells() if c[1] not in PERSON_ONLY or c[2] == "person"]


@pytest.mark.slow(20)
@pytest.mark.timeout(600)
def test_every_cell_on_a_real_remote(
    walk: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bare, clone, base = walk
    monkeypatch.chdir(clone)
    monkeypatch.setenv("IFCOORD_DEADLINE", "20")
    before = remote_tasks(bare)
    wrong = []
    for state, op, actor, want in CELLS:
        git("update-ref", "refs/heads/ifcoord", base, cwd=bare)  # every cell starts from the same board
        for memory in ("epochs.json", "observations.json"):
            (clone / ".git" / "ifcoord" / memory).unlink(missing_ok=True)
        tid = STATE_TASK[state]
        session, force = ACTORS[actor]
        args = [a.format(t=tid) for a in ARGS[op]] + ["--remote", str(bare)]
        if op in PERSON_ONLY:
            args += ["--by", session]
        else:
            args += ["--session", session] + (["--force"] if force else [])
        code = run(args)
        err = capsys.readouterr().err.strip()
        tip = git("rev-parse", "ifcoord", cwd=bare)
        task = remote_tasks(bare)[tid]
        expected_code = 0 if want in "TN" else int(want)
        if code != expected_code:
            wrong.append(f"{state} {op} by {actor}: exit {code}, want {expected_code}: {err}")
            continue
        if want == "T":
            target = {"progress": "in_progress" if state == "claimed" else state}.get(op) or _target(op)
            if tip == base or task.state != target:  # type: ignore[attr-defined]
                wrong.append(f"{state} {op} by {actor}: board says {task.state}, want {target}")  # type: ignore[attr-defined]
        elif tip != base or task != before[tid]:
            wrong.append(
                f"{state} {op} by {actor}: the branch moved on a {'no-change' if want == 'N' else 'refusal'}"
            )
    assert wrong == [], "\n".join(wrong)
    assert len(CELLS) == 7 * 7 * 3 + 7 * 2


def _target(op: str) -> str:
    from ifcoord.core.lifecycle import TABLE

    target = TABLE[op].target
    assert target is not None
    return target
