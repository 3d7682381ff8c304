"""The Claude Code hooks: settings.json merging, and each hook's JSON answer to a recorded input.

The hooks run as Claude Code runs them: `ifcoord agent hook EVENT` as a process, the hook's
input JSON on stdin, its answer read from stdout, over a real bare remote.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import git, ifcoord_cmd, make_clone, run_ifcoord

from ifcoord.agent.claude import InstallOptions, deliverable_paths, with_ours, without_ours

BOARD = (
    "# Phase 0\n\n## T1: Base\n**Deliverable:** `src/base.py`, `docs/`\n**Milestones:**\n"
    "- [ ] 50% - half\n- [ ] 100% - all\n\n## T2: Next\n**Depends on:** T1\n"
)
USER_SETTINGS: dict[str, Any] = {
    "permissions": {"allow": ["Bash(make test)"]},
    "hooks": {
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./check-bash"}]}],
    },
}


def recorded(event: str, cwd: Path, **extra: Any) -> dict[str, Any]:
    """A hook input as Claude Code sends it."""
    return {
        "session_id": "0b6f3c2e-claude",
        "transcript_path": str(cwd / "transcript.jsonl"),
        "cwd": str(cwd),
        "hook_event_name": event,
        **extra,
    }


def hook(clone: Path, event: str, data: dict[str, Any], *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [*ifcoord_cmd(), "agent", "hook", event, *args],
        cwd=clone, input=json.dumps(data), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def board_remote(bare_remote: Path, tmp_path: Path) -> Path:
    admin = make_clone(bare_remote, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text(BOARD)
    (admin / "ifcoord.yaml").write_text("poll_seconds: 0.1\n")
    done = run_ifcoord(
        "init", "--remote", str(bare_remote), "--board", "PHASE-0.md", "--config", "ifcoord.yaml", cwd=admin
    )
    assert done.returncode == 0, done.stderr
    return bare_remote


def joined(remote: Path, where: Path, session: str) -> Path:
    clone = make_clone(remote, where)
    assert run_ifcoord("join", session, cwd=clone).returncode == 0
    return clone


# -- settings.json ----------------------------------------------------------------------------


def test_install_keeps_the_users_hooks_and_uninstall_removes_only_ours() -> None:
    merged = with_ours(USER_SETTINGS, InstallOptions(session="s1"), command="ifcoord")
    assert merged["permissions"] == USER_SETTINGS["permissions"]
    stops = [h["command"] for g in merged["hooks"]["Stop"] for h in g["hooks"]]
    assert stops[0] == "notify-send done" and stops[1].startswith("ifcoord agent hook stop --session s1")
    pre = merged["hooks"]["PreToolUse"]
    assert pre[0]["matcher"] == "Bash" and pre[1]["matcher"] == "Edit|Write|MultiEdit|NotebookEdit"
    assert set(merged["hooks"]) == {"Stop", "PreToolUse", "SessionStart", "SessionEnd"}
    assert with_ours(merged, InstallOptions(session="s1"), command="ifcoord") is merged
    assert without_ours(merged) == USER_SETTINGS


def test_agent_install_twice_changes_nothing_and_uninstall_restores_the_file(clone: Path) -> None:
    settings = clone / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps(USER_SETTINGS, indent=2) + "\n")
    first = run_ifcoord("agent", "install", "claude", "--session", "s1", "--json", cwd=clone)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["changed"] is True
    after_first = settings.read_bytes()
    second = run_ifcoord("agent", "install", "claude", "--session", "s1", "--json", cwd=clone)
    assert json.loads(second.stdout)["changed"] is False
    assert settings.read_bytes() == after_first
    data = json.loads(after_first)
    assert data["hooks"]["SessionStart"][0]["hooks"][0]["command"].endswith(
        "-m ifcoord agent hook session-start --session s1"
    )
    assert data["hooks"]["Stop"][1]["hooks"][0]["timeout"] == 180
    gone = run_ifcoord("agent", "uninstall", "claude", cwd=clone)
    assert gone.returncode == 0, gone.stderr
    assert json.loads(settings.read_text()) == USER_SETTINGS
    assert git("status", "--porcelain", cwd=clone) == "?? .claude/"  # nothing else in the tree


def test_agent_install_refuses_an_unknown_client_and_a_broken_settings_file(clone: Path) -> None:
    done = run_ifcoord("agent", "install", "cursor", cwd=clone)
    assert done.returncode == 2 and "unknown agent client 'cursor'" in done.stderr
    (clone / ".claude").mkdir()
    (clone / ".claude" / "settings.json").write_text("{not json")
    done = run_ifcoord("agent", "install", "claude", cwd=clone)
    assert done.returncode == 6 and ".claude/settings.json" in done.stderr


def test_agent_snippet_tells_an_agent_to_join_and_ask_now(clone: Path) -> None:
    done = run_ifcoord("agent", "snippet", cwd=clone)
    assert done.returncode == 0
    assert "ifcoord join" in done.stdout and "ifcoord now --json" in done.stdout
    assert "ifcoord poll" not in done.stdout
    # finishing also asks for the next task, in the same turn at the branch
    assert "`ifcoord complete ID --deliverable PATH --tests-passed N --epoch N --next --json`" in done.stdout


def test_deliverable_paths_are_read_from_backquotes_or_a_plain_list() -> None:
    assert deliverable_paths("`src/a.py`, `docs/` and tests") == ["src/a.py", "docs/"]
    assert deliverable_paths("src/a.py, README.md") == ["src/a.py", "README.md"]
    assert deliverable_paths("expires_at column, 410 Gone") == []


# -- the hooks --------------------------------------------------------------------------------


def test_session_start_joins_from_the_install_flag_and_gives_the_brief_and_the_task(
    board_remote: Path, tmp_path: Path
) -> None:
    clone = make_clone(board_remote, tmp_path / "c")
    git("config", "ifcoord.remote", str(board_remote), cwd=clone)
    out = hook(clone, "session-start", recorded("SessionStart", clone, source="startup"), "--session", "s1")
    context = out["hookSpecificOutput"]
    assert context["hookEventName"] == "SessionStart"
    assert "ifcoord: work on T1: Base" in context["additionalContext"]
    assert "# Brief for s1" in context["additionalContext"]
    assert git("config", "ifcoord.session", cwd=clone) == "s1"
    assert "**Owner:** s1" in git("show", "ifcoord:boards/PHASE-0.md", cwd=board_remote)


def test_stop_blocks_with_the_held_task_until_the_agent_stops_acting_on_it(
    board_remote: Path, tmp_path: Path
) -> None:
    clone = joined(board_remote, tmp_path / "c", "s1")
    first = hook(clone, "stop", recorded("Stop", clone, stop_hook_active=False), "--wait", "0")
    assert first["decision"] == "block" and first["reason"].startswith("ifcoord: work on T1: Base")
    again = hook(clone, "stop", recorded("Stop", clone, stop_hook_active=True), "--wait", "0")
    assert again["decision"] == "block"
    assert again["reason"].startswith(
        "ifcoord: continue T1 (0%, next milestone: 50% - half) or block/release it"
    )
    assert run_ifcoord("progress", "T1", "50", cwd=clone).returncode == 0
    moved = hook(clone, "stop", recorded("Stop", clone, stop_hook_active=True), "--wait", "0")
    assert moved["reason"].startswith("ifcoord: continue T1 (50%, next milestone: 100% - all)")
    # The same instruction, nothing done about it, again and again: let the agent stop.
    outs = [
        hook(clone, "stop", recorded("Stop", clone, stop_hook_active=True), "--wait", "0") for _ in range(2)
    ]
    assert outs[0].get("decision") == "block"
    assert "decision" not in outs[1] and "unchanged" in outs[1]["systemMessage"]


def test_stop_claims_the_next_task_once_the_held_one_is_complete(board_remote: Path, tmp_path: Path) -> None:
    clone = joined(board_remote, tmp_path / "c", "s1")
    assert run_ifcoord("claim", "T1", cwd=clone).returncode == 0
    assert run_ifcoord("complete", "T1", cwd=clone).returncode == 0
    out = hook(clone, "stop", recorded("Stop", clone, stop_hook_active=True), "--wait", "0")
    assert out["decision"] == "block" and out["reason"].startswith("ifcoord: work on T2: Next")
    assert "**Owner:** s1" in git("show", "ifcoord:boards/PHASE-0.md", cwd=board_remote).split("## T2")[1]


def test_stop_caps_consecutive_blocks(board_remote: Path, tmp_path: Path) -> None:
    clone = joined(board_remote, tmp_path / "c", "s1")
    args = ("--wait", "0", "--max-blocks", "2")
    assert hook(clone, "stop", recorded("Stop", clone, stop_hook_active=False), *args)["decision"] == "block"
    assert run_ifcoord("progress", "T1", "50", cwd=clone).returncode == 0
    assert hook(clone, "stop", recorded("Stop", clone, stop_hook_active=True), *args)["decision"] == "block"
    capped = hook(clone, "stop", recorded("Stop", clone, stop_hook_active=True), *args)
    assert "decision" not in capped and "2 instructions in a row" in capped["systemMessage"]
    # A new prompt from the person (stop_hook_active false) starts counting again.
    assert hook(clone, "stop", recorded("Stop", clone, stop_hook_active=False), *args)["decision"] == "block"


def test_stop_with_nothing_ready_waits_then_lets_the_agent_stop_idle(
    board_remote: Path, tmp_path: Path
) -> None:
    other = joined(board_remote, tmp_path / "o", "s2")
    assert run_ifcoord("claim", "T1", cwd=other).returncode == 0
    clone = joined(board_remote, tmp_path / "c", "s1")
    out = hook(
        clone, "stop", recorded("Stop", clone, stop_hook_active=False), "--wait", "0.5", "--interval", "0.1"
    )
    assert "decision" not in out
    assert out["systemMessage"].startswith("ifcoord: nothing ready for s1: waiting on T1")
    assert "status: done" in git("show", "ifcoord:status/s1.yaml", cwd=board_remote)


def test_stop_with_nothing_ready_claims_what_becomes_ready_while_it_waits(
    board_remote: Path, tmp_path: Path
) -> None:
    other = joined(board_remote, tmp_path / "o", "s2")
    assert run_ifcoord("claim", "T1", cwd=other).returncode == 0
    clone = joined(board_remote, tmp_path / "c", "s1")
    proc = subprocess.Popen(
        [*ifcoord_cmd(), "agent", "hook", "stop", "--wait", "30", "--interval", "0.1"],
        cwd=clone, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(recorded("Stop", clone, stop_hook_active=False)))
    proc.stdin.close()
    assert run_ifcoord("complete", "T1", cwd=other).returncode == 0
    assert proc.stdout is not None
    out = proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    assert json.loads(out)["reason"].startswith("ifcoord: work on T2")


def test_pre_tool_use_warns_about_another_sessions_deliverable_and_can_refuse(
    board_remote: Path, tmp_path: Path
) -> None:
    other = joined(board_remote, tmp_path / "o", "s2")
    assert run_ifcoord("claim", "T1", cwd=other).returncode == 0
    clone = joined(board_remote, tmp_path / "c", "s1")
    assert run_ifcoord("status", "--json", cwd=clone).returncode == 0  # fetches the branch once
    edit = recorded(
        "PreToolUse", clone, tool_name="Edit",
        tool_input={"file_path": str(clone / "docs" / "guide.md"), "old_string": "a", "new_string": "b"},
    )  # fmt: skip
    out = hook(clone, "pre-tool-use", edit)
    ctx = out["hookSpecificOutput"]
    assert ctx["hookEventName"] == "PreToolUse" and "permissionDecision" not in ctx
    assert "docs/guide.md is a deliverable of T1 (Base), which s2 is working on" in ctx["additionalContext"]
    denied = hook(clone, "pre-tool-use", edit, "--deny")["hookSpecificOutput"]
    assert denied["permissionDecision"] == "deny" and "T1" in denied["permissionDecisionReason"]
    mine = recorded("PreToolUse", clone, tool_name="Write", tool_input={"file_path": str(clone / "app.py")})
    assert hook(clone, "pre-tool-use", mine) == {}


def test_session_end_marks_the_session_offline(board_remote: Path, tmp_path: Path) -> None:
    clone = joined(board_remote, tmp_path / "c", "s1")
    assert run_ifcoord("claim", "T1", cwd=clone).returncode == 0
    out = hook(clone, "session-end", recorded("SessionEnd", clone, reason="prompt_input_exit"))
    assert out == {}
    status = git("show", "ifcoord:status/s1.yaml", cwd=board_remote)
    assert "status: offline" in status and "current_task: T1" in status


def test_a_hook_failure_is_a_message_not_a_broken_session(bare_remote: Path, tmp_path: Path) -> None:
    clone = joined(bare_remote, tmp_path / "c", "s1")  # no coordination branch on this remote
    out = hook(clone, "stop", recorded("Stop", clone, stop_hook_active=False), "--wait", "0")
    assert "decision" not in out and "no coordination branch ifcoord" in out["systemMessage"]


def test_a_hook_given_bad_input_exits_2(clone: Path) -> None:
    proc = subprocess.run(
        [*ifcoord_cmd(), "agent", "hook", "stop"], cwd=clone, input="not json", capture_output=True, text=True
    )
    assert proc.returncode == 2 and "hook input is not JSON" in proc.stderr
