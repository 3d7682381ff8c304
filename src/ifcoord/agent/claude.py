"""Claude Code integration: the hooks in `.claude/settings.json`, and what each hook answers.

Claude Code runs a hook command with one JSON object on stdin and reads one JSON object from
its stdout. A Stop hook that answers `{"decision": "block", "reason": ...}` makes the agent go
on with the reason as its next instruction: that is how a session is kept on the board without
a background loop. Every answer comes from `ifcoord now` (session/now.py), never from memory.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifcoord.errors import IfcoordError, InvalidData

MARK = "ifcoord agent hook"  # how our own entries are told apart from the user's hooks
EVENTS = ("session-start", "stop", "pre-tool-use", "session-end")
SETTINGS_EVENT = {
    "session-start": "SessionStart",
    "stop": "Stop",
    "pre-tool-use": "PreToolUse",
    "session-end": "SessionEnd",
}
EDIT_TOOLS = "Edit|Write|MultiEdit|NotebookEdit"
DEFAULT_STOP_WAIT = 120.0  # seconds the Stop hook waits for work before letting the agent stop
DEFAULT_MAX_BLOCKS = 25  # consecutive Stop blocks before the agent may stop whatever the board says
REPEATS_ALLOWED = 2  # the same instruction, unacted upon, this many times: let the agent stop


# -- settings.json ----------------------------------------------------------------------------


def ifcoord_command() -> str:
    """How the hooks start ifcoord: this interpreter, so a virtualenv need not be on PATH."""
    return f"{shlex.quote(sys.executable)} -m ifcoord"


@dataclass(frozen=True)
class InstallOptions:
    session: str | None = None
    stop_wait: float = DEFAULT_STOP_WAIT
    max_blocks: int = DEFAULT_MAX_BLOCKS
    deny_others: bool = False  # PreToolUse refuses (instead of warning) edits of others' deliverables


def our_hooks(opts: InstallOptions, command: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The hook entries ifcoord installs, by Claude Code event name."""
    base = f"{command or ifcoord_command()} agent hook"
    session = f" --session {shlex.quote(opts.session)}" if opts.session else ""

    def entry(event: str, extra: str = "", timeout: float | None = None) -> dict[str, Any]:
        hook: dict[str, Any] = {"type": "command", "command": f"{base} {event}{session}{extra}"}
        if timeout is not None:
            hook["timeout"] = int(timeout)
        return {"hooks": [hook]}

    stop_extra = f" --wait {opts.stop_wait:g} --max-blocks {opts.max_blocks}"
    pre = entry("pre-tool-use", " --deny" if opts.deny_others else "", 30)
    pre["matcher"] = EDIT_TOOLS
    return {
        "SessionStart": [entry("session-start", "", 60)],
        "Stop": [entry("stop", stop_extra, opts.stop_wait + 60)],
        "PreToolUse": [pre],
        "SessionEnd": [entry("session-end", "", 30)],
    }


def is_ours(hook: Any) -> bool:
    return isinstance(hook, dict) and MARK in str(hook.get("command", ""))


