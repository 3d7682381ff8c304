"""From an operation's result to new file bytes: board, status file and dashboard."""

from __future__ import annotations

import difflib
from datetime import datetime, timezone

from ifcoord.core.ops import OpContext, OpResult, claim_task, heartbeat, progress_task
from ifcoord.core.snapshot import BranchState, build_snapshot
from ifcoord.core.writeback import DASHBOARD_PATH, changed_files
from ifcoord.models import Snapshot
from ifcoord.views.dashboard import render_dashboard

NOW = datetime(2025, 11, 12, 14, 30, tzinfo=timezone.utc)

PHASE_0 = (
    "# Phase 0 \n"  # a trailing space that must survive
    "\n"
    "Some prose with emoji ✅ and mojibake â³.\n"
    "\n"
    "## T-1: First task ⏳\n"
    "- **Status:** NOT STARTED\n"
    "- **Priority:** HIGH\n"
    "\n"
    "Notes about T-1.\n"
    "\n"
    "## T-2: Second task\n"
    "**Status:** NOT STARTED\n"
    "**Depends on:** T-1\n"
)
PHASE_1 = "# Phase 1\n\n## U-1: Other board\n**Status:** open\n"
STATUS_S1 = (
    "# session one, keep this comment\n"
    "session: s1\n"
    "status: polling   # idle most of the day\n"
    "branch: feat/x\n"
    "completed: [F4.1]\n"
    "team: blue\n"
)


def branch(**extra: bytes) -> dict[str, bytes]:
    files = {
        "boards/PHASE-0.md": PHASE_0.encode(),
        "boards/PHASE-1.md": PHASE_1.encode(),
        "status/s1.yaml": STATUS_S1.encode(),
    }
    files.update(extra)
    return files


def state_of(files: dict[str, bytes]) -> BranchState:
    return BranchState(build_snapshot(files), files)


def claim(files: dict[str, bytes], task_id: str = "T-1", session: str = "s1") -> OpResult:
    return claim_task(state_of(files).snapshot, task_id, OpContext(session=session, now=NOW))


def after(files: dict[str, bytes], new: dict[str, bytes | None]) -> Snapshot:
    merged = {**files, **{k: v for k, v in new.items() if v is not None}}
    return build_snapshot(merged)


def test_after_a_claim_the_board_reads_back_with_owner_epoch_and_state() -> None:
    files = branch()
    new = changed_files(state_of(files), claim(files), "s1")
    snap = after(files, new)
    t1 = snap.tasks()["T-1"]
    assert (t1.owner, t1.epoch, t1.state) == ("s1", 1, "in_progress")
    assert t1.claimed_at == NOW
    assert snap.statuses["s1"].current_task == "T-1"
    assert snap.statuses["s1"].epoch == 1
    assert snap.statuses["s1"].status == "working"


def test_a_claim_changes_only_the_claimed_tasks_lines_of_its_board() -> None:
    files = branch()
    new = changed_files(state_of(files), claim(files), "s1")
    assert set(new) == {"boards/PHASE-0.md", "status/s1.yaml"}
    before = PHASE_0.splitlines(keepends=True)
    now = new["boards/PHASE-0.md"].decode().splitlines(keepends=True)  # type: ignore[union-attr]
    removed, added = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=now, autojunk=False).get_opcodes():
        if tag != "equal":
            removed += before[i1:i2]
            added += now[j1:j2]
    assert removed == ["- **Status:** NOT STARTED\n"]
    assert added[0] == "- **Status:** IN PROGRESS\n"  # the board's capitals and list style kept
    assert {line.split(":**")[0] for line in added[1:]} == {"- **Owner", "- **Claimed at", "- **Epoch"}
    assert now[0] == "# Phase 0 \n"
    assert "Some prose with emoji ✅ and mojibake â³.\n" in now
    assert now[-3:] == before[-3:]  # T-2 untouched


def test_unrelated_boards_are_not_rewritten() -> None:
    files = branch()
    new = changed_files(state_of(files), claim(files), "s1")
    assert "boards/PHASE-1.md" not in new


def test_the_status_file_keeps_comments_and_unknown_keys() -> None:
    files = branch()
    new = changed_files(state_of(files), claim(files), "s1")
    text = new["status/s1.yaml"].decode()  # type: ignore[union-attr]
    assert text.startswith("# session one, keep this comment\nsession: s1\n")
    assert "# idle most of the day" in text
    assert "branch: feat/x\n" in text and "team: blue\n" in text
    assert "completed: [F4.1]\n" in text
    assert "current_task: T-1" in text


