"""Each operation's decision or refusal (protocol sections 3, 4 and 8), fencing with epochs.

States come from markdown boards and YAML status files; results are written back with
`writeback.changed_files` and parsed again, so a sequence of operations runs like on the branch.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ifcoord.core.ops import (
    OpContext,
    OpResult,
    block_task,
    claim_next,
    claim_task,
    complete_task,
    heartbeat,
    progress_task,
    release_task,
    unblock_task,
)
from ifcoord.core.snapshot import BranchState, build_snapshot
from ifcoord.core.writeback import changed_files
from ifcoord.errors import ConflictError, IfcoordError, LeaseLost, NotReady, UsageError, exit_code_for
from ifcoord.git.history import entry_from
from ifcoord.git.transaction import Change
from ifcoord.models import Snapshot

NOW = datetime(2025, 11, 12, 14, 30, tzinfo=timezone.utc)
BOARD = "boards/PHASE-0.md"

PHASE_0 = """\
# Phase 0

## P0.1.4: Coordinator latency tests
**Status:** open
**Priority:** HIGH

## P0.1.5: IF.coordinator Integration Tests
**Status:** open
**Depends on:** P0.1.4
**Milestones:**
- [ ] 25% - Test scaffolding and setup complete
- [ ] 50% - Task lifecycle and blocker tests passing
- [ ] 75% - Latency tests passing
- [ ] 100% - All green

## P0.2.1: Live lease
**Status:** in progress
**Owner:** session-7
**Claimed at:** 2025-11-12T14:02:00Z
**Epoch:** 3

## P0.3.1: Reserved
**Session:** session-9

## P0.4.1: Finished
**Status:** done
**Owner:** s1
"""


def files_with(board: str = PHASE_0, **statuses: str) -> dict[str, bytes]:
    files = {BOARD: board.encode()}
    for session, text in statuses.items():
        files[f"status/{session.replace('_', '-')}.yaml"] = text.encode()
    return files


def snap_of(files: dict[str, bytes]) -> Snapshot:
    return build_snapshot(files)


def ctx(session: str = "s1", **kw) -> OpContext:
    return OpContext(session=session, now=kw.pop("now", NOW), **kw)


def apply(files: dict[str, bytes], result: OpResult, session: str) -> dict[str, bytes]:
    """The branch's files after `result` lands (as a transaction would write them)."""
    new = changed_files(BranchState(build_snapshot(files), files), result, session)
    out = dict(files)
    for path, data in new.items():
        if data is None:
            out.pop(path, None)
        else:
            out[path] = data
    return out


def run(files: dict[str, bytes], op, session: str, *args, **kw) -> tuple[OpResult, dict[str, bytes]]:
    c = kw.pop("ctx", None) or ctx(session)
    result = op(snap_of(files), *args, c, **kw)
    return result, apply(files, result, session)


def task_in(files: dict[str, bytes], tid: str):
    return snap_of(files).tasks()[tid]


def status_in(files: dict[str, bytes], session: str):
    return snap_of(files).statuses[session]


# --- claim ----------------------------------------------------------------------------------


def test_claim_of_a_ready_task_takes_the_lease_at_epoch_one() -> None:
    result = claim_task(snap_of(files_with()), "P0.1.4", ctx("s1"))
    assert (result.op, result.task_id, result.epoch, result.changed, result.forced) == (
        "claim",
        "P0.1.4",
        1,
        True,
        False,
    )
    (edit,) = result.board_edits
    assert edit.task_id == "P0.1.4"
    assert edit.state == "in_progress"
    assert edit.fields["owner"] == "s1"
    assert edit.fields["epoch"] == "1"
    assert edit.fields["claimed_at"] == "2025-11-12T14:30:00Z"
    assert "previous_owner" not in edit.fields
    assert result.status_updates["current_task"] == "P0.1.4"
    assert result.status_updates["epoch"] == 1
    assert result.status_updates["status"] == "working"


def test_claim_commit_says_what_it_did_in_subject_and_trailers() -> None:
    result = claim_task(snap_of(files_with()), "P0.1.4", ctx("s1"))
    assert result.subject("s1") == "ifcoord: claim P0.1.4 by s1"
    assert result.trailers("s1") == {
        "Ifcoord-Op": "claim",
        "Ifcoord-Task": "P0.1.4",
        "Ifcoord-Session": "s1",
        "Ifcoord-Epoch": "1",
    }