def without_ours(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings with every ifcoord hook removed and nothing else touched."""
    out = dict(settings)
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return out
    kept: dict[str, Any] = {}
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            kept[event] = groups
            continue
        new_groups = []
        for group in groups:
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                inner = [h for h in group["hooks"] if not is_ours(h)]
                if not inner:
                    continue
                group = {**group, "hooks": inner}
            new_groups.append(group)
        if new_groups:
            kept[event] = new_groups
    if kept:
        out["hooks"] = kept
    else:
        out.pop("hooks", None)
    return out


def ours_in(settings: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The ifcoord entries present, by event (the groups holding only our hooks)."""
    found: dict[str, list[dict[str, Any]]] = {}
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return found
    for event, groups in hooks.items():
        for group in groups if isinstance(groups, list) else []:
            if isinstance(group, dict) and any(is_ours(h) for h in group.get("hooks", [])):
                found.setdefault(event, []).append(group)
    return found


def with_ours(settings: dict[str, Any], opts: InstallOptions, command: str | None = None) -> dict[str, Any]:
    """The settings with ifcoord's hooks merged in; unchanged when they are there already."""
    wanted = our_hooks(opts, command)
    if ours_in(settings) == wanted:
        return settings
    out = without_ours(settings)
    hooks = dict(out.get("hooks") or {})
    for event, groups in wanted.items():
        hooks[event] = list(hooks.get(event) or []) + groups
    out["hooks"] = hooks
    return out


def settings_path(top: Path) -> Path:
    return top / ".claude" / "settings.json"


def load_settings(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text() or "{}")
    except ValueError as exc:
        raise InvalidData(f"not valid JSON: {exc}", file=str(path), hint="fix or remove the file") from exc
    if not isinstance(data, dict):
        raise InvalidData("expected a JSON object", file=str(path), hint="fix or remove the file")
    return data


def write_settings(path: Path, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Write only when something changed; True when it did."""
    if new == old and path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(new, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return True


def install(top: Path, opts: InstallOptions, command: str | None = None) -> tuple[Path, bool]:
    path = settings_path(top)
    old = load_settings(path)
    return path, write_settings(path, old, with_ours(old, opts, command))


def uninstall(top: Path) -> tuple[Path, bool]:
    path = settings_path(top)
    if not path.exists():
        return path, False
    old = load_settings(path)
    return path, write_settings(path, old, without_ours(old))


# -- the hooks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HookOptions:
    session: str | None = None
    wait: float = DEFAULT_STOP_WAIT
    max_blocks: int = DEFAULT_MAX_BLOCKS
    deny: bool = False
    interval: float | None = None  # seconds between looks while waiting (default: poll_seconds)


class StopMemory:
    """What the Stop hook remembers between two stops of one session (in the git dir)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)


def context_output(event: str, text: str) -> dict[str, Any]:
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


def run_hook(
    event: str, data: dict[str, Any], opts: HookOptions, ws_factory: Callable[[], Any]
) -> dict[str, Any]:
    """Answer one hook; a failure becomes a message for the person, never a broken session."""
    handlers: dict[str, Callable[[dict[str, Any], HookOptions, Any], dict[str, Any]]] = {
        "session-start": session_start,
        "stop": stop,
        "pre-tool-use": pre_tool_use,
        "session-end": session_end,
    }
    try:
        ws = ws_factory()
        if not ws._session and opts.session:  # the session named at install, joined once
            ws.join(opts.session, None, None)
            ws = ws_factory()
        return handlers[event](data, opts, ws)
    except IfcoordError as exc:
        return {"systemMessage": f"ifcoord: {exc.line()}"}


def session_start(data: dict[str, Any], opts: HookOptions, ws: Any) -> dict[str, Any]:
    """The session's brief and what to do now, as context for the agent's first turn."""
    from ifcoord.session.now import ask, message
    from ifcoord.views.brief import render_brief

    answer, snapshot, stale = ask(ws, claim=True)
    brief = render_brief(snapshot, ws.session, stale, ws.remote, ws.branch)
    text = (
        f"You are ifcoord session `{ws.session}`; coordinate through ifcoord (`ifcoord now`).\n\n"
        f"## What to do now\n\n{message(answer, snapshot)}\n\n{brief}"
    )
    return context_output("SessionStart", text)


def stop(data: dict[str, Any], opts: HookOptions, ws: Any) -> dict[str, Any]:
    """Keep the agent on the board: block the stop with its next instruction, within limits.

    1. A fresh stop (not itself caused by this hook) resets the count of consecutive blocks.
    2. Past the cap, let it stop, whatever the board says: a session never loops forever.
    3. Ask `now` (claiming when it holds nothing); with nothing ready wait up to `opts.wait`.
    4. The same instruction again, with nothing changed since: it was not acted upon; stop.
    """
    from ifcoord.core.ops import KEEP, heartbeat
    from ifcoord.session.now import ask, continue_message, message

    memory = StopMemory(ws.home / f"claude-stop-{ws.session}.json")
    seen = memory.load()
    if not data.get("stop_hook_active"):  # 1.
        seen = {"blocks": 0, "signature": None, "repeats": 0, "task": seen.get("task")}
    blocks = int(seen.get("blocks", 0))
    if blocks >= opts.max_blocks:  # 2.
        memory.save({"blocks": 0, "signature": None, "repeats": 0})
        return {"systemMessage": f"ifcoord: let the session stop after {blocks} instructions in a row"}
    answer, snapshot, stale = ask(ws, claim=True)  # 3.
    deadline = time.monotonic() + opts.wait
    while answer.action == "wait" and time.monotonic() < deadline:
        interval = opts.interval if opts.interval is not None else snapshot.config.poll_seconds
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
        answer, snapshot, stale = ask(ws, claim=True)
    if answer.action in ("wait", "done"):
        memory.save({"blocks": 0, "signature": None, "repeats": 0})
        # `done`: this agent stopped asking; a primary that becomes ready is offered to
        # running sessions instead (session/now.py primary_assignments).
        ws.apply(lambda s, c: heartbeat(s, c, "done", KEEP))
        return {"systemMessage": message(answer, snapshot)}
    task = answer.task
    assert task is not None
    if answer.action == "work" and not answer.claimed and seen.get("task") == task.id:
        reason = continue_message(task)
    else:  # a new instruction (or one the agent may have lost track of): in full
        reason = message(answer, snapshot)
    signature = f"{answer.action}:{task.id}:{task.state}:{task.progress}:{task.note}"
    repeats = int(seen.get("repeats", 0)) + 1 if signature == seen.get("signature") else 0
    if data.get("stop_hook_active") and repeats >= REPEATS_ALLOWED:  # 4.
        memory.save({"blocks": 0, "signature": None, "repeats": 0})
        return {"systemMessage": f"ifcoord: {task.id} unchanged after {repeats + 1} reminders; stopping"}
    memory.save({"blocks": blocks + 1, "signature": signature, "repeats": repeats, "task": task.id})
    return {"decision": "block", "reason": reason}


def deliverable_paths(text: str | None) -> list[str]:
    """The paths a Deliverable field names: backquoted ones, else comma-separated words with a '/'
    or a '.'."""
    if not text:
        return []
    quoted = re.findall(r"`([^`]+)`", text)
    if quoted:
        return [q.strip() for q in quoted if "/" in q or "." in q]
    parts = [p.strip() for p in re.split(r"[,;]", text)]
    return [p for p in parts if p and " " not in p and ("/" in p or "." in p)]


def touches(path: str, deliverable: str) -> bool:
    import fnmatch

    d = deliverable.strip().rstrip("/")
    return path == d or path.startswith(d + "/") or fnmatch.fnmatchcase(path, d)


def pre_tool_use(data: dict[str, Any], opts: HookOptions, ws: Any) -> dict[str, Any]:
    """Say so when the file about to be edited is a deliverable of another session's live task.

    Reads the branch as last fetched (no network on every edit); advisory unless --deny.
    """
    from ifcoord.core.lifecycle import held_by

    tool_input = data.get("tool_input") or {}
    raw = tool_input.get("file_path") or tool_input.get("notebook_path")
    if not raw or ws.top is None:
        return {}
    try:
        path = Path(raw).resolve().relative_to(Path(ws.top).resolve()).as_posix()
    except ValueError:
        return {}  # outside this repository
    state = ws.read(fetch=False)
    if state.commit is None:
        return {}
    snapshot = state.snapshot
    stale = ws.stale(snapshot)
    tasks = snapshot.tasks()
    me = ws._session
    from ifcoord.core.lifecycle import owner_is_stale

    for owner in sorted({t.owner for t in tasks.values() if t.owner and t.owner != me}):
        for task in held_by(tasks.values(), owner):
            if owner_is_stale(task, stale):
                continue
            if any(touches(path, d) for d in deliverable_paths(task.deliverable)):
                text = (
                    f"ifcoord: {path} is a deliverable of {task.id} ({task.title}), which {owner} "
                    f"is working on ({task.state}); coordinate before changing it."
                )
                if opts.deny:
                    return {
                        "hookSpecificOutput": {
                            "hookEventName": "PreToolUse",
                            "permissionDecision": "deny",
                            "permissionDecisionReason": text,
                        }
                    }
                return context_output("PreToolUse", text)
    return {}


def session_end(data: dict[str, Any], opts: HookOptions, ws: Any) -> dict[str, Any]:
    """Mark the session offline; its claims stay (another session may reclaim once stale)."""
    from ifcoord.core.ops import KEEP, heartbeat

    ws.apply(lambda s, c: heartbeat(s, c, "offline", KEEP))
    return {}


SNIPPET = """\
## Coordination (ifcoord)

This repository's work is split between parallel sessions through ifcoord. Once per clone:
`ifcoord join SESSION-NAME` (your session name is given by the person who started you).

- Ask what to do: `ifcoord now --json`. It answers from the coordination branch and claims a
  task for you when you hold none. `action` is one of: `work` (do `task`), `switch` (finish or
  release your filler `task`, your primary `primary` is ready), `unblock` (run
  `ifcoord unblock ID`), `wait` (nothing ready: `waiting_on`), `done` (board finished).
- Report as you go: `ifcoord progress ID PERCENT --note "..." --epoch N`; finish with
  `ifcoord complete ID --deliverable PATH --tests-passed N --epoch N --next --json`; when stuck
  `ifcoord block ID --on OTHER-ID --reason "..." --epoch N` or give it back with
  `ifcoord release ID --epoch N`. N is the `epoch` that `now` gave you with the task: a command
  from an older claim is then refused ("lease lost") instead of touching someone else's work.
- `complete --next` also claims your next task and answers as `now` does, under `next`. After
  the others, ask `ifcoord now` again. With nothing ready,
  `ifcoord now --wait 600` waits for work and returns as soon as there is some.
- Never edit the coordination branch or the STATUS files by hand; `ifcoord` does it.
"""
