"""The lifecycle defects found by trying the CLI as a new user would (issue 10), each over a real
remote: finished work reopened, junk `block --on`, waits never cleared, stale owners judged
three ways. Commands run in-process through the console script's `run()`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import git, make_clone, run_ifcoord

from ifcoord.cli.app import run
from ifcoord.core.snapshot import build_snapshot

BOARD = """# Phase 0

## W0.1: Schema
**Status:** open

## W0.2: API
**Status:** open

## W0.3: Docs
**Status:** open

## W0.7: Storage
**Status:** open

## W0.11: Reports
**Status:** open
"""


class Team:
    """A bare remote with the board, and one clone from which sessions run commands."""

    def __init__(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        board: str = BOARD,
        config: str = "lease_seconds: 600\n",
        statuses: dict[str, str] | None = None,
    ) -> None:
        self.bare = tmp_path / "remote.git"
        git("init", "-q", "--bare", str(self.bare))
        admin = make_clone(self.bare, tmp_path / "admin")
        (admin / "PHASE-0.md").write_text(board)
        (admin / "ifcoord.yaml").write_text(config)
        init = ["init", "--remote", str(self.bare), "--board", "PHASE-0.md", "--config", "ifcoord.yaml"]
        assert run_ifcoord(*init, cwd=admin).returncode == 0
        if statuses:
            edit = tmp_path / "edit"
            git("clone", "-q", "-b", "ifcoord", str(self.bare), str(edit))
            for name, text in statuses.items():
                (edit / "status" / f"{name}.yaml").write_text(text)
            git("add", "-A", cwd=edit)
            git("-c", "user.name=p", "-c", "user.email=p@p", "commit", "-q", "-m", "statuses", cwd=edit)
            git("push", "-q", "origin", "ifcoord", cwd=edit)
        self.clone = make_clone(self.bare, tmp_path / "clone")
        self.capsys = capsys

    def __call__(self, *args: str, session: str | None = "s1") -> tuple[int, str, str]:
        who = ["--session", session] if session else []
        code = run([*args, *who, "--remote", str(self.bare)])
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def files(self) -> dict[str, bytes]:
        tree = git("ls-tree", "-r", "--name-only", "ifcoord", cwd=self.bare).splitlines()
        return {p: (git("show", f"ifcoord:{p}", cwd=self.bare) + "\n").encode() for p in tree}

    def task(self, tid: str):  # type: ignore[no-untyped-def]
        return build_snapshot(self.files()).tasks()[tid]

    def tip(self) -> str:
        return git("rev-parse", "ifcoord", cwd=self.bare)


@pytest.fixture
def team(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Team:
    t = Team(tmp_path, capsys)
    monkeypatch.chdir(t.clone)
    return t


def test_progress_on_finished_work_is_refused_and_changes_nothing(team: Team) -> None:
    assert team("claim", "W0.1")[0] == 0
    assert team("complete", "W0.1")[0] == 0
    assert team("claim", "W0.2")[0] == 0
    tip = team.tip()
    code, _, err = team("progress", "W0.1", "50")
    assert code == 4
    assert "W0.1 is done (completed by s1 at" in err
    assert team.tip() == tip
    assert team.task("W0.1").progress == 100
    status = build_snapshot(team.files()).statuses["s1"]
    assert status.current_task == "W0.2"


@pytest.mark.parametrize("op", [["block", "W0.1", "--reason", "x"], ["release", "W0.1"], ["unblock", "W0.1"]])
def test_a_done_task_cannot_be_blocked_released_or_unblocked(team: Team, op: list[str]) -> None:
    team("claim", "W0.1")
    team("complete", "W0.1")
    tip = team.tip()
    code, _, err = team(*op)
    assert code == 4 and "W0.1 is done" in err
    assert team.tip() == tip and team.task("W0.1").state == "done"


def test_only_a_person_reopens_finished_work_and_it_is_recorded_as_forced(team: Team) -> None:
    team("claim", "W0.1")
    team("complete", "W0.1")
    assert team("complete", "W0.1", "--force", session="human")[0] == 4  # --force does not reopen
    code, _, _ = team("task", "reopen", "W0.1", "--by", "alice", session=None)
    assert code == 0
    assert team.task("W0.1").state == "open" and team.task("W0.1").owner is None
    assert "Ifcoord-Forced: true" in git("log", "-1", "--format=%B", "ifcoord", cwd=team.bare)


@pytest.mark.parametrize("on, why", [("W7.7", "there is no task W7.7"), ("W0.2", "cannot wait on itself")])
def test_block_on_an_unknown_task_or_on_itself_is_a_usage_error(team: Team, on: str, why: str) -> None:
    team("claim", "W0.2")
    tip = team.tip()
    code, _, err = team("block", "W0.2", "--on", on)
    assert code == 2 and why in err
    assert team.tip() == tip


def test_completing_what_a_task_waits_on_unblocks_it_in_the_same_commit(team: Team) -> None:
    team("claim", "W0.7", session="s2")
    team("claim", "W0.11")
    assert team("block", "W0.11", "--on", "W0.7", "--reason", "needs storage")[0] == 0
    assert team.task("W0.11").state == "blocked"
    code, _, err = team("complete", "W0.7", session="s2")
    assert code == 0 and "unblocked W0.11" in err
    task = team.task("W0.11")
    assert (task.state, task.waiting_on, task.block_reason, task.owner) == ("in_progress", [], None, "s1")
    assert "Ifcoord-Unblocked: W0.11" in git("log", "-1", "--format=%B", "ifcoord", cwd=team.bare)


def test_repeating_an_operation_that_already_holds_is_exit_0_no_change(team: Team) -> None:
    assert team("claim", "W0.1")[0] == 0
    tip = team.tip()
    code, _, err = team("claim", "W0.1")
    assert (code, team.tip()) == (0, tip) and "no change" in err
    team("complete", "W0.1")
    tip = team.tip()
    code, _, err = team("complete", "W0.1")
    assert (code, team.tip()) == (0, tip) and "no change" in err
    team("claim", "W0.2")
    team("release", "W0.2")
    tip = team.tip()
    code, _, err = team("release", "W0.2")
    assert (code, team.tip()) == (0, tip) and "no change" in err


STALE = "session: s1\nstatus: working\nlast_poll: 2020-01-01T00:00:00Z\n"
HELD_BOARD = """# Phase 0

