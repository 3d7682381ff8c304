"""ifcoord.yaml: defaults, refusals with file:line, path globs for both layouts, phase order."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifcoord.errors import InvalidData
from ifcoord.files.config import (
    CONFIG_PATH,
    glob_match,
    is_board_path,
    is_status_path,
    parse_config,
    phase_sort_key,
    render_default_config,
)
from ifcoord.models import Config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("data", [None, b"", b"  \n", b"# nothing set\n"])
def test_absent_or_empty_config_gives_defaults(data: bytes | None) -> None:
    assert parse_config(data) == Config()


def test_values_override_defaults_and_the_rest_stay() -> None:
    config = parse_config(b"lease_seconds: 300\nphases: [0, 1, 2A]\nmode: own-branch\n")
    assert config.lease_seconds == 300.0
    assert config.phases == ["0", "1", "2A"]  # numbers as people write them become names
    assert config.mode == "own-branch"
    assert config.boards == Config().boards


def test_unknown_key_is_named_with_its_line_and_the_valid_keys() -> None:
    with pytest.raises(InvalidData) as info:
        parse_config(b"boards: [boards/*.md]\nleese_seconds: 30\n")
    err = info.value
    assert err.message == f"{CONFIG_PATH}:2: unknown key 'leese_seconds'"
    assert err.hint is not None and "lease_seconds" in err.hint and "poll_seconds" in err.hint
    assert err.exit_code == 6


def test_wrong_type_names_the_key_and_line() -> None:
    with pytest.raises(InvalidData) as info:
        parse_config(b"poll_seconds: 30\nmode: sometimes\n")
    assert info.value.message.startswith(f"{CONFIG_PATH}:2: mode:")


def test_bad_yaml_is_reported_with_its_line() -> None:
    with pytest.raises(InvalidData) as info:
        parse_config(b"boards:\n  - a\n phases: [\n")
    assert info.value.file == CONFIG_PATH and info.value.line_no is not None


@pytest.mark.parametrize("data", [b"boards: &b [x]\nstatus: *b\n", b"mode: !shared x\n", b"- a\n- b\n"])
def test_config_follows_the_status_safety_rules(data: bytes) -> None:
    with pytest.raises(InvalidData):
        parse_config(data)


def test_oversized_config_is_refused() -> None:
    with pytest.raises(InvalidData, match="64 KiB"):
        parse_config(b"# x\n" * 20000)


def test_default_config_reads_back_to_the_defaults() -> None:
    text = render_default_config()
    assert parse_config(text.encode()) == Config()
    for name in Config.model_fields:  # every key is shown, so none is a secret
        assert f"\n{name}:" in text


def test_example_ifcoord_yaml_is_the_default_config() -> None:
    assert (ROOT / "ifcoord.yaml").read_text(encoding="utf-8") == render_default_config()


@pytest.mark.parametrize(
    ("path", "board"),
    [
        ("boards/PHASE-0.md", True),
        ("boards/notes.md", True),
        ("boards/README.md", False),  # the generated dashboard
        ("boards/x/y.md", False),
        ("PHASE-1-TASK-BOARD.md", True),
        ("PHASE-2.md", True),
        ("docs/PHASE-2.md", False),
        ("README.md", False),
        ("status/session-1.yaml", False),
    ],
)
def test_board_paths_with_default_globs(path: str, board: bool) -> None:
    assert is_board_path(Config(), path) is board


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("status/session-1.yaml", True),
        ("status/session-1.yml", True),
        ("STATUS-SESSION-4-SIP.yaml", True),
        ("status/old/session-1.yaml", False),
        ("docs/STATUS-SESSION-4.yaml", False),
        ("ifcoord.yaml", False),
        ("boards/PHASE-0.md", False),
    ],
)
def test_status_paths_with_default_globs(path: str, status: bool) -> None:
    assert is_status_path(Config(), path) is status


@pytest.mark.parametrize(
    ("pattern", "path", "match"),
    [
        ("boards/*.md", "boards/PHASE-0.md", True),
        ("boards/*.md", "boards/x/y.md", False),
        ("PHASE-*.md", "PHASE-0.md", True),
        ("PHASE-*.md", "boards/PHASE-0.md", False),
        ("boards/**/*.md", "boards/PHASE-0.md", True),
        ("boards/**/*.md", "boards/a/b/PHASE-0.md", True),
        ("boards/PHASE-?.md", "boards/PHASE-1.md", True),
        ("boards/PHASE-?.md", "boards/PHASE-10.md", False),
        ("boards/PHASE-[0-2].md", "boards/PHASE-2.md", True),
        ("boards/PHASE-[!0-2].md", "boards/PHASE-3.md", True),
        ("boards/PHASE-[!0-2].md", "boards/PHASE-1.md", False),
        ("boards/a+b(1).md", "boards/a+b(1).md", True),
        ("phase-*.md", "PHASE-0.md", False),  # case matters, as in git
    ],
)
def test_glob_semantics(pattern: str, path: str, match: bool) -> None:
    assert glob_match(pattern, path) is match


def test_custom_globs_and_excludes() -> None:
    config = Config(boards=["plan/**/*.md"], exclude=["plan/archive/*"])
    assert is_board_path(config, "plan/q1/PHASE-0.md")
    assert not is_board_path(config, "plan/archive/PHASE-0.md")
    assert not is_board_path(config, "boards/PHASE-0.md")


def test_phases_sort_naturally_without_config() -> None:
    phases = ["10", "2", "P10", "1", "P2", "2A", "0"]
    ordered = sorted(phases, key=lambda p: phase_sort_key(Config(), p))
    assert ordered == ["0", "1", "2", "2A", "10", "P2", "P10"]


def test_configured_phase_order_comes_first() -> None:
    config = Config(phases=["setup", "10", "2"])
    phases = ["2", "1", "10", "setup", "3"]
    ordered = sorted(phases, key=lambda p: phase_sort_key(config, p))
    assert ordered == ["setup", "10", "2", "1", "3"]


# -- issue 13: every value checked, ranges and consistency --------------------------------------


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b"lease_seconds: -1\n", 1, "greater than 0"),
        (b"lease_seconds: 0\n", 1, "greater than 0"),
        (b"lease_seconds: .nan\n", 1, "finite"),
        (b"lease_seconds: .inf\n", 1, "finite"),
        (b"heartbeat_seconds: 0\n", 1, "greater than 0"),
        (b"poll_seconds: 0\n", 1, "greater than or equal to 0.1"),
        (b"skew_seconds: -5\n", 1, "greater than or equal to 0"),
        (b"lease_seconds: 100000000000\n", 1, "less than or equal"),
        (b"lease_seconds: 60\nheartbeat_seconds: 60\n", 2, "shorter than lease_seconds"),
        (b"mode: own_branch\n", 1, "'shared' or 'own-branch'"),
        (b"boards: boards/*.md\n", 1, "list"),
        (b'boards: [""]\n', 1, "empty glob"),
        (b'boards: ["boards/[z-a].md"]\n', 1, "not a valid glob"),
        (b'exclude: ["[9-0]"]\n', 1, "not a valid glob"),
        (b'session_branches: "x/[b-a]"\n', 1, "not a valid glob"),
    ],
)
def test_out_of_range_and_inconsistent_values_are_refused_with_their_line(
    data: bytes, line: int, words: str
) -> None:
    with pytest.raises(InvalidData) as info:
        parse_config(b"# a comment\n" + data)
    assert info.value.line_no == line + 1, info.value.message
    assert words in info.value.message


def test_several_errors_say_how_many_more() -> None:
    with pytest.raises(InvalidData, match=r"\(and 1 more\)"):
        parse_config(b"lease_seconds: -1\npoll_seconds: 0\n")


def test_a_glob_that_makes_no_regex_matches_nothing_instead_of_raising() -> None:
    config = Config.model_construct(boards=["boards/[z-a].md"])
    assert not is_board_path(config, "boards/a.md")
