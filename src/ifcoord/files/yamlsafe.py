"""YAML read safely, for STATUS files and ifcoord.yaml alike: no aliases, anchors or tags,
bounded size, and file:line in every error. Also the round-trip YAML instance that renders values.
"""

from __future__ import annotations

import io
import re
import threading
from datetime import datetime, timezone
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    ScalarEvent,
)
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from ifcoord.errors import InvalidData

MAX_YAML_BYTES = 64 * 1024
# ifcoord's own files nest three levels at most; the YAML parser recurses once per level (and
# its scanner slows down sharply with deep flow collections), so depth is bounded before it runs.
MAX_YAML_DEPTH = 16


def _new_yaml() -> YAML:
    """A round-trip YAML instance set up for both reading and rendering values."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1_000_000  # never fold a long value onto a second line
    # a value repeated in an update must not come out as an anchor/alias pair we then refuse
    yaml.representer.ignore_aliases = lambda *args: True
    yaml.representer.add_representer(datetime, _represent_datetime)
    return yaml


def _represent_datetime(representer: Any, value: datetime) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:timestamp", format_timestamp(value))


def format_timestamp(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ` in UTC; sub-second precision is dropped."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value.isoformat()} has no time zone")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _line_of_offset(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _decode(path: str, data: bytes | str, max_bytes: int) -> str:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise InvalidData(
            f"file is {len(raw)} bytes, over the {max_bytes // 1024} KiB limit",
            file=path,
            line=raw.count(b"\n", 0, max_bytes) + 1,  # where the limit is crossed
            hint="a status or config file this large is not something ifcoord wrote; trim it",
        )
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidData(
                f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                file=path,
                line=data.count(b"\n", 0, exc.start) + 1,
                hint="save the file as UTF-8",
            ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _syntax_error(path: str, text: str, exc: YAMLError) -> InvalidData:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line: int | None = None
    if mark is not None:
        line = mark.line + 1
    elif isinstance(exc, ReaderError):
        line = _line_of_offset(text, exc.position)
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    context = getattr(exc, "context", None)
    reason = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    return InvalidData(reason, file=path, line=line, hint="fix the YAML at that line")


def _refuse_deep(path: str, text: str) -> None:
    """Refuse nesting deeper than MAX_YAML_DEPTH, from the text alone, in one linear pass.

    It over-counts rather than under-counts (a bracket inside a plain scalar counts too), which
    only matters for files nesting brackets this deep, and those are never ifcoord's."""
    indents: list[int] = []
    flow = 0
    quote = ""
    for number, line in enumerate(text.split("\n"), 1):
        depth = flow
        if not flow and not quote:
            stripped = line.lstrip(" ")
            if stripped and not stripped.startswith("#"):
                indent = len(line) - len(stripped)
                while indents and indents[-1] >= indent:
                    indents.pop()
                indents.append(indent)
                dashes = len(_DASHES.match(stripped).group().split("-")) - 1  # type: ignore[union-attr]
                depth = len(indents) + dashes
        i = 0
        while i < len(line) and depth <= MAX_YAML_DEPTH:
            char = line[i]
            if quote:
                if char == "\\" and quote == '"':
                    i += 1
                elif char == quote:
                    quote = ""
            elif char in "\"'" and (i == 0 or line[i - 1] in " \t[{,:-"):
                quote = char
            elif char == "#" and (i == 0 or line[i - 1] in " \t"):
                break
            elif char in "[{":
                flow += 1
                depth = max(depth, flow + len(indents))
            elif char in "]}":
                flow = max(0, flow - 1)
            i += 1
        if depth > MAX_YAML_DEPTH:
            raise InvalidData(
                f"nested more than {MAX_YAML_DEPTH} levels deep",
                file=path,
                line=number,
                hint="a status or config file this deep is not something ifcoord wrote; flatten it",
            )


_DASHES = re.compile(r"(?:-[ \t]+)*")


def _refuse_unsafe(path: str, text: str) -> None:
    """Refuse anchors, aliases, tags and extra documents before anything is built.

    Checked on the event stream so an alias bomb is never expanded.
    """
    documents = 0
    try:
        for event in _new_yaml().parse(io.StringIO(text)):
            line = event.start_mark.line + 1 if event.start_mark is not None else None
            if isinstance(event, AliasEvent):
                raise InvalidData(
                    f"alias *{event.anchor} is not allowed",
                    file=path,
                    line=line,
                    hint="write the value out in full; anchors and aliases are refused",
                )
            if isinstance(event, (ScalarEvent, CollectionStartEvent)):
                if event.anchor:
                    raise InvalidData(
                        f"anchor &{event.anchor} is not allowed",
                        file=path,
                        line=line,
                        hint="remove the anchor; anchors and aliases are refused",
                    )
                if event.tag is not None:
                    raise InvalidData(
                        f"tag {event.tag} is not allowed",
                        file=path,
                        line=line,
                        hint="remove the tag; plain YAML values only",
                    )
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise InvalidData(
                        "more than one YAML document",
                        file=path,
                        line=line,
                        hint="keep one mapping per file",
                    )
    except YAMLError as exc:
        raise _syntax_error(path, text, exc) from None


# Texts loaded lately, and what they loaded to. A polling loop reads the same STATUS files
# again and again (merged, rendered, checked): each load is two passes of ruamel's pure-Python
# parser. Only texts that loaded without error are kept, so every refusal still names its file;
# only texts of up to LOADED_TEXT_MAX characters (a STATUS file with its 50 decisions is about
# 8 KB), so what is kept stays within a few megabytes whatever the files hold.
LOADED_KEPT = 256
LOADED_TEXT_MAX = 16 * 1024
_loaded: dict[str, Any] = {}
_loaded_lock = threading.Lock()


def load_safe_yaml(path: str, data: bytes | str, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Load one YAML document round-trip (CommentedMap etc.), refusing what ifcoord never accepts:
    more than `max_bytes`, non-UTF-8, anchors, aliases, tags, several documents, bad syntax.

    Errors are InvalidData naming `path` and the line. A short text is loaded once per process
    while it is among the LOADED_KEPT latest: callers treat what they get as read-only.
    """
    text = _decode(path, data, max_bytes)
    with _loaded_lock:
        if text in _loaded:
            return _loaded[text]
    _refuse_deep(path, text)
    _refuse_unsafe(path, text)
    try:
        doc = _new_yaml().load(text)
    except YAMLError as exc:  # duplicate keys land here too
        raise _syntax_error(path, text, exc) from None
    if len(text) <= LOADED_TEXT_MAX:
        with _loaded_lock:
            if len(_loaded) >= LOADED_KEPT:
                del _loaded[next(iter(_loaded))]  # the oldest
            _loaded[text] = doc
    return doc


def to_plain(value: Any) -> Any:
    """ruamel's round-trip types -> plain Python (dict, list, str, int, float, bool, datetime)."""
    if isinstance(value, dict):
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, datetime):  # ruamel's TimeStamp subclass carries extra state
        return datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=value.tzinfo,
        )
    if isinstance(value, (bool, ScalarBoolean)):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def key_line(mapping: Any, key: Any) -> int | None:
    """1-based line of `key` in a loaded CommentedMap, when known."""
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _node_line(node: Any) -> int:
    try:
        return int(node.lc.line) + 1
    except (AttributeError, TypeError):
        return 1


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"
