"""Own-branch mode: sessions propose on their own branch, one arbiter decides (protocol section 7,
docs/modes.md section 3). Real remotes whose hook lets a session push only claude/<name>."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, ifcoord_cmd

sys.path.insert(0, str(ROOT))
from testing.ownbranch_world import (  # noqa: E402
    ARBITER_ENV,
    arbitrate,
    board_json,
    config_text,
    git,
    guarded_remote,
    ifcoord,
    init_coordination,
    owners,
    reader_clone,
    session_clone,
    session_env,
    wait_for,
)

TWO = "# P\n\n## T1: Contested\n\n## T2: Other\n"


def world(tmp_path: Path, board: str = TWO, **config: float) -> tuple[Path, Path]:
    bare = guarded_remote(tmp_path)
    admin = init_coordination(str(bare), tmp_path, board, config_text(**config))
    return bare, admin


def op(clone: Path, name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return ifcoord(*args, cwd=clone, env=session_env(name, **env))


def verdict_of(admin: Path, session: str, seq: int) -> str | None:
    """One arbiter round; the verdict it (or an earlier one) gave `session`'s proposal `seq`."""
    arbitrate(admin)
    status = git("show", f"ifcoord:status/{session}.yaml", cwd=admin.parent / "remote.git", check=False)
    from ifcoord.files.status import parse_status

    decisions = (parse_status(f"status/{session}.yaml", status.encode()).model_extra or {}).get(
        "decisions"
    ) or []
    return next((str(d["verdict"]) for d in decisions if d["seq"] == seq), None)


def decided(admin: Path, session: str, seq: int, verdict: str = "accepted") -> bool:
    """One arbiter round; whether it (or an earlier one) gave `session`'s proposal `seq` that verdict."""
    return verdict_of(admin, session, seq) == verdict


def take_over(admin: Path, clone: Path, name: str, task: str, timeout: float, what: str) -> None:
    """`name` claims `task` as soon as its clone judges the holder's lease lapsed, until the
    arbiter accepts. The arbiter judges the lease by its own first sighting of the holder's
    heartbeat: when that came later than the claimer's, it still finds the lease live and
    refuses the proposal (the verdict is the arbiter's alone), and the claimer proposes again."""
    pending: list[int] = []

    def attempt() -> bool:
        if not pending:
            done = op(clone, name, "claim", task, "--json")
            if done.returncode != 0:
                return False  # refused by the claimer's own view: the lease is live to it
            pending.append(proposed_seq(done))
        verdict = verdict_of(admin, name, pending[0])
        if verdict is not None and verdict != "accepted":
            pending.clear()
        return verdict == "accepted"

    wait_for(attempt, timeout, every=0.5, what=what)


def proposed_seq(done: subprocess.CompletedProcess[str]) -> int:
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["proposed"])


@pytest.mark.slow(13)
@pytest.mark.timeout(300)
def test_a_claim_that_lost_its_lease_stays_lost_and_its_late_completion_is_refused(tmp_path: Path) -> None:
    """Issue 11, reproduction 1: lease 6 s, skew 2 s."""
    bare, admin = world(tmp_path, lease=6, skew=2)
    alice, bob = session_clone(str(bare), tmp_path, "alice"), session_clone(str(bare), tmp_path, "bob")
    seq = proposed_seq(op(alice, "alice", "claim", "T1", "--json"))
    assert owners(bob)["T1"][0] is None  # proposed is not decided: nobody holds T1 yet
    assert board_json(bob)["pending"] == [
        {"session": "alice", "seq": seq, "op": "claim", "task": "T1", "clock": 1}
    ]
    assert decided(admin, "alice", seq)
    assert owners(bob)["T1"] == ("alice", "in_progress", 1)
    # alice goes quiet; bob's claim is refused while her lease is live, then proposed once stale.
    # Generous waits: on a loaded machine each arbiter round is a few processes of seconds each.
    take_over(admin, bob, "bob", "T1", 180, what="bob to see alice's lease lapse and the arbiter to agree")
    assert owners(bob)["T1"] == ("bob", "in_progress", 2)
    assert decided(admin, "bob", proposed_seq(op(bob, "bob", "complete", "T1", "--json")))
    # alice comes back: she may claim T2, and T1 stays bob's and done for every reader.
    assert decided(admin, "alice", proposed_seq(op(alice, "alice", "claim", "T2", "--json")))
    carol = reader_clone(str(bare), tmp_path, "carol")
    for reader in (carol, alice, bob, admin):
        assert owners(reader)["T1"] == ("bob", "done", 2), reader
        assert owners(reader)["T2"] == ("alice", "in_progress", 1), reader
    late = op(alice, "alice", "complete", "T1")
    assert late.returncode == 3 and "lease lost" in late.stderr, late.stderr
    arbitrate(admin)
    assert owners(carol)["T1"] == ("bob", "done", 2)
    sessions = json.loads(ifcoord("status", "--json", cwd=carol).stdout)["sessions"]
    assert {row["session"] for row in sessions} == {"alice", "bob"}
    statuses = {n: git("show", f"ifcoord:status/{n}.yaml", cwd=bare) for n in ("alice", "bob")}
    assert "T1" in statuses["bob"].split("completed:")[1].splitlines()[0]
    assert "completed:" not in statuses["alice"]