def test_claim_of_a_live_lease_is_a_conflict_naming_owner_and_time() -> None:
    # session-7 heartbeats (a STATUS file): its lease is live, not a person's claim
    board = PHASE_0.replace("P0.2.1: Live lease", "P0.1.9: Live lease")
    snap = snap_of(files_with(board=board, session_7="session: session-7\nstatus: working\n"))
    with pytest.raises(ConflictError) as err:
        claim_task(snap, "P0.1.9", ctx("s1"))
    assert err.value.message == "P0.1.9 is claimed by session-7 since 14:02 UTC (lease live)"
    assert err.value.exit_code == 3
    assert not isinstance(err.value, LeaseLost)


def test_claim_with_unmet_dependency_is_not_ready_naming_it_and_its_state() -> None:
    with pytest.raises(NotReady) as err:
        claim_task(snap_of(files_with()), "P0.1.5", ctx("s1"))
    assert err.value.message == "P0.1.5 depends on P0.1.4 (open)"
    assert err.value.exit_code == 4
    assert exit_code_for(err.value) == 4


def test_claim_of_an_unknown_task_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as err:
        claim_task(snap_of(files_with()), "P9.9", ctx("s1"))
    assert err.value.exit_code == 2
    assert "no task P9.9" in err.value.message


def test_claim_finds_a_task_whatever_the_case_of_its_id() -> None:
    assert claim_task(snap_of(files_with()), "p0.1.4", ctx("s1")).task_id == "P0.1.4"


def test_claim_of_a_done_task_is_not_ready() -> None:
    with pytest.raises(NotReady, match="P0.4.1 is done"):
        claim_task(snap_of(files_with()), "P0.4.1", ctx("s2"))


def test_claim_of_a_task_reserved_for_another_session_is_a_conflict() -> None:
    with pytest.raises(ConflictError, match="reserved for session-9, not s1"):
        claim_task(snap_of(files_with()), "P0.3.1", ctx("s1"))
    assert claim_task(snap_of(files_with()), "P0.3.1", ctx("session-9")).epoch == 1


def test_claim_of_a_task_already_held_is_a_no_op() -> None:
    result, files = run(files_with(), claim_task, "s1", "P0.1.4")
    again = claim_task(snap_of(files), "P0.1.4", ctx("s1"))
    assert again.changed is False
    assert again.board_edits == [] and again.status_updates == {}
    assert again.epoch == 1
    assert changed_files(BranchState(snap_of(files), files), again, "s1") == {}


def test_claim_of_a_stale_owners_task_is_a_reclaim_recording_the_previous_owner() -> None:
    result = claim_task(snap_of(files_with()), "P0.2.1", ctx("s1", stale=frozenset({"session-7"})))
    assert result.op == "reclaim"
    assert result.epoch == 4
    assert result.board_edits[0].fields["previous_owner"] == "session-7"
    assert "from session-7 (lease stale)" in result.reason
    assert result.subject("s1") == "ifcoord: reclaim P0.2.1 by s1"


def test_reclaim_of_a_live_lease_is_refused() -> None:
    with pytest.raises(ConflictError) as err:
        claim_task(snap_of(files_with()), "P0.2.1", ctx("s1"), op="reclaim")
    assert err.value.exit_code == 3
    assert "P0.2.1" in err.value.message and "session-7" in err.value.message


def test_reclaim_of_an_unclaimed_task_is_refused() -> None:
    with pytest.raises(ConflictError, match="no stale lease to reclaim"):
        claim_task(snap_of(files_with()), "P0.1.4", ctx("s1"), op="reclaim")


def test_reclaim_of_a_stale_lease_succeeds() -> None:
    c = ctx("s1", stale=frozenset({"session-7"}))
    result = claim_task(snap_of(files_with()), "P0.2.1", c, op="reclaim")
    assert (result.op, result.epoch) == ("reclaim", 4)


