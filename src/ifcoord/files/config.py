"""`ifcoord.yaml` -> Config, with defaults; which paths are boards and status files; phase order.

Loaded with the same safety rules as status files (yamlsafe.load_safe_yaml).
"""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap

from ifcoord.errors import InvalidData
from ifcoord.files.yamlsafe import MAX_YAML_BYTES, key_line, load_safe_yaml, to_plain
from ifcoord.models import Config

CONFIG_PATH = "ifcoord.yaml"

# why each key exists, shown in the default file; a test keeps this in step with Config
_KEY_NOTES: dict[str, str] = {
    "boards": "Globs of board files (`*` stays within one folder, `**` spans folders).",
    "status": "Globs of per-session STATUS files.",
    "exclude": "Paths never read as boards or status files (the generated dashboard).",
    "phases": 'Phase order, e.g. ["0", "1", "2A"]; unlisted phases follow, naturally sorted.',
    "lease_seconds": "A claim is stale when its owner's heartbeat is older than this.",
    "heartbeat_seconds": "How often a working session refreshes its heartbeat.",
    "poll_seconds": "Time between two cycles of `ifcoord poll` (jittered).",
    "skew_seconds": "Clock-skew margin when judging a heartbeat only by its timestamp.",
    "mode": "shared: sessions push this branch; own-branch: each pushes only its own.",
    "session_branches": "In own-branch mode, the branches (glob) holding sessions' STATUS.",
    "dashboard": "Write boards/README.md, a summary for people, with each change.",
}


def _line_in(doc: Any, key: str) -> int | None:
    return key_line(doc, key) if isinstance(doc, CommentedMap) else None


def parse_config(data: bytes | None, path: str = CONFIG_PATH) -> Config:
    """The branch's config; defaults when the file is absent or empty.

    InvalidData (file:line: reason) for bad YAML, an unknown key, or a value of the wrong type.
    """
    if data is None or not data.strip():
        return Config()
    doc = load_safe_yaml(path, data, max_bytes=MAX_YAML_BYTES)
    if doc is None:  # comments only
        return Config()
    if not isinstance(doc, CommentedMap):
        raise InvalidData(
            "the config must be a YAML mapping of `key: value` lines",
            file=path,
            line=1,
            hint="docs/board-format.md (ifcoord.yaml) shows every key with its default",
        )
    valid = list(Config.model_fields)
    values: dict[str, Any] = {}
    for key in doc:
        if key not in Config.model_fields:
            close = difflib.get_close_matches(str(key), valid, n=1)
            guess = f"did you mean `{close[0]}`? " if close else ""
            raise InvalidData(
                f"unknown key {key!r}",
                file=path,
                line=_line_in(doc, key),
                hint=f"{guess}valid keys: {', '.join(valid)}",
            )
        values[key] = to_plain(doc[key])
    if isinstance(values.get("phases"), list):
        # `phases: [0, 1, 2]` is how people write it; phase names are strings
        values["phases"] = [str(p) if isinstance(p, int) else p for p in values["phases"]]
    try:
        config = Config.model_validate(values)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        where = ".".join(str(part) for part in first["loc"])
        field = Config.model_fields.get(key)
        default = field.get_default(call_default_factory=True) if field is not None else None
        line = _line_in(doc, key or "heartbeat_seconds") or _line_in(doc, "lease_seconds")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidData(
            f"{where + ': ' if where else ''}{message}{more}",
            file=path,
            line=line,
            hint=f"the default is `{key}: {_yaml_value(default)}`" if field is not None else "fix the values",
        ) from None
    for key in ("boards", "status", "exclude"):
        for glob in getattr(config, key):
            problem = glob_problem(glob)
            if problem:
                raise InvalidData(
                    f"{key}: glob {glob!r} {problem}", file=path, line=_line_in(doc, key),
                    hint="write a glob such as `boards/*.md` (`[a-z]` ranges go upwards)",
                )  # fmt: skip
    if problem := glob_problem(config.session_branches):
        raise InvalidData(
            f"session_branches: glob {config.session_branches!r} {problem}",
            file=path, line=_line_in(doc, "session_branches"),
            hint="write a glob such as `ifcoord-sessions/*`",
        )  # fmt: skip
    return config