@pytest.mark.slow(13)
def test_the_arbiter_never_writes_a_done_task_back(tmp_path: Path) -> None:
    """Issue 11, reproduction 2: the arbiter is down while alice is quiet, then decides bob's
    completion; alice writing again (even a forged proposal) changes nothing."""
    bare, admin = world(tmp_path, lease=3, skew=1)
    alice, bob = session_clone(str(bare), tmp_path, "alice"), session_clone(str(bare), tmp_path, "bob")
    assert decided(admin, "alice", proposed_seq(op(alice, "alice", "claim", "T1", "--json")))
    # The arbiter is down: bob proposes the takeover; nothing is decided, nothing is lost.
    # Generous waits: on a loaded machine each arbiter round is a few processes of seconds each.
    take = wait_for(lambda: (d := op(bob, "bob", "claim", "T1", "--json")).returncode == 0 and d, 90,
                    every=0.5, what="bob to see alice's lease lapse")  # fmt: skip
    assert owners(alice)["T1"][0] == "alice"
    refused = op(bob, "bob", "complete", "T1")  # bob may not work on T1 before the decision
    assert refused.returncode == 3, refused.stderr
    # The arbiter is back.
    wait_for(lambda: decided(admin, "bob", proposed_seq(take)), 30, every=0.5, what="bob's takeover")
    assert decided(admin, "bob", proposed_seq(op(bob, "bob", "complete", "T1", "--json")))
    # alice writes again: a heartbeat, and a forged completion proposal with her old epoch.
    assert op(alice, "alice", "heartbeat").returncode == 0
    text = git("show", "claude/alice:status/alice.yaml", cwd=bare)
    forged = text.replace("seq: 1\n", "seq: 2\n", 1).replace(
        "proposals:\n", "proposals:\n  - {seq: 2, clock: 99, op: complete, task: T1, epoch: 1}\n", 1
    )
    (alice / "status" / "alice.yaml").write_text(forged)
    git("commit", "-q", "-am", "forged", cwd=alice)
    git("push", "-q", "origin", "claude/alice", cwd=alice, env=session_env("alice"))
    assert decided(admin, "alice", 2, verdict="refused")
    for _ in range(2):
        arbitrate(admin)
        assert owners(admin)["T1"] == ("bob", "done", 2)
    late = op(alice, "alice", "complete", "T1")
    assert late.returncode == 3 and "lease lost" in late.stderr, late.stderr
    board = git("show", "ifcoord:boards/PHASE-0.md", cwd=bare)
    assert board.count("**Owner:** bob") == 1 and "**Owner:** alice" not in board