def test_forced_claim_bypasses_a_live_lease_and_is_recorded_as_forced() -> None:
    result = claim_task(snap_of(files_with()), "P0.2.1", ctx("human", force=True))
    assert result.forced is True
    assert result.epoch == 4
    assert result.trailers("human")["Ifcoord-Forced"] == "true"
    assert result.board_edits[0].fields["previous_owner"] == "session-7"
    assert "lease stale" not in result.reason  # it was live; the human forced it


def test_forced_claim_bypasses_unmet_dependencies() -> None:
    result = claim_task(snap_of(files_with()), "P0.1.5", ctx("human", force=True))
    assert result.forced and result.epoch == 1


def test_unforced_results_carry_no_forced_trailer() -> None:
    result = claim_task(snap_of(files_with()), "P0.1.4", ctx("s1"))
    assert "Ifcoord-Forced" not in result.trailers("s1")


def test_forced_trailer_reads_back_from_the_commit_message() -> None:
    result = claim_task(snap_of(files_with()), "P0.2.1", ctx("human", force=True))
    message = Change({}, result.subject("human"), result.trailers("human")).message()
    entry = entry_from("abc", 0, message)
    assert (entry.op, entry.task, entry.session, entry.epoch, entry.forced) == (
        "reclaim",
        "P0.2.1",
        "human",
        4,
        True,
    )


# --- claim --next ---------------------------------------------------------------------------


def test_claim_next_claims_the_schedulers_pick() -> None:
    result = claim_next(snap_of(files_with()), ctx("s1"))
    assert result.task_id == "P0.1.4"  # HIGH beats the unprioritised P0.3.1 and is ready
    assert result.changed


def test_claim_next_returns_the_held_task_without_a_write() -> None:
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    result = claim_next(snap_of(files), ctx("s1"))
    assert (result.task_id, result.changed) == ("P0.1.4", False)


def test_claim_next_with_nothing_ready_is_not_ready() -> None:
    board = "# B\n\n## T-1: a\n**Status:** in progress\n**Owner:** s9\n\n## T-2: b\n**Depends on:** T-1\n"
    with pytest.raises(NotReady) as err:
        claim_next(snap_of(files_with(board=board)), ctx("s1"))
    assert err.value.exit_code == 4
    assert "T-2 depends on T-1 (in_progress)" in err.value.message


# --- fencing: epochs and lost leases --------------------------------------------------------


def reclaimed_from_s1() -> dict[str, bytes]:
    """s1 claimed P0.1.4 at epoch 1, went silent, and s2 reclaimed it at epoch 2."""
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    _, files = run(files, claim_task, "s2", "P0.1.4", ctx=ctx("s2", stale=frozenset({"s1"})))
    t = task_in(files, "P0.1.4")
    assert (t.owner, t.epoch, t.previous_owner) == ("s2", 2, "s1")
    return files


OWNER_OPS = [
    ("progress", lambda s, c: progress_task(s, "P0.1.4", 50, c)),
    ("block", lambda s, c: block_task(s, "P0.1.4", ["P0.1.5"], c)),
    ("unblock", lambda s, c: unblock_task(s, "P0.1.4", c)),
    ("complete", lambda s, c: complete_task(s, "P0.1.4", c)),
    ("release", lambda s, c: release_task(s, "P0.1.4", c)),
]


@pytest.mark.parametrize("name, op", OWNER_OPS, ids=[n for n, _ in OWNER_OPS])
def test_old_owner_acting_after_a_reclaim_gets_lease_lost(name, op) -> None:
    files = reclaimed_from_s1()
    with pytest.raises(LeaseLost) as err:
        op(snap_of(files), ctx("s1"))
    assert err.value.exit_code == 3
    assert err.value.message.startswith("lease lost")
    assert "belongs to s2" in err.value.message


@pytest.mark.parametrize("name, op", OWNER_OPS, ids=[n for n, _ in OWNER_OPS])
def test_old_owner_holding_an_old_epoch_gets_lease_lost_even_when_owner_again(name, op) -> None:
    files = reclaimed_from_s1()
    # s2 went silent too and s1 (a new process) took the task back at epoch 3
    _, files = run(files, claim_task, "s1", "P0.1.4", ctx=ctx("s1", stale=frozenset({"s2"})))
    assert task_in(files, "P0.1.4").epoch == 3
    with pytest.raises(LeaseLost, match="lease lost: P0.1.4 is at epoch 3, s1 holds epoch 1"):
        op(snap_of(files), ctx("s1", held_epoch=1))
    op(snap_of(files), ctx("s1", held_epoch=3))  # the current holder is fine


