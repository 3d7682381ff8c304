"""Issue 13 over real branches: each finding of the robustness run, pushed with plain git the way
a careless person would, then met by ifcoord commands (in-process, `cli.app.run`)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import ROOT, git

sys.path.insert(0, str(ROOT))

from testing.branch import BOARD, HandBranch, Result, ifcoord, status_yaml  # noqa: E402
from testing.hostile import ESCAPES, chain, deep_status  # noqa: E402

ESC = "\x1b"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def hand(bare_remote: Path, tmp_path: Path) -> HandBranch:
    branch = HandBranch(bare_remote, tmp_path)
    branch.write({"boards/PHASE-0.md": BOARD}, "boards by hand")
    return branch


def no_crash(r: Result) -> Result:
    assert r.code != 1 and "unexpected error" not in r.err, r
    return r


def ok(r: Result) -> Result:
    assert r.code == 0, r
    return r


# -- one bad file never stops the team ------------------------------------------------------------


@pytest.mark.parametrize("flow", [True, False], ids=["400-deep-flow", "300-deep-mappings"])
def test_a_deep_status_file_of_another_session_stops_no_command(
    hand: HandBranch, clone: Path, flow: bool
) -> None:
    hand.write(deep_status(400 if flow else 300, "s2", flow=flow))
    lint = ifcoord("lint", cwd=clone)
    assert lint.code == 6 and "status/s2.yaml:" in lint.err and "nested more than" in lint.err
    ok(ifcoord("board", cwd=clone))
    ok(ifcoord("next", "--session", "s1", cwd=clone))
    ok(ifcoord("claim", "T-1", "--session", "s1", cwd=clone))
    assert "**Owner:** s1" in hand.show("boards/PHASE-0.md").decode()


def test_a_thousand_task_chain_does_not_stop_a_claim_of_an_unrelated_task(
    hand: HandBranch, clone: Path
) -> None:
    hand.write(chain(1200, per_board=1200))
    ok(ifcoord("claim", "T-3", "--session", "s1", cwd=clone))
    assert "critical path" in hand.show("boards/README.md").decode().lower()
    assert ok(ifcoord("graph", "--format", "text", cwd=clone)).out.count("C-") > 1000


def test_a_gitlink_and_a_symlink_named_like_boards_are_skipped_and_never_edited(
    hand: HandBranch, clone: Path
) -> None:
    hand.gitlink("boards/vendored.md")
    hand.symlink("boards/PHASE-9.md", "../../outside.md")
    hand.commit("a submodule and a link")
    lint = ifcoord("lint", cwd=clone)
    assert "boards/vendored.md: warning: a gitlink" in lint.err
    assert "boards/PHASE-9.md: warning: a symlink" in lint.err
    ok(ifcoord("claim", "T-1", "--session", "s1", cwd=clone))
    assert hand.ls("boards/PHASE-9.md").startswith("120000")
    assert hand.ls("boards/vendored.md").startswith("160000")


def test_a_board_over_the_size_limit_is_named_by_lint_and_the_rest_works(
    hand: HandBranch, clone: Path
) -> None:
    from testing.hostile import big_board

    hand.write(big_board(3 * 1024 * 1024))
    lint = ifcoord("lint", cwd=clone)
    assert lint.code == 6 and "boards/big.md: error: board is" in lint.err and "MiB limit" in lint.err
    ok(ifcoord("claim", "T-1", "--session", "s1", cwd=clone))


# -- ifcoord.yaml ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "line", "words"),
    [
        ("boards: [boards/*.md]\nlease_second: 30\n", 2, "did you mean `lease_seconds`"),
        ("mode: bogus\n", 1, "mode"),
        ("lease_seconds: -1\n", 1, "greater than 0"),
        ("lease_seconds: .nan\n", 1, "finite"),
        ("poll_seconds: 0\n", 1, "poll_seconds"),
        ("lease_seconds: 60\nheartbeat_seconds: 120\n", 2, "shorter than lease_seconds"),
        ('boards: ["boards/[z-a].md"]\n', 1, "not a valid glob"),
    ],
)
def test_a_bad_config_is_exit_6_naming_file_and_line_for_every_command(
    hand: HandBranch, clone: Path, config: str, line: int, words: str
) -> None:
    hand.write({"ifcoord.yaml": config})
    for args in (["lint"], ["board"], ["next", "-s", "s1"], ["claim", "T-1", "-s", "s1"], ["status"]):
        r = ifcoord(*args, cwd=clone)
        assert r.code == 6, (args, r)
        assert f"ifcoord.yaml:{line}:" in r.err and words in r.err, (args, r.err)
    assert b"Owner" not in hand.show("boards/PHASE-0.md")


# -- sessions and their STATUS files --------------------------------------------------------------


def test_a_second_status_file_is_a_lint_error_and_never_read_as_the_sessions_truth(
    hand: HandBranch, clone: Path
) -> None:
    ok(ifcoord("claim", "T-1", "--session", "s1", cwd=clone))
    # an old copy left beside it, with a heartbeat from long ago
    hand.write({"status/s1.yml": status_yaml("s1", "2020-01-01T00:00:00Z", current_task="T-1")})
    lint = ifcoord("lint", cwd=clone)
    assert lint.code == 6 and "status/s1.yml: error: a second STATUS file for session s1" in lint.err
    refused = ifcoord("claim", "T-1", "--session", "s2", cwd=clone)
    assert refused.code == 3, refused
    ok(ifcoord("heartbeat", "--session", "s1", cwd=clone))
    assert b"2020-01-01" in hand.show("status/s1.yml")


@pytest.mark.parametrize("name", ["s2\n", "none", "-", "..", "nobody"])
def test_bad_and_reserved_session_names_are_refused(hand: HandBranch, clone: Path, name: str) -> None:
    r = ifcoord("claim", "T-1", "--session", name, cwd=clone)
    assert r.code == 2, r
    assert b"Owner" not in hand.show("boards/PHASE-0.md")


def test_an_owner_with_no_status_file_is_refused_with_what_to_do(hand: HandBranch, clone: Path) -> None:
    hand.write(
        {
            "boards/PHASE-0.md": BOARD.replace(
                "## T-1: First\n**Status:** open",
                "## T-1: First\n**Status:** in progress\n**Owner:** ghost-session",
            )
        }
    )
    lint = ifcoord("lint", cwd=clone)
    assert "T-1 is held by ghost-session, which has no STATUS file" in lint.err
    r = ifcoord("claim", "T-1", "--session", "s1", cwd=clone)
    assert r.code == 3 and "no STATUS file" in r.err and "--force" in r.err, r
    assert "wait for the lease to go stale" not in r.err


def test_an_owner_with_an_unreadable_status_file_is_refused_naming_the_file(
    hand: HandBranch, clone: Path
) -> None:
    ok(ifcoord("claim", "T-1", "--session", "s2", cwd=clone))
    hand.write({"status/s2.yaml": "session: s2\nlast_poll: [\n"})
    r = ifcoord("claim", "T-1", "--session", "s1", cwd=clone)
    assert r.code == 3 and "status/s2.yaml cannot be read" in r.err and "fix status/s2.yaml" in r.err, r


def test_an_own_unreadable_status_file_is_refused_naming_the_file_not_rewritten(
    hand: HandBranch, clone: Path
) -> None:
    bad = "session: s9\nstatus: working\n"
    hand.write({"status/s1.yaml": bad})
    r = ifcoord("claim", "T-1", "--session", "s1", cwd=clone)
    assert r.code == 6 and "status/s1.yaml:1:" in r.err and "s9" in r.err, r
    assert hand.show("status/s1.yaml").decode() == bad
    bad_time = "session: s1\nlast_poll: 2025-11-12T14:30:00\n"
    hand.write({"status/s1.yaml": bad_time})
    r = ifcoord("heartbeat", "--session", "s1", cwd=clone)
    assert r.code == 6 and "status/s1.yaml:2:" in r.err and "time zone" in r.err, r
    assert hand.show("status/s1.yaml").decode() == bad_time


# -- nothing a person wrote is replaced ------------------------------------------------------------


def test_a_hand_written_readme_is_left_alone_and_the_dashboard_goes_elsewhere(
    hand: HandBranch, clone: Path
) -> None:
    readme = "# Our boards\n\nPlease read this first.\n"
    hand.write({"boards/README.md": readme})
    ok(ifcoord("claim", "T-1", "--session", "s1", cwd=clone))
    assert hand.show("boards/README.md").decode() == readme
    assert "T-1" in hand.show("IFCOORD-DASHBOARD.md").decode()
    lint = ifcoord("lint", cwd=clone)
    assert "boards/README.md: note:" in lint.err and "IFCOORD-DASHBOARD.md" in lint.err
    assert "T-" not in ifcoord("board", "--json", cwd=clone).out.split("IFCOORD")[0][:0]  # not a board
    assert {
        t["id"] for t in __import__("json").loads(ifcoord("board", "--json", cwd=clone).out)["tasks"]
    } == {"T-1", "T-2", "T-3"}


def test_a_folder_where_a_status_file_goes_is_never_deleted(hand: HandBranch, clone: Path) -> None:
    hand.write({"status/s1.yaml/notes.txt": "mine\n"})
    r = ifcoord("claim", "T-1", "--session", "s1", cwd=clone)
    assert r.code == 6 and "status/s1.yaml" in r.err and "never writes over it" in r.err, r
    assert hand.show("status/s1.yaml/notes.txt") == b"mine\n"


def test_a_symlink_whose_target_reads_like_a_board_is_never_edited(hand: HandBranch, clone: Path) -> None:
    target = "## L-1: linked\n**Status:** open\n"  # git stores a link's target as its blob
    hand.symlink("boards/PHASE-5.md", target)
    hand.commit("a link")
    r = ifcoord("claim", "L-1", "--session", "s1", cwd=clone)
    assert r.code == 2 and "L-1" in r.err, r
    assert hand.ls("boards/PHASE-5.md").startswith("120000")
    assert hand.show("boards/PHASE-5.md").decode() == target


# -- forgery ----------------------------------------------------------------------------------------


def test_a_persons_commit_with_trailers_is_listed_as_an_edit(hand: HandBranch, clone: Path) -> None:
    forged = hand.write(
        {"notes.txt": "x\n"},
        "complete G1\n\nIfcoord-Op: complete\nIfcoord-Task: T-1\nIfcoord-Session: s1\nIfcoord-Epoch: 9",
    )
    import json

    entries = json.loads(ok(ifcoord("log", "--json", cwd=clone)).out)["entries"]
    mine = next(e for e in entries if e["commit"] == forged)
    assert (mine["op"], mine["task"], mine["session"]) == (None, None, None)
    assert ok(ifcoord("log", "T-1", "--json", cwd=clone)).out.count(forged) == 0


def test_a_commit_message_with_a_record_separator_does_not_break_log(hand: HandBranch, clone: Path) -> None:
    hand.write({"notes.txt": "y\n"}, "odd \x1e byte\n\nand \x1f more")
    ok(ifcoord("claim", "T-1", "--session", "s1", cwd=clone))
    import json

    entries = json.loads(ok(ifcoord("log", "--json", cwd=clone)).out)["entries"]
    assert [e["op"] for e in entries][:1] == ["claim"]
    assert any("odd" in e["subject"] for e in entries)


# -- terminals ----------------------------------------------------------------------------------------


def test_escape_sequences_in_board_text_never_reach_the_terminal(hand: HandBranch, clone: Path) -> None:
    hand.write({"boards/PHASE-0.md": BOARD.replace("First", f"First {ESCAPES}") + f"**Note:** {ESCAPES}\n"})
    for args in (["board"], ["show", "T-1"], ["show", "T-3"], ["next", "-s", "s1"], ["graph", "-f", "text"],
                 ["brief", "s1"], ["lint"], ["board", "--json"]):  # fmt: skip
        r = no_crash(ifcoord(*args, cwd=clone))
        for bad in (ESC, "\x07", "\x9b", "\u202e"):
            assert bad not in r.out + r.err, (args, bad)
    assert "\\x1b]52" in ifcoord("show", "T-1", cwd=clone).out


@pytest.mark.parametrize(
    "args",
    [
        ["progress", "T-1", "10", "--note", f"{ESC}]52;c;cm0=\x07"],
        ["progress", "T-1", "10", "--note", "two\nlines"],
        ["block", "T-1", "--reason", "a\rb"],
        ["complete", "T-1", "--deliverable", "x\ny"],
        ["block", "T-1", "--on", "T-2\nT-3"],
        ["progress", "T-1", "10", "--note", "bad \udcff byte"],
    ],
)
def test_control_characters_and_non_utf8_arguments_are_usage_errors(
    hand: HandBranch, clone: Path, args: list[str]
) -> None:
    ok(ifcoord("claim", "T-1", "--session", "s1", cwd=clone))
    before = hand.show("boards/PHASE-0.md")
    r = ifcoord(*args, "--session", "s1", cwd=clone)
    assert r.code == 2 and "control character" in r.err, r
    assert hand.show("boards/PHASE-0.md") == before


# -- smaller ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("on", ["../x", "**Owner:**", "T-2,../x"])
def test_block_on_junk_is_refused(hand: HandBranch, clone: Path, on: str) -> None:
    ok(ifcoord("claim", "T-1", "--session", "s1", cwd=clone))
    r = ifcoord("block", "T-1", "--on", on, "--session", "s1", cwd=clone)
    assert r.code == 2 and "not a task ID" in r.err, r
    assert b"blocked" not in hand.show("boards/PHASE-0.md").lower()


def test_next_action_is_cleared_on_unblock_and_complete(hand: HandBranch, clone: Path) -> None:
    ok(ifcoord("claim", "T-1", "--session", "s1", cwd=clone))
    ok(ifcoord("block", "T-1", "--on", "T-3", "--reason", "waiting for T-3", "--session", "s1", cwd=clone))
    assert b"next_action: waiting for T-3" in hand.show("status/s1.yaml")
    ok(ifcoord("unblock", "T-1", "--session", "s1", cwd=clone))
    assert b"waiting for T-3" not in hand.show("status/s1.yaml")
    ok(ifcoord("progress", "T-1", "50", "--note", "half way", "--session", "s1", cwd=clone))
    ok(ifcoord("complete", "T-1", "--session", "s1", cwd=clone))
    assert b"half way" not in hand.show("status/s1.yaml")


@pytest.mark.parametrize(
    "args",
    [
        ["complete", "T-1", "--tests-passed", "-3"],
        ["progress", "T-1", "50", "--tests-failed", "-1"],
        ["progress", "T-1", "-5"],
        ["progress", "T-1", "50", "--epoch", "-1"],
    ],
)
def test_negative_counts_and_epochs_are_refused(hand: HandBranch, clone: Path, args: list[str]) -> None:
    ok(ifcoord("claim", "T-1", "--session", "s1", cwd=clone))
    before = hand.show("boards/PHASE-0.md")
    r = ifcoord(*args, "--session", "s1", cwd=clone)
    assert r.code == 2, r
    assert hand.show("boards/PHASE-0.md") == before


def test_negative_counts_in_a_status_file_and_an_epoch_of_1e3_are_diagnosed(
    hand: HandBranch, clone: Path
) -> None:
    board = BOARD.replace(
        "## T-3: Third\n**Status:** open", "## T-3: Third\n**Status:** open\n**Epoch:** 1e3"
    )
    hand.write({"boards/PHASE-0.md": board, "status/s2.yaml": status_yaml("s2", now(), tests_passed="-4")})
    lint = ifcoord("lint", cwd=clone)
    assert "status/s2.yaml:4: error: tests_passed" in lint.err, lint.err
    assert "epoch '1e3' is not a whole number" in lint.err
    import json

    shown = json.loads(ok(ifcoord("show", "T-3", "--json", cwd=clone)).out)["task"]
    assert shown["epoch"] != 1


def test_a_byte_order_mark_before_a_first_line_heading_keeps_the_task(hand: HandBranch, clone: Path) -> None:
    hand.write({"boards/PHASE-1.md": "\ufeff## B-1: After a BOM\n**Status:** open\n"})
    ok(ifcoord("claim", "B-1", "--session", "s1", cwd=clone))
    text = hand.show("boards/PHASE-1.md")
    assert text.startswith(b"\xef\xbb\xbf## B-1") and b"**Owner:** s1" in text


def test_dir_does_not_follow_symlinks_out_of_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "PHASE-7.md").write_text("## X-1: from outside\n**Status:** open\n")
    folder = tmp_path / "folder" / "boards"
    folder.mkdir(parents=True)
    (folder / "PHASE-0.md").write_text(BOARD)
    (folder / "PHASE-7.md").symlink_to(outside / "PHASE-7.md")
    (folder / "more").symlink_to(outside, target_is_directory=True)
    r = ok(ifcoord("board", "--json", "--dir", str(tmp_path / "folder"), cwd=tmp_path))
    assert "X-1" not in r.out and "T-1" in r.out
    lint = ifcoord("lint", "--dir", str(tmp_path / "folder"), cwd=tmp_path)
    assert "boards/PHASE-7.md: warning: a symlink" in lint.err


def test_git_fsck_stays_clean_after_hostile_names_were_refused(hand: HandBranch, clone: Path) -> None:
    ifcoord("heartbeat", "--session", "s2\n", cwd=clone)
    ok(ifcoord("heartbeat", "--session", "s2", cwd=clone))
    git("fsck", "--strict", cwd=hand.remote)
    assert ok(ifcoord("log", cwd=clone)).code == 0


def test_a_config_that_is_a_symlink_is_refused_not_replaced_by_defaults(
    hand: HandBranch, clone: Path
) -> None:
    hand.symlink("ifcoord.yaml", "lease_seconds: 1")
    hand.commit("a linked config")
    r = ifcoord("board", cwd=clone)
    assert r.code == 6 and "ifcoord.yaml: is a symlink" in r.err, r