@pytest.mark.slow(17)
def test_readers_of_the_same_tips_agree_whatever_they_saw_before(tmp_path: Path) -> None:
    """Issue 11, reproduction 3: lease 10 s, skew 30 s; a clone that saw alice's heartbeat early,
    a fresh clone, a freshly started arbiter and a reader with a clock an hour off all name bob."""
    from ifcoord.session.workspace import Workspace

    bare, admin = world(tmp_path, lease=10, skew=30)
    alice, bob = session_clone(str(bare), tmp_path, "alice"), session_clone(str(bare), tmp_path, "bob")
    early = reader_clone(str(bare), tmp_path, "early")
    assert decided(admin, "alice", proposed_seq(op(alice, "alice", "claim", "T1", "--json")))
    owners(early)  # saw alice's heartbeat now
    take = wait_for(lambda: (d := op(bob, "bob", "claim", "T1", "--json")).returncode == 0 and d, 40,
                    every=0.5, what="bob (who saw alice early) to judge her stale")  # fmt: skip
    wait_for(
        lambda: decided(admin, "bob", proposed_seq(take)), 90, every=0.5, what="the arbiter to give bob T1"
    )
    fresh = reader_clone(str(bare), tmp_path, "fresh")
    views = {
        name: owners(c) for name, c in (("early", early), ("fresh", fresh), ("alice", alice), ("bob", bob))
    }
    second = reader_clone(str(bare), tmp_path, "second-arbiter")
    after = arbitrate(second, "--session", "second")  # a new arbiter: no sightings of its own
    assert after["decisions"] == []
    views["second-arbiter"] = owners(second)
    skewed = Workspace(start=fresh, session=None)
    real = time.time
    try:
        time.time = lambda: real() + 3600  # type: ignore[assignment]
        state = skewed.read()
    finally:
        time.time = real  # type: ignore[assignment]
    views["skewed"] = {t.id: (t.owner, t.state, t.epoch) for t in state.snapshot.tasks().values()}
    assert all(v == views["fresh"] for v in views.values()), views
    assert views["fresh"]["T1"] == ("bob", "in_progress", 2)
    assert op(bob, "bob", "complete", "T1").returncode == 0
    late = op(alice, "alice", "complete", "T1")
    assert late.returncode == 3 and "lease lost" in late.stderr