@pytest.mark.parametrize("name, op", OWNER_OPS, ids=[n for n, _ in OWNER_OPS])
def test_a_session_that_never_owned_the_task_gets_a_plain_conflict(name, op) -> None:
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    with pytest.raises(ConflictError) as err:
        op(snap_of(files), ctx("s3"))
    assert not isinstance(err.value, LeaseLost)
    assert err.value.message == "P0.1.4 is claimed by s1, not by s3"
    assert err.value.exit_code == 3


FORCEABLE = [(n, op) for n, op in OWNER_OPS if n != "unblock"]


@pytest.mark.parametrize("name, op", FORCEABLE, ids=[n for n, _ in FORCEABLE])
def test_forced_owner_ops_bypass_the_holder_check_and_are_recorded(name, op) -> None:
    files = reclaimed_from_s1()
    result = op(snap_of(files), ctx("human", force=True))
    assert result.forced is True
    assert result.trailers("human")["Ifcoord-Forced"] == "true"


def test_a_forced_unblock_of_a_task_that_is_not_blocked_changes_nothing() -> None:
    # The lifecycle table: unblock of a task in progress is "no change", forced or not.
    result = unblock_task(snap_of(reclaimed_from_s1()), "P0.1.4", ctx("human", force=True))
    assert result.changed is False
    assert result.reason == "P0.1.4 is not blocked"


def test_progress_on_an_unclaimed_task_says_nobody_claimed_it() -> None:
    with pytest.raises(ConflictError, match="P0.1.4 is not claimed by anyone, not by s1"):
        progress_task(snap_of(files_with()), "P0.1.4", 10, ctx("s1"))


def test_epoch_grows_by_one_per_claim_and_stays_on_release() -> None:
    files = files_with()
    epochs = []
    for session in ("s1", "s2", "s1"):
        result, files = run(files, claim_task, session, "P0.1.4")
        epochs.append(result.epoch)
        result, files = run(files, release_task, session, "P0.1.4")
        assert result.epoch == epochs[-1]
        t = task_in(files, "P0.1.4")
        assert (t.owner, t.state, t.epoch) == (None, "open", epochs[-1])
    assert epochs == [1, 2, 3]


@settings(max_examples=15, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["claim", "release", "reclaim"]), st.sampled_from(["s1", "s2", "s3"])),
        min_size=1,
        max_size=6,
    )
)
def test_epoch_never_goes_down_and_each_successful_claim_adds_exactly_one(steps) -> None:
    files = files_with()
    epoch = 0
    for op, session in steps:
        before = task_in(files, "P0.1.4")
        try:
            if op == "release":
                result = release_task(snap_of(files), "P0.1.4", ctx(session))
            else:
                stale = frozenset({before.owner}) if op == "reclaim" and before.owner else frozenset()
                result = claim_task(snap_of(files), "P0.1.4", ctx(session, stale=stale), op=op)
        except IfcoordError as exc:
            assert exc.exit_code in (3, 4)
            continue
        files = apply(files, result, session)
        after = task_in(files, "P0.1.4")
        assert after.epoch >= epoch
        if op != "release" and result.changed:
            assert after.epoch == epoch + 1
            assert after.owner == session
        else:
            assert after.epoch == epoch
        epoch = after.epoch


# --- progress -------------------------------------------------------------------------------


def claimed_155() -> dict[str, bytes]:
    files = files_with(board=PHASE_0.replace("**Status:** open\n**Priority:** HIGH", "**Status:** done"))
    _, files = run(files, claim_task, "s1", "P0.1.5")
    return files


