"""The arbiter's decisions, without git: order, fencing, finality, the lock (ownbranch/arbiter.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ifcoord.core.snapshot import BranchState, build_snapshot
from ifcoord.ownbranch.arbiter import ArbiterRecord, Sightings, decide_round, try_acquire_or_renew
from ifcoord.ownbranch.proposals import pending, pending_json

AT = datetime(2026, 11, 30, 5, 0, tzinfo=timezone.utc)
CONFIG = b'mode: own-branch\nsession_branches: "claude/*"\n'


def coord(board: str, statuses: dict[str, str] | None = None) -> BranchState:
    raw = {"ifcoord.yaml": CONFIG, "boards/P.md": board.encode()}
    raw.update({f"status/{n}.yaml": t.encode() for n, t in (statuses or {}).items()})
    return BranchState(build_snapshot(raw, "c0"), raw)


def own(name: str, *proposals: str) -> tuple[str, bytes]:
    items = "".join(f"  - {p}\n" for p in proposals)
    text = f"session: {name}\nbranch: claude/{name}\nlast_poll: 2026-11-30T04:59:00Z\nproposals:\n{items}"
    return f"status/{name}.yaml", text.encode()


def after(state: BranchState, files: dict[str, bytes | None]) -> BranchState:
    raw = {**state.raw, **{p: d for p, d in files.items() if d is not None}}
    return BranchState(build_snapshot(raw, "c1"), raw)


def test_concurrent_claims_go_to_the_lower_clock_and_the_other_is_refused_naming_the_owner() -> None:
    state = coord("# P\n\n## T1: A\n")
    sessions = {
        "bob": own("bob", "{seq: 1, clock: 3, op: claim, task: T1}"),
        "alice": own("alice", "{seq: 1, clock: 4, op: claim, task: T1}"),
    }
    round_ = decide_round(state, sessions, frozenset(), AT)
    assert [(d["session"], d["verdict"], d.get("owner")) for d in round_.decisions] == [
        ("bob", "accepted", None),
        ("alice", "refused", "bob"),
    ]
    task = after(state, round_.files).snapshot.tasks()["T1"]
    assert (task.owner, task.epoch, task.state) == ("bob", 1, "in_progress")
    # Decided proposals are no longer pending for any reader.
    assert pending_json(after(state, round_.files).snapshot) == []


def test_a_done_task_stays_done_and_a_fenced_out_completion_is_refused_as_lease_lost() -> None:
    state = coord(
        "# P\n\n## T1: A\n**Status:** DONE\n**Owner:** bob\n**Epoch:** 2\n**Previous owner:** alice\n"
    )
    sessions = {
        "alice": own(
            "alice",
            "{seq: 1, clock: 1, op: complete, task: T1, epoch: 1}",
            "{seq: 2, clock: 2, op: claim, task: T1}",
        ),  # fmt: skip
    }
    round_ = decide_round(state, sessions, frozenset({"bob"}), AT)  # even with bob's lease lapsed
    verdicts = [(d["op"], d["verdict"], d["code"]) for d in round_.decisions]
    assert verdicts == [("complete", "refused", 3), ("claim", "refused", 4)]
    assert "lease lost" in round_.decisions[0]["reason"]
    decided = after(state, round_.files)
    assert decided.snapshot.tasks()["T1"].state == "done" and decided.snapshot.tasks()["T1"].owner == "bob"
    assert pending(decided.snapshot.statuses["alice"]) == []
    # A second round over the same tips decides nothing again: verdicts are final.
    assert decide_round(decided, sessions, frozenset(), AT).decisions == []


def test_a_takeover_needs_the_arbiters_own_judgement_of_staleness() -> None:
    state = coord("# P\n\n## T1: A\n**Status:** IN PROGRESS\n**Owner:** alice\n**Epoch:** 1\n",
                  {"alice": "session: alice\nlast_poll: 2026-11-30T04:00:00Z\n"})  # fmt: skip
    sessions = {"bob": own("bob", "{seq: 1, clock: 5, op: claim, task: T1}")}
    live = decide_round(state, sessions, frozenset(), AT)
    assert live.decisions[0]["verdict"] == "refused"
    stale = decide_round(state, sessions, frozenset({"alice"}), AT)
    task = after(state, stale.files).snapshot.tasks()["T1"]
    assert (task.owner, task.epoch, task.previous_owner) == ("bob", 2, "alice")


def test_the_lock_is_taken_over_only_after_its_lease_in_our_own_sight(tmp_path: Path) -> None:
    now = [1000.0]
    sightings = Sightings(tmp_path / "s.json", clock=lambda: now[0])
    theirs = ArbiterRecord("other", 3, "2020-01-01T00:00:00Z", 30.0)  # written long ago, by its clock
    assert try_acquire_or_renew(theirs, "me", sightings, 30.0, AT) == (None, "other")
    now[0] += 29
    assert try_acquire_or_renew(theirs, "me", sightings, 30.0, AT) == (None, "other")
    now[0] += 2
    record, held_by = try_acquire_or_renew(theirs, "me", sightings, 30.0, AT)
    assert held_by is None and record is not None and (record.holder, record.term) == ("me", 4)
    renewed = ArbiterRecord("other", 3, "2026-11-30T05:00:01Z", 30.0)  # it renewed: watch again
    assert try_acquire_or_renew(renewed, "me", sightings, 30.0, AT) == (None, "other")
    mine, _ = try_acquire_or_renew(record, "me", sightings, 30.0, AT)
    assert mine is not None and mine.term == 4


def test_a_proposal_carries_what_the_operation_needs_to_run_again_on_the_arbiters_side() -> None:
    from ifcoord.core.ops import OpContext, block_task, complete_task, progress_task
    from ifcoord.ownbranch.proposals import proposal_from, proposals_of, replay

    state = coord(
        "# P\n\n## T1: A\n**Status:** IN PROGRESS\n**Owner:** alice\n**Epoch:** 2\n\n## T8: B\n\n## T9: C\n"
    )
    ctx = OpContext("alice", AT, frozenset(), 2)
    snap = state.snapshot
    for result in (
        progress_task(snap, "T1", 60, ctx, "halfway", 3, 1),
        complete_task(snap, "T1", ctx, "src/x.py", 5, 0),
        block_task(snap, "T1", ["T9", "T8"], ctx, "waiting"),
    ):
        proposal = proposal_from(result, "alice", 7, 9, 2)
        text = f"session: alice\nproposals:\n  - {proposal.to_yaml()}\n".replace("'", '"')
        (read_back,) = proposals_of(build_snapshot({"status/alice.yaml": text.encode()}).statuses["alice"])
        again = replay(snap, read_back, ctx)
        assert (again.op, again.board_edits, again.epoch) == (result.op, result.board_edits, result.epoch)


def test_session_branch_patterns_mean_what_every_glob_of_the_config_means() -> None:
    # One glob meaning everywhere: `*` stays within a segment, `**` spans segments.
    from ifcoord.ownbranch.branches import session_branches

    heads = {"claude/alice": "1", "claude/a/b": "2", "ifcoord": "3", "main": "4"}
    assert session_branches(heads, "claude/*", "ifcoord") == {"claude/alice": "1"}
    assert session_branches(heads, "claude/**", "ifcoord") == {"claude/alice": "1", "claude/a/b": "2"}


def test_overlaying_the_same_statuses_again_reads_no_yaml_and_gives_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loop merges the same pair of files on every cycle: the merge is kept by content."""
    from ifcoord.ownbranch import proposals

    proposals.merged_status.cache_clear()
    state = coord("# P\n\n## T1: A\n", {"alice": "session: alice\nlast_poll: 2026-11-30T04:00:00Z\n"})
    files = {"alice": own("alice", "{seq: 1, clock: 1, op: claim, task: T1}")}
    first = proposals.overlay_sessions(state, files)
    renders: list[bytes | None] = []
    real = proposals.render_status
    def counted(old: bytes | None, *args: Any, **kw: Any) -> bytes:
        renders.append(old)
        return real(old, *args, **kw)

    monkeypatch.setattr(proposals, "render_status", counted)
    assert proposals.overlay_sessions(state, files) == first
    assert renders == []
    claim, release = "{seq: 1, clock: 1, op: claim, task: T1}", "{seq: 2, clock: 2, op: release, task: T1}"
    changed = {"alice": own("alice", claim, release)}
    again = proposals.overlay_sessions(state, changed)
    assert len(renders) == 1 and again["status/alice.yaml"] != first["status/alice.yaml"]
    assert b"seq: 2" in again["status/alice.yaml"]
    kept = proposals.merged_status.cache_info().currsize
    path, data = own("alice", claim)
    big = data + b"note: " + b"x" * proposals.MERGE_KEPT_MAX + b"\n"  # merged, not kept
    assert b"xxx" in proposals.overlay_sessions(state, {"alice": (path, big)})["status/alice.yaml"]
    assert proposals.merged_status.cache_info().currsize == kept
