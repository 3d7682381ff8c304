"""`ifcoord mcp` as a real subprocess, driven by the official MCP SDK's own stdio client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_clone, run_ifcoord

mcp = pytest.importorskip("mcp")
anyio = pytest.importorskip("anyio")

from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

TOOLS = {
    "now", "next", "claim", "progress", "block", "unblock", "complete", "release",
    "board", "show", "status", "brief",
}  # fmt: skip


def is_error(result: Any) -> bool:
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_an_mcp_client_works_a_task_through_the_tools_and_gets_errors_with_their_meaning(
    bare_remote: Path, tmp_path: Path
) -> None:
    admin = make_clone(bare_remote, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text("# P\n\n## T1: First\n\n## T2: Second\n**Depends on:** T1\n")
    done = run_ifcoord("init", "--remote", str(bare_remote), "--board", "PHASE-0.md", cwd=admin)
    assert done.returncode == 0, done.stderr
    clone = make_clone(bare_remote, tmp_path / "c")
    assert run_ifcoord("join", "s1", "--remote", str(bare_remote), cwd=clone).returncode == 0
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "ifcoord", "mcp"], cwd=str(clone), env=dict(os.environ)
    )
    seen: dict[str, Any] = {}

    async def drive() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            seen["tools"] = {t.name for t in listed.tools}
            now = await session.call_tool("now", {})
            seen["now"] = json.loads(text(now))
            seen["progress"] = json.loads(
                text(await session.call_tool("progress", {"task": "T1", "percent": 50}))
            )
            seen["not-ready"] = await session.call_tool("claim", {"task": "T2"})
            seen["complete"] = json.loads(
                text(await session.call_tool("complete", {"task": "T1", "next": True}))
            )
            seen["board"] = json.loads(text(await session.call_tool("board", {})))
            seen["brief"] = text(await session.call_tool("brief", {}))
            seen["unknown"] = await session.call_tool("show", {"task": "T9"})

    anyio.run(drive)
    assert seen["tools"] == TOOLS
    assert (seen["now"]["action"], seen["now"]["task"]["id"], seen["now"]["claimed"]) == ("work", "T1", True)
    assert seen["progress"]["task"]["progress"] == 50 and seen["progress"]["op"] == "progress"
    assert is_error(seen["not-ready"]) and "not ready (exit 4)" in text(seen["not-ready"])
    assert seen["complete"]["task"]["state"] == "done"
    # next=true: T2, ready once T1 is done, was claimed in the same call
    assert (seen["complete"]["next"]["action"], seen["complete"]["next"]["task"]["id"]) == ("work", "T2")
    assert seen["complete"]["next"]["claimed"] is True
    assert {t["id"]: t["state"] for t in seen["board"]["tasks"]} == {"T1": "done", "T2": "in_progress"}
    assert seen["brief"].startswith("# Brief for s1")
    assert is_error(seen["unknown"]) and "usage error (exit 2)" in text(seen["unknown"])
    assert "**Status:** done" in git("show", "ifcoord:boards/PHASE-0.md", cwd=bare_remote)


def test_other_commands_do_not_import_mcp(clone: Path) -> None:
    probe = (
        "import sys; from ifcoord.cli.app import run; run(['agent', 'snippet']); "
        "sys.stderr.write(str('mcp' in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=clone, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.endswith("False"), done.stderr
