"""Issue 13: no board or STATUS text, however careless or hostile, makes a command fail with exit 1
("unexpected error"); every documented exit code reaches the shell through the console script."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, free_port, make_clone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(ROOT))

from ifcoord.views.text import has_control, safe  # noqa: E402
from testing.branch import BOARD, HandBranch, ifcoord, status_yaml  # noqa: E402
from testing.hostile import ESCAPES, big_board, chain, deep_status, nested_headings, own_group  # noqa: E402

READS = [
    ["lint"],
    ["board"],
    ["board", "--json"],
    ["next", "-s", "s1"],
    ["show", "T-1"],
    ["graph", "-f", "text"],
    ["graph", "-f", "mermaid"],
    ["brief", "s1"],
    ["status"],
]


def run_reads(files: dict[str, bytes], commands: list[list[str]] = READS) -> dict[str, int]:
    """Each read command over `files` laid out in a folder (--dir): its exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for path, data in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        codes = {}
        for args in commands:
            r = ifcoord(*args, "--dir", str(root), cwd=root)
            assert r.code != 1 and "unexpected error" not in r.err, (args, r)
            assert "\x1b" not in r.out + r.err, args
            codes[" ".join(args)] = r.code
        return codes


# -- generated board and STATUS text ---------------------------------------------------------------

BOARD_BITS = [
    "# Phase 0\n",
    "## T-1: title\n",
    "## T-2 - other\n",
    "### T-1.1: nested\n",
    "#### P2A: group\n",
    "**Status:** open\n",
    "**Status:** in progress\n",
    "**Status:** ✅\n",
    "**Owner:** s1\n",
    "**Owner:** ghost\n",
    "**Depends on:** T-1\n",
    "**Depends on:** T-2, T\n",
    "**Depends on:** T-1.1\n",
    "**Epoch:** 1e3\n",
    "**Epoch:** -1\n",
    "**Progress:** 250%\n",
    "**Claimed at:** yesterday\n",
    "**Milestones:**\n",
    "- [x] 25% - a\n",
    "- [ ] 50% - b\n",
    "```\n",
    "    code\n",
    "<div>\n",
    "\ufeff",
    "\r\n",
    "\r",
    "\x00",
    ESCAPES,
    "[" * 50,
    "**Session:** none\n",
    "**Waiting on:** ../x\n",
    "Title\n=====\n",
    "> ## T-9: quoted\n",
    "- ## T-8: listed\n",
    "**Priority:** CRITICAL\n",
]
STATUS_BITS = [
    "session: s1\n",
    "session: s9\n",
    "status: working\n",
    "status: bogus\n",
    "last_poll: 2025-01-01T00:00:00Z\n",
    "last_poll: 2025-01-01T00:00:00\n",
    "timestamp: now\n",
    "current_task: T-1\n",
    "epoch: -3\n",
    "epoch: 1e3\n",
    "tests_passed: -1\n",
    "progress: 900\n",
    "completed: [T-1, T-2]\n",
    "claims: [{task: T-1}]\n",
    "a: &x 1\n",
    "b: *x\n",
    "c: !!python/object:os.system x\n",
    "---\n",
    "{" * 40,
    "- - - - - - - - - - - - - - - - - -\n",
    "\ufeff",
    "\t",
    "x: [" * 30,
    "clock: -1\n",
    ESCAPES,
    "key: 'it''s'\n",
]


def text_from(bits: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(bits), st.text(max_size=20)), max_size=25).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    board=text_from(BOARD_BITS),
    status=text_from(STATUS_BITS),
    config=st.sampled_from(
        ["", "lease_seconds: -1\n", "boards: ['[z-a]']\n", "phases: [1, 0]\n", "mode: x\n", "[[[\n"]
    ),
)
@pytest.mark.slow(12)
def test_no_generated_board_status_or_config_gives_an_unexpected_error(
    board: str, status: str, config: str
) -> None:
    files = {
        "boards/PHASE-0.md": board.encode("utf-8", "surrogatepass"),
        "boards/PHASE-1.md": BOARD.encode(),
        "status/s1.yaml": status.encode("utf-8", "surrogatepass"),
        "status/s2.yml": status_yaml("s2").encode(),
    }
    if config:
        files["ifcoord.yaml"] = config.encode()
    run_reads(files)


