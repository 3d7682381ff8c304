"""`ifcoord now`'s decision (session/now.py): pure, from one snapshot, no git."""

from __future__ import annotations

from ifcoord.core.snapshot import build_snapshot
from ifcoord.models import Snapshot
from ifcoord.session.now import answer_json, continue_message, decide, message, primary_assignments


def board(*tasks: str) -> str:
    return "# Phase 0\n\n" + "\n".join(tasks)


def task(tid: str, *fields: str, heading: str = "##") -> str:
    return "\n".join([f"{heading} {tid}: Task {tid}", *fields, ""]) + "\n"


def snap(text: str, statuses: dict[str, str] | None = None) -> Snapshot:
    raw = {"boards/PHASE-0.md": text.encode()}
    for name, state in (statuses or {}).items():
        raw[f"status/{name}.yaml"] = f"session: {name}\nstatus: {state}\n".encode()
    return build_snapshot(raw)


FILLERS = (
    "## Filler tasks\n\n"
    + task("F1", "**Kind:** filler", heading="###")
    + task("F2", "**Kind:** filler", heading="###")
)


def test_a_session_holding_nothing_is_told_to_claim_the_first_ready_primary() -> None:
    s = snap(board(task("T1", "**Priority:** LOW"), task("T2", "**Priority:** HIGH"), FILLERS))
    answer = decide(s, "s1")
    assert (answer.action, answer.task and answer.task.id) == ("claim", "T2")


def test_a_held_task_is_the_answer_with_its_next_milestone_in_the_continue_text() -> None:
    s = snap(
        board(
            task(
                "T1", "**Status:** in_progress", "**Owner:** s1", "**Milestones:**",
                "- [x] 50% - half", "- [ ] 100% - all",
            )
        )
    )  # fmt: skip
    answer = decide(s, "s1")
    assert (answer.action, answer.task and answer.task.id) == ("work", "T1")
    assert answer.task is not None
    text = continue_message(answer.task)
    assert text.startswith("ifcoord: continue T1 (50%, next milestone: 100% - all) or block/release it")


def test_a_session_whose_primaries_wait_gets_a_filler_and_the_reason() -> None:
    s = snap(
        board(
            task("T1", "**Status:** in_progress", "**Owner:** s2"), task("T2", "**Depends on:** T1"), FILLERS
        )
    )
    answer = decide(s, "s1")
    assert (answer.action, answer.task and answer.task.id) == ("claim", "F1")
    assert "T2 depends on T1" in answer.reason


def test_nothing_ready_names_what_the_session_waits_on() -> None:
    s = snap(board(task("T1", "**Status:** in_progress", "**Owner:** s2"), task("T2", "**Depends on:** T1")))
    answer = decide(s, "s1")
    assert answer.action == "wait" and answer.waiting_on == ["T1"]
    assert message(answer, s).startswith("ifcoord: nothing ready for s1: waiting on T1")


def test_a_finished_board_says_done() -> None:
    s = snap(board(task("T1", "**Status:** done")))
    assert decide(s, "s1").action == "done"


def test_a_blocked_task_whose_blocker_is_done_is_to_be_unblocked_first() -> None:
    s = snap(
        board(
            task("T1", "**Status:** done"),
            task("T2", "**Status:** blocked", "**Owner:** s1", "**Waiting on:** T1"),
        )
    )
    answer = decide(s, "s1")
    assert (answer.action, answer.task and answer.task.id) == ("unblock", "T2")
    assert message(answer, s).startswith("ifcoord: unblock T2")


def test_a_ready_primary_pulls_exactly_one_session_off_its_filler() -> None:
    text = board(
        task("T1", "**Status:** done"),
        task("T2", "**Depends on:** T1"),
        "## Filler tasks\n\n",
        task("F1", "**Kind:** filler", "**Status:** in_progress", "**Owner:** s1", heading="###"),
        task("F2", "**Kind:** filler", "**Status:** in_progress", "**Owner:** s2", heading="###"),
    )
    s = snap(text, {"s1": "working", "s2": "working"})
    answers = {name: decide(s, name) for name in ("s1", "s2")}
    switched = [n for n, a in answers.items() if a.action == "switch"]
    assert switched == ["s1"]
    a = answers["s1"]
    assert a.primary is not None and a.primary.id == "T2" and a.task is not None and a.task.id == "F1"
    assert message(a, s).startswith("ifcoord: finish or release filler F1: your primary T2 is ready")
    assert answers["s2"].action == "work"