class Loop:
    """A session's `ifcoord poll --json`, running; its events as they come."""

    def __init__(self, clone: Path, name: str) -> None:
        import threading

        self.events: list[dict] = []
        self.proc = subprocess.Popen([*ifcoord_cmd(), "poll", "--json", "--interval", "0.3"], cwd=clone,
                                     env={**os.environ, **session_env(name)}, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def saw(self, event: str, task: str) -> dict | None:
        return next((e for e in self.events if e["event"] == event and e["task"] == task), None)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.mark.slow(17)
def test_concurrent_claims_go_to_one_session_and_the_loser_is_told_lost(tmp_path: Path) -> None:
    bare, admin = world(tmp_path)
    alice, bob = session_clone(str(bare), tmp_path, "alice"), session_clone(str(bare), tmp_path, "bob")
    # Neither sees the other's proposal: both propose T1 before the arbiter runs.
    for clone, name in ((alice, "alice"), (bob, "bob")):
        assert op(clone, name, "claim", "T1").returncode == 0
    # A loop tells its agent the claim is proposed, not yet its own.
    cycle = op(bob, "bob", "poll", "--once", "--json")
    events = [json.loads(line) for line in cycle.stdout.splitlines()]
    assert [(e["event"], e["task"]) for e in events if e["task"]] == [("proposed", "T1")], events
    assert "waiting for the arbiter" in events[0]["message"]
    loop = Loop(bob, "bob")
    try:
        wait_for(lambda: loop.saw("proposed", "T1"), 30, what="bob's loop to wait for its proposal")
        verdicts = arbitrate(admin)["decisions"]
        assert [(d["session"], d["verdict"]) for d in verdicts] == [("alice", "accepted"), ("bob", "refused")]
        lost = wait_for(lambda: loop.saw("lost", "T1"), 30, what="bob to be told he lost T1")
        assert lost["owner"] == "alice"
        wait_for(lambda: loop.saw("proposed", "T2"), 30, what="bob to propose another task")
        assert not loop.saw("claimed", "T2")  # not before the arbiter decides
        arbitrate(admin)
        claimed = wait_for(lambda: loop.saw("claimed", "T2"), 30, what="bob's claim of T2 decided")
        assert claimed["epoch"] == 1
    finally:
        loop.stop()
    assert (
        owners(alice) == owners(bob) == {"T1": ("alice", "in_progress", 1), "T2": ("bob", "in_progress", 1)}
    )
    refused = op(bob, "bob", "complete", "T1")
    assert refused.returncode == 3


def test_own_branch_writes_touch_only_the_status_file_of_the_users_clone(tmp_path: Path) -> None:
    bare, admin = world(tmp_path, board="# P\n\n## T1: Work\n")
    clone = session_clone(str(bare), tmp_path, "dana")
    (clone / "work.py").write_text("# edited, not committed\n")
    (clone / "notes.txt").write_text("untracked\n")
    before = git("status", "--porcelain", cwd=clone)
    done = op(clone, "dana", "claim", "T1")
    assert done.returncode == 0, done.stderr
    assert git("status", "--porcelain", cwd=clone) == before
    assert git("log", "-1", "--format=%s", cwd=clone) == "ifcoord: claim T1 by dana"
    assert git("diff", "--name-only", "HEAD~1", "HEAD", cwd=clone) == "status/dana.yaml"
    assert git("rev-parse", "claude/dana", cwd=bare) == git("rev-parse", "HEAD", cwd=clone)
    arbitrate(admin)
    # A merge in progress: the write is refused with a clear line and nothing changes.
    (clone / ".git" / "MERGE_HEAD").write_text(git("rev-parse", "HEAD", cwd=clone) + "\n")
    busy = op(clone, "dana", "progress", "T1", "50")
    assert busy.returncode == 5 and "merge is in progress" in busy.stderr
    assert git("log", "-1", "--format=%s", cwd=clone) == "ifcoord: claim T1 by dana"


def test_a_coordination_branch_made_by_hand_with_plain_git_works(tmp_path: Path) -> None:
    bare = guarded_remote(tmp_path)
    by_hand = tmp_path / "by-hand"
    git("init", "-q", "-b", "ifcoord", str(by_hand))
    (by_hand / "ifcoord.yaml").write_text(config_text())
    (by_hand / "boards").mkdir()
    (by_hand / "boards" / "PHASE-0.md").write_text("# Phase 0\n\n## T1: Hand-made task\n**Status:** TODO\n")
    git("add", ".", cwd=by_hand)
    git("commit", "-q", "-m", "a board, by hand", cwd=by_hand)
    git("push", "-q", str(bare), "ifcoord", cwd=by_hand, env=ARBITER_ENV)
    clone = session_clone(str(bare), tmp_path, "erin")
    done = op(clone, "erin", "claim", "--next", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["task"]["id"] == "T1"
    git("remote", "add", "origin", str(bare), cwd=by_hand)
    arbitrate(by_hand)
    assert board_json(clone)["tasks"][0]["owner"] == "erin"
    log = json.loads(ifcoord("log", "T1", "--json", "--remote", str(bare), cwd=by_hand).stdout)
    assert [(e["op"], e["session"]) for e in log["entries"]] == [("claim", "erin")]


def test_an_idle_own_branch_cycle_is_one_ls_remote_and_fetches_nothing(tmp_path: Path) -> None:
    from ifcoord.session.workspace import Workspace

    bare, admin = world(tmp_path, board="# P\n\n## T1: Work\n")
    clone = session_clone(str(bare), tmp_path, "fay")
    other = session_clone(str(bare), tmp_path, "gus")
    assert op(other, "gus", "claim", "T1").returncode == 0
    arbitrate(admin)
    ws = Workspace(start=clone, session="fay")
    first = ws.poll_state()  # fetches the coordination branch and gus's branch
    assert first.snapshot.tasks()["T1"].owner == "gus"
    calls = ws.runner.calls
    again = ws.poll_state()
    assert ws.runner.calls - calls == 1  # one ls-remote; nothing moved, nothing fetched
    assert again.snapshot.tasks()["T1"].owner == "gus"


@pytest.mark.slow(15)
def test_one_arbiter_decides_at_a_time_and_a_dead_ones_lock_is_taken_over(tmp_path: Path) -> None:
    bare, admin = world(tmp_path)
    alice = session_clone(str(bare), tmp_path, "alice")
    argv = [*ifcoord_cmd(), "arbitrate", "--interval", "0.5", "--json"]
    env = {**os.environ, **ARBITER_ENV}
    first = subprocess.Popen(argv, cwd=admin, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "holder: arbiter" in git("show", "ifcoord:arbiter.yaml", cwd=bare, check=False), 30)
        second = reader_clone(str(bare), tmp_path, "second")
        kept_out = arbitrate(second, "--session", "second")
        assert kept_out["held_by"] == "arbiter" and not kept_out["changed"]
        seq = proposed_seq(op(alice, "alice", "claim", "T1", "--json"))
        wait_for(lambda: owners(alice)["T1"][0] == "alice", 30, what="the running arbiter to decide")
        assert seq == 1
    finally:
        first.send_signal(signal.SIGKILL)  # dies holding the lock
        first.wait(timeout=10)
    record = git("show", "ifcoord:arbiter.yaml", cwd=bare)
    lease = float(record.split("lease_seconds:", 1)[1].split()[0])
    rounds: list[tuple[float, float]] = []  # when each round of the second arbiter began and ended

    def round_() -> dict[str, Any] | bool:
        began = time.monotonic()
        result = arbitrate(second, "--session", "second")
        rounds.append((began, time.monotonic()))
        return result["held_by"] is None and result

    took = wait_for(round_, 60, what="the second arbiter to take over")
    assert isinstance(took, dict) and took["changed"]
    # It takes over as soon as the dead one's record has been unchanged in its sight for the
    # lease: the record was first seen no later than the end of its first round here, so every
    # round that began a lease after that took over (whatever the machine's load).
    late = [began for began, _ in rounds[:-1] if began >= rounds[0][1] + lease]
    assert not late, (lease, rounds)
    assert "holder: second\nterm: 2\n" in git("show", "ifcoord:arbiter.yaml", cwd=bare)


def test_ci_workflow_files_are_yaml_with_the_trigger_and_their_command_decides(tmp_path: Path) -> None:
    import shlex

    from ruamel.yaml import YAML

    bare, admin = world(tmp_path)
    alice = session_clone(str(bare), tmp_path, "alice")
    seq = proposed_seq(op(alice, "alice", "claim", "T1", "--json"))
    wrote = ifcoord("ci", "github", "--json", cwd=admin)
    assert wrote.returncode == 0, wrote.stderr
    workflow = YAML(typ="safe").load((admin / ".github/workflows/ifcoord-arbiter.yml").read_text())
    assert workflow["on"]["push"]["branches"] == ["claude/*"]
    assert workflow["permissions"] == {"contents": "write"}
    steps = workflow["jobs"]["arbitrate"]["steps"]
    assert steps[0]["with"]["token"] == "${{ secrets.GITHUB_TOKEN }}"
    command = next(s["run"] for s in steps if "arbitrate" in s.get("run", ""))
    assert ifcoord("ci", "gitlab", cwd=admin).returncode == 0
    job = YAML(typ="safe").load((admin / ".gitlab/ifcoord-arbiter.yml").read_text())["ifcoord-arbiter"]
    assert "$CI_COMMIT_BRANCH =~ /^claude\\/[^\\/]*$/" in job["rules"][0]["if"]
    assert job["script"] == [command]
    again = ifcoord("ci", "github", cwd=admin)  # the same file again: no change, no refusal
    assert again.returncode == 0
    (admin / ".github/workflows/ifcoord-arbiter.yml").write_text("mine\n")
    assert ifcoord("ci", "github", cwd=admin).returncode == 2
    # Run the job's command as CI would, in a checkout of the repository with origin set.
    argv = shlex.split(command)
    assert argv[:3] == ["ifcoord", "arbitrate", "--once"]
    ran = ifcoord(*argv[1:], "--json", cwd=admin, env=ARBITER_ENV)
    assert ran.returncode == 0, ran.stderr
    assert [(d["session"], d["seq"], d["verdict"]) for d in json.loads(ran.stdout)["decisions"]] == [
        ("alice", seq, "accepted")
    ]


@pytest.mark.timeout(300)
def test_complete_next_in_own_branch_mode_proposes_the_completion_and_waits_for_the_arbiter(
    tmp_path: Path,
) -> None:
    """Own-branch mode: the completion is only a proposal until the arbiter decides, and `now`
    would still name the task; so `--next` proposes it and says to ask `now` after the
    arbiter's verdict, instead of an answer that is not one yet."""
    bare, admin = world(tmp_path)
    alice = session_clone(str(bare), tmp_path, "alice")
    assert decided(admin, "alice", proposed_seq(op(alice, "alice", "claim", "T1", "--json")))
    done = op(alice, "alice", "complete", "T1", "--next", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["op"] == "complete" and out["proposed"] is not None and out["next"] is None
    assert decided(admin, "alice", out["proposed"])
    assert owners(admin)["T1"] == ("alice", "done", 1)
    after = json.loads(op(alice, "alice", "now", "--json").stdout)
    assert (after["action"], after["task"]["id"], after["claimed"]) == ("work", "T2", True)
    assert decided(admin, "alice", 3)  # now's claim of T2 (alice's proposals: 1, 2, 3)
    # A clone that has not read the coordination branch yet does not know its mode: --next
    # starts in shared mode's turn, and the own-branch write inside it takes the same clone
    # lock (one lock, reentrant), rather than waiting on itself.
    for ref in git("for-each-ref", "--format=%(refname)", "refs/ifcoord/", cwd=alice).split():
        git("update-ref", "-d", ref, cwd=alice)
    again = ifcoord("complete", "T2", "--next", "--json", cwd=alice, env=session_env("alice"), timeout=45)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["next"] is None
