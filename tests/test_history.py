"""`ifcoord log`: operations read back from commit trailers."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ifcoord.core.ops import OpResult
from ifcoord.git.history import entry_from, parse_trailers, read_log
from ifcoord.git.store import BranchStore
from ifcoord.git.transaction import Change


def message_for(result: OpResult, session: str) -> str:
    """The commit message a transaction writes for `result`."""
    return Change({}, result.subject(session), result.trailers(session)).message()


def test_trailers_of_an_ifcoord_commit_read_back_into_a_log_entry() -> None:
    message = message_for(OpResult("claim", "P0.1.5", "", epoch=3), "session-4-sip")
    assert message.splitlines()[0] == "ifcoord: claim P0.1.5 by session-4-sip"
    entry = entry_from("c0ffee", 1762957800, message)
    assert entry.subject == "ifcoord: claim P0.1.5 by session-4-sip"
    assert (entry.op, entry.task, entry.session, entry.epoch, entry.forced) == (
        "claim",
        "P0.1.5",
        "session-4-sip",
        3,
        False,
    )
    assert entry.time == datetime(2025, 11, 12, 14, 30, tzinfo=timezone.utc)


def test_a_forced_op_reads_back_as_forced() -> None:
    entry = entry_from("c", 0, message_for(OpResult("release", "T-1", "", epoch=2, forced=True), "human"))
    assert entry.forced is True and entry.op == "release"


def test_a_heartbeat_has_no_task_and_no_epoch() -> None:
    entry = entry_from("c", 0, message_for(OpResult("heartbeat", None, ""), "s1"))
    assert entry.subject == "ifcoord: heartbeat by s1"
    assert (entry.op, entry.task, entry.session, entry.epoch) == ("heartbeat", None, "s1", None)


def test_a_human_commit_without_trailers_is_listed_with_no_op() -> None:
    entry = entry_from("c", 0, "Fix typo in PHASE-0 board\n\nIt said 'Satus'.\n")
    assert entry.subject == "Fix typo in PHASE-0 board"
    assert (entry.op, entry.task, entry.session, entry.epoch, entry.forced) == (None, None, None, None, False)


def test_only_the_last_paragraph_holds_trailers() -> None:
    message = (
        "subject\n\nIfcoord-Op: claim\nmentioned in the body\n\nIfcoord-Task: T-1\nSigned-off-by: A <a@b>\n"
    )
    assert parse_trailers(message) == {"task": "T-1"}


def test_trailer_values_are_trimmed_and_other_trailers_ignored() -> None:
    message = "s\n\nIfcoord-Op:   complete  \nCo-authored-by: x <x@y>\nIfcoord-Epoch: 12\n"
    assert parse_trailers(message) == {"op": "complete", "epoch": "12"}


def test_an_epoch_that_is_not_a_number_is_dropped() -> None:
    assert entry_from("c", 0, "s\n\nIfcoord-Op: claim\nIfcoord-Epoch: x1\n").epoch is None


def test_an_empty_message_has_an_empty_subject() -> None:
    entry = entry_from("c", 0, "")
    assert entry.subject == "" and entry.op is None


def test_log_entry_json_has_stable_fields() -> None:
    entry = entry_from("c", 0, message_for(OpResult("claim", "T-1", "", epoch=1), "s1"))
    assert entry.to_json() == {
        "commit": "c",
        "time": "1970-01-01T00:00:00+00:00",
        "subject": "ifcoord: claim T-1 by s1",
        "op": "claim",
        "task": "T-1",
        "session": "s1",
        "epoch": 1,
        "forced": False,
        "op_id": None,
    }


def real_history(tmp_path: Path, messages: list[str]) -> tuple[BranchStore, list[str]]:
    """A real repository with one commit per message, oldest first, a second apart."""
    git_dir = tmp_path / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    store = BranchStore(git_dir, "origin", "ifcoord", remote_config={})
    shas: list[str] = []
    for i, message in enumerate(messages):
        when = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=i)
        parent = shas[-1] if shas else None
        shas.append(store.write_commit(parent, {"f": str(i).encode()}, message, "s", when))
    return store, shas


def test_read_log_filters_by_task_case_insensitively_and_limits(tmp_path: Path) -> None:
    store, (c0, c1, c2, c3) = real_history(
        tmp_path,
        [
            message_for(OpResult("claim", "P0.1.4", "", epoch=1), "s2"),
            message_for(OpResult("claim", "P0.1.5", "", epoch=1), "s1"),
            "hand edit\n",
            message_for(OpResult("complete", "P0.1.5", "", epoch=1), "s1"),
        ],
    )
    assert [e.commit for e in read_log(store, c3)] == [c3, c2, c1, c0]
    assert [e.commit for e in read_log(store, c3, task="p0.1.5")] == [c3, c1]
    assert [e.commit for e in read_log(store, c3, limit=2)] == [c3, c2]


def test_read_log_adds_only_the_ifcoord_commits_of_session_branches(tmp_path: Path) -> None:
    store, (coord,) = real_history(tmp_path, [message_for(OpResult("arbitrate", None, ""), "arbiter")])
    work = store.write_commit(None, {"app.py": b"x"}, "agent's own work", "s1")
    claim = store.write_commit(work, {"status/s1.yaml": b"session: s1\n"},
                               message_for(OpResult("claim", "T1", "", epoch=1), "s1"), "s1")  # fmt: skip
    entries = read_log(store, coord, session_tips=[claim])
    assert {e.commit for e in entries} == {coord, claim}
