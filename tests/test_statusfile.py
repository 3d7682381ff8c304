"""STATUS files: safe parsing with file:line errors, byte-preserving updates, file names."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ifcoord.errors import InvalidData
from ifcoord.files.status import (
    MAX_STATUS_BYTES,
    load_safe_yaml,
    parse_status,
    render_status,
    session_from_path,
    status_path_for,
    to_plain,
)
from ifcoord.models import SessionStatus

PATH = "status/session-4-sip.yaml"

SAMPLE = b"""\
# Session 4 (SIP) status - written by the poll loop, read by everyone
session: session-4-sip
status: working          # polling | working | blocked | idle | offline | done
current_task: P0.1.5
milestone: "50% - Task lifecycle and blocker tests passing"
progress: 50

# where the work is pushed
branch: claude/sip-escalate-integration-x
last_poll: 2025-11-12T14:30:00Z
blocked_on: P0.1.4
next_action: 'Waiting for coordinator latency tests'
tests_passed: 3
tests_failed: 0
completed: [F4.1, F4.3]
claiming: P0.1.5   # legacy key, kept as it is
notes:
  - first note    # why
  - second note
# end of file
"""


def changed_lines(before: bytes, after: bytes) -> list[tuple[str, str]]:
    a, b = before.decode().splitlines(), after.decode().splitlines()
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


# --- parsing -----------------------------------------------------------------------------


def test_parses_the_spec_sample_with_an_aware_timestamp() -> None:
    status = parse_status(PATH, SAMPLE)
    assert status.session == "session-4-sip"
    assert status.status == "working"
    assert status.current_task == "P0.1.5"
    assert status.progress == 50
    assert status.last_poll == datetime(2025, 11, 12, 14, 30, tzinfo=timezone.utc)
    assert status.completed == ["F4.1", "F4.3"]
    assert status.model_extra == {"claiming": "P0.1.5", "notes": ["first note", "second note"]}


def test_timestamp_with_an_offset_keeps_its_instant() -> None:
    status = parse_status(PATH, b"session: session-4-sip\nlast_poll: 2025-11-12T14:30:00+02:00\n")
    assert status.last_poll == datetime(2025, 11, 12, 12, 30, tzinfo=timezone.utc)
    assert type(status.last_poll) is datetime


def test_legacy_timestamp_key_stands_for_last_poll() -> None:
    data = b"session: session-4-sip\nclaiming: P0.1.5\ntimestamp: 2025-11-12T14:00:00Z\n"
    status = parse_status("STATUS-SESSION-4-SIP.yaml", data)
    assert status.last_poll == datetime(2025, 11, 12, 14, tzinfo=timezone.utc)
    assert status.model_extra == {"claiming": "P0.1.5"}


def test_last_poll_wins_over_timestamp_when_both_are_present() -> None:
    data = b"session: session-4-sip\ntimestamp: 2025-11-12T14:00:00Z\nlast_poll: 2025-11-12T15:00:00Z\n"
    status = parse_status(PATH, data)
    assert status.last_poll is not None and status.last_poll.hour == 15
    assert status.model_extra is not None and "timestamp" in status.model_extra


def test_none_words_and_a_single_completed_value() -> None:
    status = parse_status(PATH, b"session: session-4-sip\ncurrent_task: none\ncompleted: P0.1.5\n")
    assert status.current_task is None
    assert status.completed == ["P0.1.5"]


def test_status_word_case_is_forgiven() -> None:
    assert parse_status(PATH, b"session: session-4-sip\nstatus: Working\n").status == "working"


def test_utf8_bom_is_accepted() -> None:
    assert parse_status(PATH, b"\xef\xbb\xbfsession: session-4-sip\n").session == "session-4-sip"


def refusal(data: bytes, path: str = PATH) -> InvalidData:
    with pytest.raises(InvalidData) as info:
        parse_status(path, data)
    assert info.value.exit_code == 6
    assert "\n" not in info.value.line()
    return info.value


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b"session: session-4-sip\nx: &a [1, 2]\n", 2, "anchor &a"),
        (b"session: session-4-sip\nx: [1]\ny: *a\n", 3, "YAML"),  # undefined alias
        (b"session: session-4-sip\na: &a [1]\nb: *a\n", 2, "anchor"),
        (b"session: session-4-sip\nstatus: !!str working\n", 2, "tag"),
        (b"session: session-4-sip\nblocked_on: !custom P1\n", 2, "tag !custom"),
        (b"session: session-4-sip\nmap: !!map {a: 1}\n", 2, "tag"),
        (b"session: session-4-sip\nstatus: [working\nprogress: 5\n", 3, "YAML syntax error"),
        (b"session: session-4-sip\n  bad: indent\n", 2, "YAML syntax error"),
        (b"session: session-4-sip\nstatus: working\nstatus: idle\n", 3, "duplicate"),
        (b"session: session-9\n", 1, "session-4-sip"),
        (b"session: session-4-sip\nlast_poll: 2025-11-12T14:30:00\n", 2, "time zone"),
        (b"session: session-4-sip\nprogress: lots\n", 2, "progress"),
        (b"session: session-4-sip\nstatus: sleeping\n", 2, "status"),
        (b"- session-4-sip\n- working\n", 1, "mapping"),
        (b"just text\n", 1, "mapping"),
        (b"", 1, "mapping"),
        (b"# only a comment\n", 1, "mapping"),
        (b"status: working\n", 1, "session"),
        (b"session: session-4-sip\n---\nsession: session-4-sip\n", 2, "more than one"),
        (b"session: session-4-sip\nnote: caf\xe9\n", 2, "UTF-8"),
        (b"session: session-4-sip\n1: one\n", 2, "not a name"),
    ],
)
def test_refusals_name_file_and_line(data: bytes, line: int, words: str) -> None:
    err = refusal(data)
    assert err.file == PATH
    assert err.line_no == line
    assert err.message.startswith(f"{PATH}:{line}: ")
    assert words.lower() in err.message.lower()
    assert err.hint


def test_alias_bomb_is_refused_before_expansion() -> None:
    lines = ["session: session-4-sip", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    err = refusal("\n".join(lines).encode())
    assert err.line_no == 2 and "anchor &a0" in err.message


def test_file_over_64_kib_is_refused_at_the_line_crossing_the_limit() -> None:
    data = b"session: session-4-sip\n" + b"# padding padding padding\n" * 3000
    assert len(data) > MAX_STATUS_BYTES
    err = refusal(data)
    assert "64 KiB" in err.message
    assert err.line_no == data.count(b"\n", 0, MAX_STATUS_BYTES) + 1


def test_file_name_that_is_not_a_session_is_refused() -> None:
    err = refusal(b"session: Session 4\n", path="status/Session 4.yaml")
    assert err.file == "status/Session 4.yaml" and err.line_no == 1


def test_load_safe_yaml_is_shared_and_returns_round_trip_types() -> None:
    doc = load_safe_yaml("x.yaml", b"a: 1 # c\nb: [x]\n")
    assert to_plain(doc) == {"a": 1, "b": ["x"]}


def test_a_text_loaded_again_is_not_parsed_again_and_a_refusal_still_names_each_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ifcoord.files import yamlsafe

    parses: list[str] = []
    real = yamlsafe._refuse_unsafe

    def counted(path: str, text: str) -> None:
        parses.append(path)
        real(path, text)

    monkeypatch.setattr(yamlsafe, "_refuse_unsafe", counted)
    text = b"session: s1\nnote: kept by content, whatever the file # 1\n"
    first = load_safe_yaml("status/s1.yaml", text)
    assert load_safe_yaml("another/label.yaml", text.decode()) is first
    assert parses == ["status/s1.yaml"]
    bad = b"a: &x 1\nb: *x\n"
    for path in ("status/a.yaml", "status/b.yaml"):  # refusals are never kept
        with pytest.raises(InvalidData) as err:
            load_safe_yaml(path, bad)
        assert err.value.file == path
    assert parses == ["status/s1.yaml", "status/a.yaml", "status/b.yaml"]


def test_the_texts_kept_are_bounded() -> None:
    from ifcoord.files import yamlsafe

    for i in range(yamlsafe.LOADED_KEPT + 50):
        load_safe_yaml("x.yaml", f"n: {i}\n")
    assert len(yamlsafe._loaded) == yamlsafe.LOADED_KEPT
    assert "n: 0\n" not in yamlsafe._loaded and f"n: {yamlsafe.LOADED_KEPT + 49}\n" in yamlsafe._loaded
    long = "notes: " + "x" * yamlsafe.LOADED_TEXT_MAX + "\n"  # a long text is loaded, not kept
    assert to_plain(load_safe_yaml("x.yaml", long))["notes"].startswith("xxx")
    assert long not in yamlsafe._loaded


def test_the_parsed_status_files_kept_are_bounded_in_bytes() -> None:
    from ifcoord.core import snapshot
    from ifcoord.files import yamlsafe

    snapshot.forget_parses()
    short = b"session: s1\nstatus: idle\n"
    long = short + b"notes: " + b"x" * yamlsafe.LOADED_TEXT_MAX + b"\n"
    first = snapshot.read_status("status/s1.yaml", short)
    assert snapshot.read_status("status/s1.yaml", short) is first  # kept: the same parse
    kept = snapshot._read_status_cached.cache_info().currsize
    parsed = snapshot.read_status("status/s1.yaml", long)
    assert parsed[1] is not None and parsed[1].model_extra["notes"].startswith("xxx")
    assert snapshot.read_status("status/s1.yaml", long) is not parsed  # read again, not kept
    assert snapshot._read_status_cached.cache_info().currsize == kept


# --- file names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "session"),
    [
        ("status/session-4-sip.yaml", "session-4-sip"),
        ("status/session-4-sip.yml", "session-4-sip"),
        ("status/alice.yaml", "alice"),
        ("STATUS-SESSION-4-SIP.yaml", "session-4-sip"),
        ("STATUS-SESSION-7.yaml", "session-7"),
        ("STATUS-SESSION-A_B.C.yaml", "session-a_b.c"),
        ("status/Session-4.yaml", None),
        ("status/has space.yaml", None),
        ("status/notes.md", None),
        ("STATUS-SESSION-.yaml", None),
        ("status/" + "a" * 65 + ".yaml", None),
    ],
)
def test_session_from_path(path: str, session: str | None) -> None:
    assert session_from_path(path) == session


def test_new_status_file_goes_to_status_dir_by_default() -> None:
    assert status_path_for("session-4-sip", ["boards/PHASE-0.md"]) == "status/session-4-sip.yaml"


def test_new_status_file_follows_a_legacy_branch() -> None:
    paths = ["PHASE-0-TASK-BOARD.md", "STATUS-SESSION-1.yaml"]
    assert status_path_for("session-4-sip", paths) == "STATUS-SESSION-4-SIP.yaml"
    assert session_from_path(status_path_for("session-4-sip", paths)) == "session-4-sip"


def test_legacy_layout_cannot_name_a_session_without_the_prefix() -> None:
    assert status_path_for("alice", ["STATUS-SESSION-1.yaml"]) == "status/alice.yaml"


def test_a_status_dir_beats_legacy_files_for_new_sessions() -> None:
    paths = ["STATUS-SESSION-1.yaml", "status/session-2.yaml"]
    assert status_path_for("session-3", paths) == "status/session-3.yaml"


def test_existing_file_of_the_session_wins() -> None:
    paths = ["STATUS-SESSION-4-SIP.yaml", "status/session-2.yaml"]
    assert status_path_for("session-4-sip", paths) == "STATUS-SESSION-4-SIP.yaml"
    assert status_path_for("session-2", paths, "legacy") == "status/session-2.yaml"


def test_layout_hint_decides_for_a_new_file() -> None:
    assert status_path_for("session-5", [], "legacy") == "STATUS-SESSION-5.yaml"
    assert status_path_for("session-5", ["STATUS-SESSION-1.yaml"], "status-dir") == ("status/session-5.yaml")


def test_a_yaml_file_outside_status_locations_is_not_the_sessions_file() -> None:
    assert status_path_for("ifcoord", ["ifcoord.yaml"]) == "status/ifcoord.yaml"


# --- rendering ---------------------------------------------------------------------------

NOW = datetime(2025, 11, 12, 15, 0, 7, 123456, tzinfo=timezone(timedelta(hours=1)))


def test_update_changes_only_the_values_it_sets() -> None:
    out = render_status(SAMPLE, {"progress": 75, "last_poll": NOW, "status": "blocked"})
    assert changed_lines(SAMPLE, out) == [
        (
            "status: working          # polling | working | blocked | idle | offline | done",
            "status: blocked          # polling | working | blocked | idle | offline | done",
        ),
        ("progress: 50", "progress: 75"),
        ("last_poll: 2025-11-12T14:30:00Z", "last_poll: 2025-11-12T14:00:07Z"),
    ]


def test_quoting_style_of_a_value_is_kept() -> None:
    out = render_status(SAMPLE, {"milestone": "75% - Races", "next_action": "Write tests"})
    assert changed_lines(SAMPLE, out) == [
        ('milestone: "50% - Task lifecycle and blocker tests passing"', 'milestone: "75% - Races"'),
        ("next_action: 'Waiting for coordinator latency tests'", "next_action: 'Write tests'"),
    ]


def test_flow_list_stays_flow_and_block_list_grows_in_place() -> None:
    out = render_status(
        SAMPLE,
        {"completed": ["F4.1", "F4.3", "P0.1.5"], "notes": ["first note", "second note", "third"]},
    )
    text = out.decode()
    assert "completed: [F4.1, F4.3, P0.1.5]\n" in text
    assert "  - first note    # why\n  - second note\n  - third\n# end of file\n" in text
    assert parse_status(PATH, out).completed == ["F4.1", "F4.3", "P0.1.5"]


def test_unchanged_values_leave_the_file_identical() -> None:
    same = {
        "progress": 50,
        "completed": ["F4.1", "F4.3"],
        "last_poll": parse_status(PATH, SAMPLE).last_poll,
    }
    assert render_status(SAMPLE, same) == SAMPLE


def test_new_keys_are_appended_after_the_last_key() -> None:
    out = render_status(SAMPLE, {"epoch": 3, "claims": [{"task": "P1.1", "epoch": 3}]})
    text = out.decode()
    assert text.startswith(SAMPLE.decode().removesuffix("# end of file\n"))
    assert text.endswith("  - second note\nepoch: 3\nclaims:\n  - task: P1.1\n    epoch: 3\n# end of file\n")
    status = parse_status(PATH, out)
    assert status.epoch == 3 and status.claims == [{"task": "P1.1", "epoch": 3}]


def test_remove_drops_the_entry_and_keeps_neighbouring_comments() -> None:
    out = render_status(SAMPLE, {}, remove=["progress", "claiming", "absent"])
    text = out.decode()
    assert "progress" not in text and "claiming" not in text
    assert "\n\n# where the work is pushed\nbranch:" in text
    assert len(SAMPLE.decode().splitlines()) - len(text.splitlines()) == 2


def test_none_clears_a_value_and_reads_back_as_none() -> None:
    out = render_status(SAMPLE, {"current_task": None, "blocked_on": None})
    assert "current_task: null\n" in out.decode()
    status = parse_status(PATH, out)
    assert status.current_task is None and status.blocked_on is None


def test_empty_value_gets_filled_in_before_its_comment() -> None:
    old = b"session: session-4-sip\nblocked_on:   # nothing yet\nprogress: 1\n"
    out = render_status(old, {"blocked_on": "P0.1.4"})
    assert out == b"session: session-4-sip\nblocked_on: P0.1.4   # nothing yet\nprogress: 1\n"


def test_list_can_replace_a_scalar_and_the_other_way_round() -> None:
    old = b"session: s\nblocked_on: P1  # why\nlist:\n  - a\n  - b\nend: 1\n"
    out = render_status(old, {"blocked_on": ["P1", "P2"], "list": "none left"})
    assert out == b"session: s\nblocked_on: [P1, P2] # why\nlist: none left\nend: 1\n"


def test_crlf_line_endings_and_missing_final_newline_are_kept() -> None:
    old = b"# c\r\nsession: session-4-sip\r\nprogress: 1"
    out = render_status(old, {"progress": 2, "status": "idle"})
    assert out == b"# c\r\nsession: session-4-sip\r\nprogress: 2\r\nstatus: idle"


def test_document_marker_and_odd_indentation_survive() -> None:
    old = b"%YAML 1.2\n---\nsession: s\nnested:\n      deep: 1   # kept\nprogress: 1\n...\n"
    out = render_status(old, {"progress": 2})
    assert out == old.replace(b"progress: 1", b"progress: 2")


def test_last_poll_update_goes_to_a_legacy_timestamp_key() -> None:
    old = b"session: session-4-sip\ntimestamp: 2025-11-12T14:00:00Z\nclaiming: P0.1.5\n"
    out = render_status(old, {"last_poll": NOW})
    assert out == old.replace(b"14:00:00Z", b"14:00:07Z")
    assert parse_status("STATUS-SESSION-4-SIP.yaml", out).last_poll == NOW.replace(microsecond=0)


def test_new_file_from_nothing() -> None:
    out = render_status(None, {"session": "session-1", "status": "polling", "last_poll": NOW})
    assert out == b"session: session-1\nstatus: polling\nlast_poll: 2025-11-12T14:00:07Z\n"


def test_comment_only_file_keeps_its_comments() -> None:
    out = render_status(b"# hello\n", {"session": "session-1"})
    assert out == b"# hello\nsession: session-1\n"


def test_awkward_strings_are_quoted_so_they_read_back() -> None:
    tricky = ["yes", "null", "12", "- x", "a: b", "#c", "", " lead", "multi\nline", "2025-01-01"]
    for value in tricky:
        out = render_status(SAMPLE, {"next_action": value})
        assert to_plain(load_safe_yaml(PATH, out))["next_action"] == value


def test_naive_datetime_update_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        render_status(SAMPLE, {"last_poll": datetime(2025, 1, 1)})


def test_unsafe_old_file_is_refused_on_update() -> None:
    with pytest.raises(InvalidData):
        render_status(b"session: s\na: &x 1\n", {"progress": 1})


def test_flow_mapping_file_still_gets_a_correct_update() -> None:
    out = render_status(b"{session: s, progress: 1}\n", {"progress": 2})
    assert to_plain(load_safe_yaml(PATH, out)) == {"session": "s", "progress": 2}


# --- property: what is rendered reads back as intended ----------------------------------

OLD_FILES = [
    None,
    b"",
    SAMPLE,
    b"# c\r\nsession: session-4-sip\r\nlist:\r\n- a\r\n- b\r\nprogress: 1",
    b"session: session-4-sip\nempty:\nblock: |\n  # not a comment\n  text\nz: [1, 2]  # c\n",
]

ids = st.from_regex(r"[A-Z][0-9](\.[0-9]){0,2}", fullmatch=True)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(max_size=20),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-5))]),
    ),
)
values = st.one_of(scalars, st.lists(ids, max_size=4), st.lists(st.text(max_size=8), max_size=3))
keys = st.one_of(
    st.sampled_from(["status", "current_task", "progress", "completed", "notes", "claiming", "last_poll"]),
    st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True),
)


def expected_plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(microsecond=0)
    if isinstance(value, list):
        return [expected_plain(v) for v in value]
    return value


@settings(max_examples=150, deadline=None)
@given(
    old=st.sampled_from(OLD_FILES),
    updates=st.dictionaries(keys, values, max_size=5),
    remove=st.lists(st.sampled_from(["progress", "list", "notes", "empty", "z"]), max_size=2),
)
def test_rendered_status_reads_back_as_the_updates(
    old: bytes | None, updates: dict[str, Any], remove: list[str]
) -> None:
    remove = [k for k in remove if k not in updates]
    out = render_status(old, updates, remove)
    loaded = to_plain(load_safe_yaml(PATH, out)) or {}
    before = to_plain(load_safe_yaml(PATH, old)) if old else None
    key_map = {}
    if before and "timestamp" in before and "last_poll" not in before:
        key_map["last_poll"] = "timestamp"
    for key, value in updates.items():
        got = loaded[key_map.get(key, key)]
        if isinstance(got, datetime):
            got = got.astimezone(timezone.utc)
        assert got == expected_plain(value)
    for key in remove:
        assert key not in loaded
    for key, value in (before or {}).items():
        if key not in updates and key not in remove:
            assert loaded[key] == value  # untouched keys keep their values


@settings(max_examples=60, deadline=None)
@given(
    progress=st.integers(0, 100),
    task=st.one_of(st.none(), ids),
    completed=st.lists(ids, max_size=5),
    when=st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.just(timezone.utc),
    ),
)
def test_model_fields_round_trip_through_a_status_file(
    progress: int, task: str | None, completed: list[str], when: datetime
) -> None:
    updates = {
        "progress": progress,
        "current_task": task,
        "completed": completed,
        "last_poll": when,
    }
    status = parse_status(PATH, render_status(SAMPLE, updates))
    assert isinstance(status, SessionStatus)
    assert (status.progress, status.current_task, status.completed) == (progress, task, completed)
    assert status.last_poll == when.replace(microsecond=0)
    assert re.search(rb"^claiming: P0\.1\.5   # legacy key", render_status(SAMPLE, updates), re.M)


# -- the quick path for the values operations write ------------------------------------------------

QUICK_WORDS = ["working", "idle", "blocked", "T1.3", "P0.1.5", "session-4-sip", "a_b", "x/y", "e10",
               "inf", "nan", "Yes", "NO", "on", "Off", "y", "N", "true", "False", "null", "NULL",
               "Null", "a.", "a-", "_x", "x" * 200, "x" * 201]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.datetimes(timezones=st.just(timezone.utc))
    | st.datetimes(timezones=st.just(timezone(timedelta(hours=-7))))
    | st.sampled_from(QUICK_WORDS)
    | st.from_regex(r"[A-Za-z_][A-Za-z0-9_./-]{0,12}", fullmatch=True)
    | st.text(max_size=12)
)
def test_the_quick_rendering_of_a_value_is_what_the_emitter_writes(value: Any) -> None:
    """A state word, a task ID, a number or a timestamp is written without ruamel's emitter:
    exactly as the emitter writes it (and reads back as the same value); anything else goes to
    the emitter."""
    from ifcoord.files import status as statusfile
    from ifcoord.files.yamlsafe import _new_yaml

    quick = statusfile._quick_inline(value)
    if quick is None:
        return
    yaml = _new_yaml()
    assert quick == statusfile._render_inline_emitted(yaml, value)
    assert statusfile._reads_back(yaml, quick, value)