@settings(max_examples=30, deadline=None)
@given(raw=st.binary(max_size=300))
def test_no_binary_board_or_status_gives_an_unexpected_error(raw: bytes) -> None:
    run_reads({"boards/PHASE-0.md": raw, "status/s1.yaml": raw}, [["lint"], ["board"], ["status"]])


# -- the size and depth catalogue ------------------------------------------------------------------


@pytest.mark.parametrize(
    "files",
    [
        chain(3000),
        own_group(300),
        nested_headings(2000),
        deep_status(400),
        deep_status(300, flow=False),
        deep_status(4000),
        big_board(3 * 1024 * 1024),
    ],
    ids=["chain-3000", "own-group-300", "nested-2000", "flow-400", "mappings-300", "flow-4000", "board-3MiB"],
)
def test_the_size_and_depth_catalogue_never_gives_an_unexpected_error(files: dict[str, bytes]) -> None:
    codes = run_reads({**files, "boards/PHASE-0.md": BOARD.encode()})
    assert codes["board"] == 0 and codes["next -s s1"] == 0


# -- arguments and output ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arg", ["a\nb", "a\rb", "\x1b[2J", "x\x00", "\x9b31m", "bad \udcff", "tab\there", "\u202eevil"]
)
def test_control_characters_in_any_argument_are_a_usage_error(arg: str) -> None:
    assert has_control(arg)
    r = ifcoord("show", arg, cwd=Path.cwd())
    assert r.code == 2 and "control character" in r.err and "\x1b" not in r.err


@pytest.mark.parametrize("arg", ["P0.1.5", "session-4-sip", "émoji ✅ ok", "--json"])
def test_plain_arguments_pass(arg: str) -> None:
    assert not has_control(arg)


def test_safe_shows_control_characters_as_visible_escapes() -> None:
    assert safe("a\x1b]52;c;x\x07b") == "a\\x1b]52;c;x\\x07b"
    assert safe("x\u202ey") == "x\\u202ey"
    assert safe("one\ntwo") == "one\\x0atwo"
    assert safe("one\ntwo", lines=True) == "one\ntwo"
    assert safe("tab\tand ✅") == "tab\tand ✅"


def test_json_output_escapes_c1_and_bidi_characters(tmp_path: Path) -> None:
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "PHASE-0.md").write_text("## T-1: a \x9b31m b \u202e c\n")
    r = ifcoord("board", "--json", "--dir", str(tmp_path), cwd=tmp_path)
    assert r.code == 0 and "\x9b" not in r.out and "\u202e" not in r.out and "\\u009b" in r.out


# -- every documented exit code through the console script -----------------------------------------


def console(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "ifcoord"
    env = {**os.environ, "IFCOORD_DEADLINE": "2"}  # an unreachable remote is retried until then
    return subprocess.run([str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env)


def test_every_documented_exit_code_reaches_the_shell(bare_remote: Path, tmp_path: Path) -> None:
    hand = HandBranch(bare_remote, tmp_path)
    hand.write({"boards/PHASE-0.md": BOARD + "\n## T-1: again\n"})
    clone = make_clone(bare_remote, tmp_path / "clone")
    assert console("status", cwd=clone).returncode == 0
    assert console("board", "--no-such-option", cwd=clone).returncode == 2
    assert console("claim", "T-3", "-s", "s1", cwd=clone).returncode == 0
    assert console("claim", "T-3", "-s", "s2", cwd=clone).returncode == 3
    assert console("claim", "T-2", "-s", "s2", cwd=clone).returncode == 4
    closed = f"git://127.0.0.1:{free_port()}/nowhere.git"  # nothing listens there
    assert console("status", "--remote", closed, cwd=clone).returncode == 5
    lint = console("lint", cwd=clone)
    assert lint.returncode == 6 and "is also used at" in lint.stderr