def test_progress_ticks_milestones_up_to_the_percent_and_sets_the_status_milestone() -> None:
    files = claimed_155()
    result = progress_task(snap_of(files), "P0.1.5", 50, ctx("s1"), note="lifecycle green")
    (edit,) = result.board_edits
    assert edit.tick_milestones_upto == 50
    assert edit.fields["progress"] == "50%"
    assert result.status_updates["milestone"] == "50% - Task lifecycle and blocker tests passing"
    assert result.status_updates["progress"] == 50
    assert result.status_updates["next_action"] == "lifecycle green"
    files = apply(files, result, "s1")
    t = task_in(files, "P0.1.5")
    assert [m.done for m in t.milestones] == [True, True, False, False]
    assert t.progress == 50
    assert t.note == "lifecycle green"
    assert t.state == "in_progress"
    status = status_in(files, "s1")
    assert status.milestone == "50% - Task lifecycle and blocker tests passing"
    assert status.progress == 50


def test_progress_below_the_first_milestone_ticks_nothing_and_keeps_the_milestone_text() -> None:
    files = claimed_155()
    result = progress_task(snap_of(files), "P0.1.5", 10, ctx("s1"))
    assert "milestone" not in result.status_updates
    files = apply(files, result, "s1")
    assert [m.done for m in task_in(files, "P0.1.5").milestones] == [False] * 4


def test_progress_records_test_counts_on_board_and_status() -> None:
    files = claimed_155()
    result = progress_task(snap_of(files), "P0.1.5", 25, ctx("s1"), tests_passed=3, tests_failed=1)
    assert result.board_edits[0].fields["tests"] == "3 passed, 1 failed"
    assert (result.status_updates["tests_passed"], result.status_updates["tests_failed"]) == (3, 1)


@pytest.mark.parametrize("percent", [-1, 101, 250])
def test_progress_outside_zero_to_hundred_is_a_usage_error(percent: int) -> None:
    with pytest.raises(UsageError) as err:
        progress_task(snap_of(claimed_155()), "P0.1.5", percent, ctx("s1"))
    assert err.value.exit_code == 2


def test_progress_on_an_unknown_task_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        progress_task(snap_of(files_with()), "NOPE-1", 10, ctx("s1"))


# --- block / unblock ------------------------------------------------------------------------


def test_block_records_what_the_task_waits_on_and_unblock_clears_it() -> None:
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    result, files = run(files, block_task, "s1", "P0.1.4", ["P0.2.1"], reason="needs the lease fix")
    assert result.op == "block" and result.epoch == 1
    t = task_in(files, "P0.1.4")
    assert (t.state, t.waiting_on, t.block_reason) == ("blocked", ["P0.2.1"], "needs the lease fix")
    status = status_in(files, "s1")
    assert (status.status, status.blocked_on) == ("blocked", "P0.2.1")

    result, files = run(files, unblock_task, "s1", "P0.1.4")
    t = task_in(files, "P0.1.4")
    assert (t.state, t.waiting_on, t.block_reason, t.owner) == ("in_progress", [], None, "s1")
    status = status_in(files, "s1")
    assert (status.status, status.blocked_on) == ("working", None)


def test_unblock_of_a_task_that_is_not_blocked_changes_nothing() -> None:
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    result = unblock_task(snap_of(files), "P0.1.4", ctx("s1"))
    assert result.changed is False


def test_claiming_a_blocked_task_held_by_self_is_a_no_op() -> None:
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    _, files = run(files, block_task, "s1", "P0.1.4", [])
    assert claim_task(snap_of(files), "P0.1.4", ctx("s1")).changed is False


# --- complete -------------------------------------------------------------------------------


def test_complete_marks_done_appends_to_completed_and_frees_dependants() -> None:
    files = files_with(s1="session: s1\nstatus: working\ncompleted: [F4.1]\n")
    _, files = run(files, claim_task, "s1", "P0.1.4")
    result, files = run(files, complete_task, "s1", "P0.1.4", deliverable="bench/latency.py", tests_passed=7)
    assert result.subject("s1") == "ifcoord: complete P0.1.4 by s1"
    t = task_in(files, "P0.1.4")
    assert (t.state, t.progress, t.deliverable) == ("done", 100, "bench/latency.py")
    status = status_in(files, "s1")
    assert status.completed == ["F4.1", "P0.1.4"]
    assert (status.status, status.current_task, status.tests_passed) == ("idle", None, 7)
    # the dependant is now claimable
    assert claim_task(snap_of(files), "P0.1.5", ctx("s2")).epoch == 1