## H1: Claimed by a dead session
**Status:** claimed
**Owner:** s1

## H2: In progress by a dead session
**Status:** in progress
**Owner:** s1

## H3: Blocked by a dead session
**Status:** blocked
**Owner:** s1

## H4: In review by a dead session
**Status:** review
**Owner:** s1

## H5: Done by the dead session
**Status:** done
**Owner:** s1
"""


def test_a_stale_owner_is_judged_alike_by_board_next_poll_claim_status_and_dashboard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(tmp_path, capsys, board=HELD_BOARD, statuses={"s1": STALE})
    monkeypatch.chdir(team.clone)
    held = {"H1", "H2", "H3", "H4"}
    # board: every held task of the dead session is stale and ready (reclaimable); done is neither
    rows = {t["id"]: t for t in json.loads(team("board", "--json", session=None)[1])["tasks"]}
    assert {i for i, t in rows.items() if t["stale"]} == held
    assert {i for i, t in rows.items() if t["ready"]} == held
    # status: the session is stale
    sessions = {s["session"]: s for s in json.loads(team("status", "--json", session=None)[1])["sessions"]}
    assert sessions["s1"]["stale"] is True
    # the dashboard on the branch, rewritten by s2's first heartbeat, names the same four
    assert team("heartbeat", session="s2")[0] == 0
    text = team.files()["boards/README.md"].decode()
    assert {i for i in held | {"H5"} if f"**Stale lease:** {i} " in text} == held
    # next offers one of them; claim takes it as a reclaim; poll claims another
    pick = json.loads(team("next", "--json", session="s2")[1])["task"]["id"]
    assert pick in held
    code, out, _ = team("claim", pick, "--json", session="s2")
    assert code == 0 and json.loads(out)["op"] == "reclaim"
    assert team.task(pick).previous_owner == "s1"
    code, out, _ = team("poll", "--once", "--json", session="s3")
    claimed = [json.loads(line) for line in out.splitlines() if '"claimed"' in line]
    assert code == 0 and claimed and claimed[0]["task"] in held - {pick}
    assert team.task("H5").state == "done"


def test_the_board_header_counts_stale_as_the_dashboard_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(tmp_path, capsys, board=HELD_BOARD, statuses={"s1": STALE})
    monkeypatch.chdir(team.clone)
    monkeypatch.setenv("COLUMNS", "200")
    _, out, _ = team("board", session=None)
    assert "4 stale" in out
    assert team("heartbeat", session="s2")[0] == 0
    assert team.files()["boards/README.md"].decode().count("**Stale lease:**") == 4
