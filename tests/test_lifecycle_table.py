"""The lifecycle table, cell by cell: every operation from every state by every actor.

The expected matrix below is written out by hand from docs/protocol.md section 4, not derived
from the code, so a change to the table in core/lifecycle.py that the docs do not make fails here.
"""

from __future__ import annotations

import re

import pytest

from ifcoord.core import lifecycle
from ifcoord.core.lifecycle import check, claimable, owner_is_stale
from ifcoord.errors import IfcoordError, LeaseLost
from ifcoord.models import STATES, Task

# Per state, the three actors: s1 (the owner of a held or finished task), s2 (another live
# session), and a person with --force. T: allowed (writes the target state), N: no change
# (exit 0), 2/3/4: refused with that exit code.
EXPECTED = """
state        op        s1 s2 person
open         claim     T  T  T
open         reclaim   3  3  T
open         progress  3  3  4
open         block     3  3  4
open         unblock   3  3  4
open         complete  3  3  4
open         release   N  N  N
open         cancel    2  2  T
open         reopen    N  N  N
claimed      claim     N  3  T
claimed      reclaim   N  3  T
claimed      progress  T  3  T
claimed      block     T  3  T
claimed      unblock   N  3  N
claimed      complete  T  3  T
claimed      release   T  3  T
claimed      cancel    2  2  T
claimed      reopen    4  4  4
in_progress  claim     N  3  T
in_progress  reclaim   N  3  T
in_progress  progress  T  3  T
in_progress  block     T  3  T
in_progress  unblock   N  3  N
in_progress  complete  T  3  T
in_progress  release   T  3  T
in_progress  cancel    2  2  T
in_progress  reopen    4  4  4
blocked      claim     N  3  T
blocked      reclaim   N  3  T
blocked      progress  T  3  T
blocked      block     T  3  T
blocked      unblock   T  3  T
blocked      complete  T  3  T
blocked      release   T  3  T
blocked      cancel    2  2  T
blocked      reopen    4  4  4
review       claim     N  3  T
review       reclaim   N  3  T
review       progress  T  3  T
review       block     T  3  T
review       unblock   N  3  N
review       complete  T  3  T
review       release   T  3  T
review       cancel    2  2  T
review       reopen    4  4  4
done         claim     4  4  4
done         reclaim   4  4  4
done         progress  4  4  4
done         block     4  4  4
done         unblock   4  4  4
done         complete  N  4  4
done         release   4  4  4
done         cancel    4  4  4
done         reopen    2  2  T
cancelled    claim     4  4  4
cancelled    reclaim   4  4  4
cancelled    progress  4  4  4
cancelled    block     4  4  4
cancelled    unblock   4  4  4
cancelled    complete  4  4  4
cancelled    release   4  4  4
cancelled    cancel    N  N  N
cancelled    reopen    2  2  T
"""

ACTORS = {"s1": ("s1", False), "s2": ("s2", False), "person": ("human", True)}


def expected_cells() -> list[tuple[str, str, str, str]]:
    lines = [ln.split() for ln in EXPECTED.strip().splitlines()[1:]]
    return [(state, op, actor, cells[i]) for state, op, *cells in lines for i, actor in enumerate(ACTORS)]


def task_in(state: str) -> Task:
    """A task in `state`: held and finished ones were claimed by s1 (cancelled ones lost their owner)."""
    owner = None if state in ("open", "cancelled") else "s1"
    return Task(
        id="T1", title="t", file="boards/PHASE-0.md", line=3, end_line=5, level=2, phase="0", position=0,
        state=state, owner=owner, epoch=0 if state == "open" else 1,
    )  # fmt: skip


def outcome(state: str, op: str, actor: str) -> tuple[str, lifecycle.Verdict | IfcoordError]:
    session, force = ACTORS[actor]
    try:
        v = check(op, task_in(state), session, force=force)
    except IfcoordError as exc:
        return str(exc.exit_code), exc
    return ("N" if v.no_change else "T"), v