def test_the_session_a_primary_names_is_the_one_told_to_switch() -> None:
    text = board(
        task("T2", "**Session:** s2"),
        "## Filler tasks\n\n",
        task("F1", "**Kind:** filler", "**Status:** in_progress", "**Owner:** s1", heading="###"),
        task("F2", "**Kind:** filler", "**Status:** in_progress", "**Owner:** s2", heading="###"),
    )
    s = snap(text, {"s1": "working", "s2": "working"})
    tasks = s.tasks()
    from ifcoord.core.scheduler import resolve_dependencies

    assert primary_assignments(tasks, resolve_dependencies(tasks), ["s1", "s2"], frozenset()) == {"T2": "s2"}


def test_stale_and_offline_sessions_are_not_told_to_switch() -> None:
    text = board(
        task("T2"),
        "## Filler tasks\n\n",
        task("F1", "**Kind:** filler", "**Status:** in_progress", "**Owner:** s1", heading="###"),
        task("F2", "**Kind:** filler", "**Status:** in_progress", "**Owner:** s2", heading="###"),
    )
    s = snap(text, {"s1": "offline", "s2": "working"})
    assert decide(s, "s2").action == "switch"
    s = snap(text, {"s1": "working", "s2": "working"})
    assert decide(s, "s2", stale=frozenset({"s1"})).action == "switch"


def test_the_json_answer_carries_the_task_in_full_with_what_it_unblocks() -> None:
    s = snap(board(task("T1", "**Deliverable:** `src/a.py`"), task("T2", "**Depends on:** T1")))
    data = answer_json(decide(s, "s1"), s, frozenset())
    assert data["action"] == "claim" and data["task"]["id"] == "T1"
    assert data["task"]["unblocks"] == ["T2"] and data["task"]["deliverable"] == "`src/a.py`"
    assert {"task", "reason", "action", "session", "waiting_on", "message"} <= set(data)


def test_a_session_holding_nothing_takes_a_ready_primary_before_anyone_is_pulled_off_a_filler() -> None:
    text = board(
        task("T2"),
        "## Filler tasks\n\n",
        task("F1", "**Kind:** filler", "**Status:** in_progress", "**Owner:** s1", heading="###"),
    )
    s = snap(text, {"s1": "working", "s2": "idle"})
    assert decide(s, "s1").action == "work"  # s2 holds nothing: it claims T2 at its next look
    assert (decide(s, "s2").action, decide(s, "s2").task.id) == ("claim", "T2")  # type: ignore[union-attr]
    stopped = snap(text, {"s1": "working", "s2": "done"})  # s2's agent stopped asking
    assert decide(stopped, "s1").action == "switch"


def test_a_session_about_to_unblock_its_own_task_is_not_pulled_to_another_primary() -> None:
    text = board(
        task("T1", "**Status:** done"),
        task("T2", "**Status:** blocked", "**Owner:** s1", "**Waiting on:** T1"),
        task("T3"),
        "## Filler tasks\n\n",
        task("F1", "**Kind:** filler", "**Status:** in_progress", "**Owner:** s1", heading="###"),
        task("F2", "**Kind:** filler", "**Status:** in_progress", "**Owner:** s2", heading="###"),
    )
    s = snap(text, {"s1": "working", "s2": "working"})
    assert decide(s, "s1").action == "unblock"
    answer = decide(s, "s2")
    assert answer.action == "switch" and answer.primary is not None and answer.primary.id == "T3"


def test_every_command_handed_to_the_agent_carries_the_epoch_it_holds() -> None:
    # A process left over from an older claim (same clone, same session name) follows its own,
    # older instructions: their --epoch makes the lifecycle refuse it with "lease lost".
    s = snap(board(task("T1", "**Status:** in_progress", "**Owner:** s1", "**Epoch:** 3")))
    answer = decide(s, "s1")
    assert answer.task is not None
    text = message(answer, s)
    for command in (
        "progress T1 PERCENT --note ... --epoch 3",
        "complete T1 --epoch 3 --next",
        "release T1 --epoch 3",
    ):
        assert f"`ifcoord {command}`" in text, text
    assert "`ifcoord complete T1 --epoch 3 --next`" in continue_message(answer.task)