def test_complete_with_no_status_file_starts_the_completed_list() -> None:
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    files = {k: v for k, v in files.items() if not k.startswith("status/")}
    result = complete_task(snap_of(files), "P0.1.4", ctx("s1"))
    assert result.status_updates["completed"] == ["P0.1.4"]


def test_complete_ticks_every_milestone() -> None:
    files = claimed_155()
    result, files = run(files, complete_task, "s1", "P0.1.5")
    assert result.board_edits[0].tick_milestones_upto == 100
    assert all(m.done for m in task_in(files, "P0.1.5").milestones)


def test_completing_a_task_already_done_by_self_changes_nothing() -> None:
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    _, files = run(files, complete_task, "s1", "P0.1.4")
    again = complete_task(snap_of(files), "P0.1.4", ctx("s1"))
    assert again.changed is False
    assert status_in(files, "s1").completed == ["P0.1.4"]


# --- release --------------------------------------------------------------------------------


def test_release_reopens_the_task_and_clears_owner_but_keeps_the_epoch() -> None:
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    result, files = run(files, release_task, "s1", "P0.1.4")
    assert result.subject("s1") == "ifcoord: release P0.1.4 by s1"
    t = task_in(files, "P0.1.4")
    assert (t.state, t.owner, t.claimed_at, t.epoch) == ("open", None, None, 1)
    status = status_in(files, "s1")
    assert (status.status, status.current_task) == ("idle", None)


def test_release_of_a_blocked_task_leaves_the_session_blocked_on_nothing() -> None:
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    _, files = run(files, block_task, "s1", "P0.1.4", ["P0.2.1"])
    _, files = run(files, release_task, "s1", "P0.1.4")
    t = task_in(files, "P0.1.4")
    assert (t.state, t.waiting_on) == ("open", [])
    status = status_in(files, "s1")
    assert (status.status, status.current_task, status.blocked_on) == ("idle", None, None)


def test_a_released_task_is_claimable_by_another_session_at_the_next_epoch() -> None:
    _, files = run(files_with(), claim_task, "s1", "P0.1.4")
    _, files = run(files, release_task, "s1", "P0.1.4")
    result = claim_task(snap_of(files), "P0.1.4", ctx("s2"))
    assert result.op == "claim" and result.epoch == 2
    assert "previous_owner" not in result.board_edits[0].fields


# --- heartbeat ------------------------------------------------------------------------------


def test_heartbeat_touches_only_the_status_file() -> None:
    result = heartbeat(snap_of(files_with()), ctx("s1"), state="polling")
    assert result.task_id is None and result.board_edits == []
    assert result.status_updates == {"last_poll": NOW, "status": "polling"}
    assert result.subject("s1") == "ifcoord: heartbeat by s1"
    assert result.trailers("s1") == {"Ifcoord-Op": "heartbeat", "Ifcoord-Session": "s1"}


def test_heartbeat_keeps_the_current_task_unless_told() -> None:
    assert "current_task" not in heartbeat(snap_of(files_with()), ctx("s1")).status_updates
    told = heartbeat(snap_of(files_with()), ctx("s1"), current_task=None)
    assert told.status_updates["current_task"] is None


def test_heartbeat_is_written_with_the_time_of_the_context() -> None:
    later = NOW + timedelta(minutes=3)
    _, files = run(files_with(), heartbeat, "s1", ctx=ctx("s1", now=later))
    assert status_in(files, "s1").last_poll == later


def test_claim_of_a_task_whose_owner_has_no_status_file_says_what_ends_it() -> None:
    board = PHASE_0.replace("P0.2.1: Live lease", "P0.1.9: Live lease")
    with pytest.raises(ConflictError) as err:
        claim_task(snap_of(files_with(board=board)), "P0.1.9", ctx("s1"))
    assert "session-7, and it has no STATUS file" in err.value.message
    assert "never goes stale" in err.value.message
    assert err.value.hint is not None and "--force" in err.value.hint
    unreadable = files_with(board=board, session_7="session: session-7\nlast_poll: [\n")
    with pytest.raises(ConflictError) as err:
        claim_task(snap_of(unreadable), "P0.1.9", ctx("s1"))
    assert "status/session-7.yaml cannot be read" in err.value.message
    assert claim_task(snap_of(files_with(board=board)), "P0.1.9", ctx("s1", force=True)).changed