def _yaml_value(value: Any) -> str:
    """A default as YAML text: JSON scalars are valid YAML, and quoting keeps globs literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def render_default_config() -> str:
    """A commented `ifcoord.yaml` showing every key at its default."""
    lines = [
        "# ifcoord configuration. Every key is optional; these are the defaults.",
        "# Paths are relative to the root of the coordination branch.",
    ]
    defaults = Config()
    for name in Config.model_fields:
        value = getattr(defaults, name)
        lines.append("")
        lines.append(f"# {_KEY_NOTES.get(name, name)}")
        if isinstance(value, list) and value:
            lines.append(f"{name}:")
            lines.extend(f"  - {json.dumps(item)}" for item in value)
        else:
            lines.append(f"{name}: {_yaml_value(value)}")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Glob -> regex over a whole path: `*` and `?` stay within one folder, `**` spans folders.

    A glob that makes no regex (`[z-a]`) matches nothing rather than raising: parse_config
    refuses it, and a Config built some other way must not stop every command."""
    try:
        return re.compile(_glob_source(pattern))
    except re.error:
        return re.compile(r"(?!)")


def glob_problem(pattern: str) -> str | None:
    """What is wrong with a glob, or None."""
    try:
        re.compile(_glob_source(pattern))
    except re.error as exc:
        return f"is not a valid glob ({exc.msg})"
    return None


def _glob_source(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            close = pattern.find("]", i + 2)
            if close == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : close]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                out.append(("[^/" if negate else "[") + body.replace("\\", "\\\\") + "]")
                i = close + 1
                continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def glob_regex_source(pattern: str) -> str:
    """The regular expression a glob of ifcoord.yaml means (for CI filters that take one)."""
    return _glob_source(pattern)


def glob_match(pattern: str, path: str) -> bool:
    """Whether `path` (relative, `/`-separated) matches `pattern` as a whole."""
    return _glob_regex(pattern).fullmatch(path.removeprefix("./")) is not None


def _matches_any(patterns: list[str], path: str) -> bool:
    return any(glob_match(p, path) for p in patterns)


def is_board_path(config: Config, path: str) -> bool:
    return _included(tuple(config.boards), tuple(config.exclude), path)


def is_status_path(config: Config, path: str) -> bool:
    return _included(tuple(config.status), tuple(config.exclude), path)


@lru_cache(maxsize=8192)
def _included(patterns: tuple[str, ...], exclude: tuple[str, ...], path: str) -> bool:
    """Matched by one of `patterns` and none of `exclude`: a branch's few hundred paths are
    asked about several times per command (remembered, as the answer depends on these alone)."""
    return _matches_any(list(patterns), path) and not _matches_any(list(exclude), path)


def _natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    # digits compare as numbers, so "2" < "10" and "P2" < "P10"
    return tuple(
        (0, int(chunk), "") if chunk[0] in "0123456789" else (1, 0, chunk.casefold())
        for chunk in re.split(r"([0-9]+)", text)
        if chunk
    )


def phase_sort_key(config: Config, phase: str) -> tuple[Any, ...]:
    """Phases listed in `config.phases` first, in that order; then the rest in natural order."""
    return _phase_sort_key(tuple(config.phases), phase)


@lru_cache(maxsize=1024)
def _phase_sort_key(phases: tuple[str, ...], phase: str) -> tuple[Any, ...]:
    # asked once per task when thousands are sorted, about a handful of phases
    listed = [p.casefold() for p in phases]
    if phase.casefold() in listed:
        return (0, listed.index(phase.casefold()), (), phase)
    return (1, 0, _natural_key(phase), phase)