def test_a_session_without_a_status_file_gets_one_in_status_dir() -> None:
    files = branch()
    new = changed_files(state_of(files), claim(files, session="s2"), "s2")
    assert "status/s2.yaml" in new
    snap = after(files, new)
    assert snap.statuses["s2"].session == "s2"
    assert snap.statuses["s2"].current_task == "T-1"


def test_a_legacy_branch_gets_a_legacy_status_file() -> None:
    files = {"PHASE-0-TASK-BOARD.md": PHASE_0.encode(), "STATUS-SESSION-1.yaml": b"session: session-1\n"}
    new = changed_files(state_of(files), claim(files, session="session-2"), "session-2")
    assert set(new) == {"PHASE-0-TASK-BOARD.md", "STATUS-SESSION-2.yaml"}
    assert after(files, new).statuses["session-2"].current_task == "T-1"


def test_progress_ticks_only_the_tasks_own_milestone_checkboxes() -> None:
    board = (
        PHASE_0.replace("Notes about T-1.\n", "**Milestones:**\n- [ ] 25% - scaffold\n- [ ] 75% - tests\n")
        + "**Milestones:**\n- [ ] 25% - other\n"
    )
    files = branch(**{"boards/PHASE-0.md": board.encode()})
    files.update(changed_files(state_of(files), claim(files), "s1"))  # type: ignore[arg-type]
    result = progress_task(build_snapshot(files), "T-1", 50, OpContext(session="s1", now=NOW))
    new = changed_files(state_of(files), result, "s1")
    text = new["boards/PHASE-0.md"].decode()  # type: ignore[union-attr]
    assert "- [x] 25% - scaffold\n- [ ] 75% - tests\n" in text
    assert text.endswith("- [ ] 25% - other\n")  # T-2's milestone untouched
    t1 = after(files, new).tasks()["T-1"]
    assert t1.progress == 50
    assert [m.done for m in t1.milestones] == [True, False]
    assert after(files, new).statuses["s1"].milestone == "25% - scaffold"


def test_a_result_that_changes_nothing_writes_nothing() -> None:
    files = branch()
    assert changed_files(state_of(files), OpResult("claim", "T-1", "held", changed=False), "s1") == {}


def test_a_heartbeat_writes_only_the_status_file() -> None:
    files = branch()
    result = heartbeat(state_of(files).snapshot, OpContext(session="s1", now=NOW), state="polling")
    new = changed_files(state_of(files), result, "s1")
    assert set(new) == {"status/s1.yaml"}
    assert after(files, new).statuses["s1"].last_poll == NOW


def test_the_dashboard_is_rendered_from_the_state_after_the_change() -> None:
    files = branch()
    new = changed_files(state_of(files), claim(files), "s1", render_dashboard)
    assert set(new) == {"boards/PHASE-0.md", "status/s1.yaml", DASHBOARD_PATH}
    assert new[DASHBOARD_PATH] == render_dashboard(after(files, new)).encode()
    text = new[DASHBOARD_PATH].decode()  # type: ignore[union-attr]
    # the claim shows in T-1's table row, whatever the table's layout
    assert any(line.startswith("|") and "T-1" in line and "| s1 |" in line for line in text.splitlines())


def test_the_dashboard_is_not_a_board() -> None:
    files = branch()
    new = changed_files(state_of(files), claim(files), "s1", render_dashboard)
    snap = after(files, new)
    assert [b.path for b in snap.boards] == ["boards/PHASE-0.md", "boards/PHASE-1.md"]


def test_an_unchanged_dashboard_is_not_rewritten() -> None:
    files = branch()
    result = claim(files)
    first = changed_files(state_of(files), result, "s1", render_dashboard)
    files[DASHBOARD_PATH] = first[DASHBOARD_PATH]  # type: ignore[assignment]
    # the same decision against a branch whose dashboard already shows it
    again = changed_files(state_of(files), result, "s1", render_dashboard)
    assert DASHBOARD_PATH not in again


def test_no_dashboard_when_the_config_turns_it_off() -> None:
    files = branch(**{"ifcoord.yaml": b"dashboard: false\n"})
    new = changed_files(state_of(files), claim(files), "s1", render_dashboard)
    assert set(new) == {"boards/PHASE-0.md", "status/s1.yaml"}


def test_no_dashboard_without_a_renderer() -> None:
    files = branch()
    assert DASHBOARD_PATH not in changed_files(state_of(files), claim(files), "s1")