def test_the_matrix_covers_every_operation_state_and_actor() -> None:
    cells = {(s, op, a) for s, op, a, _ in expected_cells()}
    assert cells == {(s, op, a) for s in STATES for op in lifecycle.OPERATIONS for a in ACTORS}


@pytest.mark.parametrize("state, op, actor, want", expected_cells())
def test_every_cell_of_the_lifecycle_table(state: str, op: str, actor: str, want: str) -> None:
    got, verdict = outcome(state, op, actor)
    assert got == want, verdict
    if got == "T":
        assert isinstance(verdict, lifecycle.Verdict)
        assert verdict.target == lifecycle.TABLE[op].target


def test_finished_work_is_refused_with_who_finished_it_and_how_to_reopen() -> None:
    from datetime import datetime, timezone

    done = task_in("done").model_copy(
        update={"completed_at": datetime(2026, 1, 2, 14, 2, tzinfo=timezone.utc)}
    )
    with pytest.raises(IfcoordError) as err:
        check("progress", done, "s1")
    assert err.value.exit_code == 4
    assert err.value.message == "T1 is done (completed by s1 at 14:02 UTC)"
    assert "ifcoord task reopen T1" in (err.value.hint or "")


def test_an_older_epoch_is_lease_lost_before_anything_else() -> None:
    for op in ("progress", "block", "unblock", "complete", "release"):
        with pytest.raises(LeaseLost):
            check(op, task_in("in_progress"), "s1", held_epoch=0)


def test_a_stale_owner_frees_every_held_state_and_never_a_finished_one() -> None:
    for state in STATES:
        task = task_in(state).model_copy(update={"owner": "s1"})
        stale = owner_is_stale(task, {"s1"})
        assert stale == (state not in ("done", "cancelled")), state
        if state in lifecycle.HELD or state == "open":
            assert claimable(task, {"s1"}) is None, state
            assert check("reclaim", task, "s2", stale={"s1"}).target == "in_progress"
        else:
            assert claimable(task, {"s1"}) == f"state is {state}"


def test_held_tasks_without_an_owner_are_not_free() -> None:
    # A person wrote "IN PROGRESS" or "BLOCKED" by hand: somebody is on it, nobody may claim it.
    for state in sorted(lifecycle.HELD):
        task = task_in(state).model_copy(update={"owner": None})
        assert claimable(task, frozenset()) == f"state is {state}"


def test_claims_need_done_dependencies_unless_forced() -> None:
    with pytest.raises(IfcoordError) as err:
        check("claim", task_in("open"), "s2", unmet=["T0"], tasks={})
    assert err.value.exit_code == 4 and "T0 (not on any board)" in err.value.message
    assert check("claim", task_in("open"), "human", force=True, unmet=["T0"]).actor == "person"


COMMAND = re.compile(r"`ifcoord (task )?(claim|reclaim|reopen|cancel) (T1)`")


@pytest.mark.parametrize("state, op, actor, want", [c for c in expected_cells() if c[3] in "234"])
def test_a_refusal_never_advises_a_command_that_would_itself_be_refused(
    state: str, op: str, actor: str, want: str
) -> None:
    _, err = outcome(state, op, actor)
    assert isinstance(err, IfcoordError)
    for match in COMMAND.finditer(err.hint or ""):
        advised, person = match.group(2), bool(match.group(1))
        session = "human" if person else ACTORS[actor][0]
        got, verdict = outcome_for(state, advised, session, force=person)
        assert got in ("T", "N"), f"{err.line()} -> `{match.group(0)}` is refused: {verdict}"


def outcome_for(state: str, op: str, session: str, force: bool) -> tuple[str, object]:
    try:
        v = check(op, task_in(state), session, force=force)
    except IfcoordError as exc:
        return str(exc.exit_code), exc
    return ("N" if v.no_change else "T"), v


def test_the_docs_print_the_table_the_code_enforces() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    assert lifecycle.table_markdown() in docs
