"""Issue 16 end to end over a real remote: titles as people write them through `task add` and
`task edit`, and views that say why (`show` of a blocked task, `log` of a task's life, `next`)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
from conftest import EXAMPLE_BOARDS, git, make_clone, run_ifcoord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ifcoord.files.board import read_title

PEOPLE_TITLES = ["Use `ticks`", "`code` first", "Fix **bold** bug", "Ship it 🚀", "Tidy ✅"]


def ok(*args: str, cwd: Path) -> str:
    done = run_ifcoord(*args, cwd=cwd)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def board_text(bare: Path) -> str:
    return git("show", "ifcoord:boards/PHASE-0.md", cwd=bare)


@pytest.fixture
def admin(bare_remote: Path, tmp_path: Path) -> Path:
    clone = make_clone(bare_remote, tmp_path / "admin")
    ok("init", "--board", str(EXAMPLE_BOARDS / "PHASE-0.md"), cwd=clone)
    return clone


def test_task_add_and_edit_take_titles_as_people_write_them(admin: Path, bare_remote: Path) -> None:
    for n, title in enumerate(PEOPLE_TITLES, start=20):
        ok("task", "add", f"T0.{n}", title, "--priority", "high", "--for", "session-2", cwd=admin)
        text = board_text(bare_remote)
        # the heading as typed, the board's blank line under it, the priority in the board's case
        assert f"## T0.{n}: {title}\n\n**Status:** open\n**Priority:** HIGH\n**Session:** session-2\n" in text
        shown = json.loads(ok("show", f"T0.{n}", "--json", cwd=admin))["task"]
        assert (shown["title"], shown["state"]) == (read_title(f"T0.{n}", title), "open")
    refused = run_ifcoord("task", "add", "T0.30", "x", "--priority", "urgent", cwd=admin)
    assert refused.returncode == 2 and "unknown priority 'urgent'" in refused.stderr

    before = board_text(bare_remote)
    ok(
        "task", "edit", "T0.3", "--title", "Slug `generator` ✨", "--depends-on", "T0.1 T0.2",
        "--priority", "LOW", "--for", "session-4-*", "--estimate", "3h", cwd=admin,
    )  # fmt: skip
    after = board_text(bare_remote)
    assert (
        "## T0.3: Slug `generator` ✨\n\n**Status:** open\n**Priority:** LOW\n**Depends on:** T0.1, T0.2\n"
        in after
    )
    assert "**Estimate:** 3h\n" in after and "**Session:** session-4-*" in after
    # only T0.3's lines changed
    diff = [d for d in difflib.ndiff(before.splitlines(), after.splitlines()) if d[:2] in ("+ ", "- ")]
    assert len([d for d in diff if d.startswith("- ")]) == 4, diff  # heading, priority, deps, estimate
    assert len([d for d in diff if d.startswith("+ ")]) == 5, diff  # ... and a new Session line
    message = git("log", "-1", "--format=%B", "ifcoord", cwd=bare_remote)
    assert message.startswith("ifcoord: edit T0.3 by human") and "Ifcoord-Op: edit" in message
    ok("task", "edit", "T0.3", "--for", "", "--estimate", "", cwd=admin)
    assert "**Session:**" not in board_text(bare_remote).split("## T0.4")[0].split("## T0.3")[1]
    nothing = run_ifcoord("task", "edit", "T0.3", cwd=admin)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    title=st.text(
        st.characters(whitelist_categories=("Lu", "Ll", "Nd", "Zs", "Po", "So"), whitelist_characters="`*_"),
        min_size=1,
        max_size=24,
    )
)
def test_generated_titles_round_trip_through_task_edit_or_are_refused(admin: Path, title: str) -> None:
    done = run_ifcoord("task", "edit", "T0.5", "--title", title, "--json", cwd=admin)
    try:
        expected = read_title("T0.5", title)
    except ValueError:
        assert done.returncode == 2, done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert json.loads(ok("show", "T0.5", "--json", cwd=admin))["task"]["title"] == expected


def test_show_and_log_of_a_blocked_task_say_why(admin: Path) -> None:
    s1 = ("--session", "session-1")
    ok("claim", "T0.1", *s1, cwd=admin)
    ok("progress", "T0.1", "50", "--tests-passed", "3", "--tests-failed", "1", *s1, cwd=admin)
    ok("block", "T0.1", "--on", "T0.2", "--reason", "needs the schema first", *s1, cwd=admin)
    shown = ok("show", "T0.1", cwd=admin)
    for expected in (
        "state: blocked",
        "waiting on: T0.2",
        "block reason: needs the schema first",
        "tests: 3 passed, 1 failed",
        "☑ 50% - Lint and test commands run locally",
        "priority: CRITICAL",
    ):
        assert expected in shown, (expected, shown)
    log = json.loads(ok("log", "T0.1", "--json", cwd=admin))["entries"]
    details = {e["op"]: e["details"] for e in log}
    assert (
        details["progress"].startswith("50%")
        and "☑ 50% - Lint and test commands run locally" in details["progress"]
    )
    assert details["block"] == "waits on T0.2; needs the schema first"
    wide = run_ifcoord("log", "T0.1", cwd=admin, env={"COLUMNS": "200"})
    assert "waits on T0.2; needs the schema first" in wide.stdout


def test_next_says_why_it_picked(admin: Path) -> None:
    out = " ".join(ok("next", "--session", "session-9", cwd=admin).split())
    assert "T0.1 is the ready primary task to take first: priority CRITICAL is above T0.2's HIGH" in out
