"""STATUS YAML <-> SessionStatus: safe loading with file:line errors, and in-place updates.

Updates edit the file's text surgically (ruamel only locates and renders values), so comments,
key order, quoting, indentation, line endings and unknown keys stay byte for byte.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString
from ruamel.yaml.tokens import (
    BlockEndToken,
    BlockEntryToken,
    BlockMappingStartToken,
    BlockSequenceStartToken,
    CommentToken,
    DirectiveToken,
    DocumentStartToken,
    FlowMappingEndToken,
    FlowMappingStartToken,
    FlowSequenceEndToken,
    FlowSequenceStartToken,
    KeyToken,
    ScalarToken,
    StreamStartToken,
    Token,
    ValueToken,
)

from ifcoord.errors import IfcoordError, InvalidData
from ifcoord.files.yamlsafe import (
    MAX_YAML_BYTES,
    _decode,
    _kind,
    _new_yaml,
    _node_line,
    format_timestamp,
    key_line,
    load_safe_yaml,
    to_plain,
)
from ifcoord.models import SESSION_NAME_PATTERN, SessionStatus

MAX_STATUS_BYTES = MAX_YAML_BYTES

Layout = Literal["status-dir", "legacy"]

STATUS_DIR = "status"
_LEGACY_NAME = re.compile(r"STATUS-SESSION-(?P<rest>.+)\.ya?ml")
_SESSION_NAME = re.compile(SESSION_NAME_PATTERN)
_RENDER_LABEL = "<status update>"  # render_status has no path; errors name this instead


# --- file names --------------------------------------------------------------------------


def session_from_path(path: str) -> str | None:
    """The session a status file belongs to, from its name; None when the name is not one.

    `status/session-4-sip.yaml` -> `session-4-sip`; legacy `STATUS-SESSION-4-SIP.yaml` ->
    `session-4-sip` (legacy names are written in capitals, sessions are lower case).
    """
    name = PurePosixPath(path).name
    legacy = _LEGACY_NAME.fullmatch(name)
    if legacy:
        session = "session-" + legacy["rest"].lower()
    else:
        stem, dot, ext = name.rpartition(".")
        if not dot or ext not in ("yaml", "yml"):
            return None
        session = stem
    return session if _SESSION_NAME.fullmatch(session) else None


def legacy_status_name(session: str) -> str | None:
    """`session-4-sip` -> `STATUS-SESSION-4-SIP.yaml`; None for a session the legacy scheme
    cannot name (it must start with `session-`, or the name would not map back)."""
    if not session.startswith("session-") or len(session) == len("session-"):
        return None
    return f"STATUS-SESSION-{session[len('session-') :].upper()}.yaml"


def _is_status_location(path: str) -> bool:
    """A file in one of the two layouts this module writes: `status/<x>` or a root legacy name."""
    parent, _, name = path.rpartition("/")
    if parent == STATUS_DIR:
        return True
    return parent == "" and _LEGACY_NAME.fullmatch(name) is not None


def status_path_for(session: str, existing_paths: Iterable[str], layout_hint: Layout | None = None) -> str:
    """Where `session`'s status file lives, or goes when it has none yet.

    `existing_paths` are the paths of the branch's tree. The session's existing file wins.
    Otherwise `layout_hint` decides when given; else the legacy root name when the branch has
    legacy status files and no `status/` directory, else `status/<session>.yaml`.
    """
    paths = list(existing_paths)
    own = [p for p in paths if _is_status_location(p) and session_from_path(p) == session]
    if own:
        # a status/ file beats a legacy one if both exist: status/ is the current layout
        own.sort(key=lambda p: (not p.startswith(STATUS_DIR + "/"), p))
        return own[0]
    legacy = legacy_status_name(session)
    layout = layout_hint
    if layout is None:
        has_dir = any(p.startswith(STATUS_DIR + "/") for p in paths)
        has_legacy = any("/" not in p and _LEGACY_NAME.fullmatch(p) for p in paths)
        layout = "legacy" if has_legacy and not has_dir else "status-dir"
    if layout == "legacy" and legacy is not None:
        return legacy
    return f"{STATUS_DIR}/{session}.yaml"


# --- parsing -----------------------------------------------------------------------------


def parse_status(path: str, data: bytes) -> SessionStatus:
    """Parse one STATUS file; InvalidData (file:line: reason) when it cannot be used."""
    doc = load_safe_yaml(path, data)
    if not isinstance(doc, CommentedMap):
        raise InvalidData(
            f"a status file must be a YAML mapping of `key: value` lines, found {_kind(doc)}",
            file=path,
            line=_node_line(doc),
            hint=f"start with `session: {session_from_path(path) or '<session>'}`",
        )
    expected = session_from_path(path)
    if expected is None:
        raise InvalidData(
            "the file name does not give a session name "
            "(lowercase letters, digits, '.', '_', '-'; at most 64)",
            file=path,
            line=1,
            hint="name it status/<session>.yaml",
        )
    values: dict[str, Any] = {}
    for key in doc:
        if not isinstance(key, str):
            raise InvalidData(
                f"key {key!r} is not a name",
                file=path,
                line=key_line(doc, key),
                hint="keys are words like `status` or `current_task`",
            )
        values[key] = to_plain(doc[key])
    # real teams write `timestamp:`; it stands for last_poll unless last_poll is there too
    aliased = "last_poll" not in values and "timestamp" in values
    if aliased:
        values["last_poll"] = values.pop("timestamp")
    if isinstance(values.get("status"), str):
        values["status"] = values["status"].strip().lower()
    try:
        status = SessionStatus.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        key = "timestamp" if aliased and field == "last_poll" else field
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InvalidData(
            f"{key or 'file'}: {first['msg']}{more}",
            file=path,
            line=key_line(doc, key) if key in doc else 1,
            hint=f"fix `{key}`" if key in doc else f"add `{key}`" if key else None,
        ) from None
    if status.session != expected:
        raise InvalidData(
            f"session is {status.session!r} but the file belongs to {expected!r}",
            file=path,
            line=key_line(doc, "session"),
            hint=f"write `session: {expected}`, or move the file to match its session",
        )
    return status


# --- rendering ---------------------------------------------------------------------------


@dataclass
class _Entry:
    """Where one top-level `key: value` sits in the text (character offsets)."""

    key: str
    key_start: int
    key_col: int
    colon_end: int  # just after the `:`
    value_start: int  # == colon_end when the value is empty
    value_end: int
    value_col: int
    value_on_key_line: bool
    first: Token | None  # first token of the value
    last: Token | None

    @property
    def empty(self) -> bool:
        return self.first is None

    @property
    def block_seq(self) -> bool:
        return isinstance(self.first, (BlockSequenceStartToken, BlockEntryToken))

    @property
    def flow_seq(self) -> bool:
        return isinstance(self.first, FlowSequenceStartToken)


_OPENERS = (
    BlockMappingStartToken,
    BlockSequenceStartToken,
    FlowMappingStartToken,
    FlowSequenceStartToken,
)
_CLOSERS = (BlockEndToken, FlowMappingEndToken, FlowSequenceEndToken)


def _entries(text: str) -> list[_Entry] | None:
    """The top-level entries of a block mapping document; None for any other shape."""
    tokens = [t for t in _new_yaml().scan(io.StringIO(text)) if not isinstance(t, CommentToken)]
    depth = 0
    started = False
    groups: list[list[Token]] = []
    for tok in tokens:
        if not started:
            if isinstance(tok, (StreamStartToken, DirectiveToken, DocumentStartToken)):
                continue
            if not isinstance(tok, BlockMappingStartToken):
                return None  # flow mapping, scalar, list: the whole-file fallback handles it
            started = True
        if isinstance(tok, _OPENERS):
            depth += 1
            if depth == 1:
                continue
        elif isinstance(tok, _CLOSERS):
            depth -= 1
            if depth == 0:
                break
        if depth == 1 and isinstance(tok, KeyToken):
            groups.append([])
        if groups:
            groups[-1].append(tok)
    entries: list[_Entry] = []
    for group in groups:
        if len(group) < 3 or not isinstance(group[1], ScalarToken):
            return None  # `? complex key` or a key with no value indicator
        key_tok = group[1]
        if not isinstance(group[2], ValueToken):
            return None
        colon = group[2]
        value_toks = [t for t in group[3:] if not isinstance(t, BlockEndToken)]
        first = value_toks[0] if value_toks else None
        last = value_toks[-1] if value_toks else None
        start = first.start_mark.index if first else colon.end_mark.index
        end = last.end_mark.index if last else colon.end_mark.index
        if isinstance(last, ScalarToken) and last.style in ("|", ">"):
            # a block scalar's token runs over its trailing line breaks; they are not the value
            while end > start and text[end - 1] in " \t\r\n":
                end -= 1
        entries.append(
            _Entry(
                key=str(key_tok.value),
                key_start=key_tok.start_mark.index,
                key_col=key_tok.start_mark.column,
                colon_end=colon.end_mark.index,
                value_start=start,
                value_end=end,
                value_col=first.start_mark.column if first else 0,
                value_on_key_line=first is None or first.start_mark.line == key_tok.start_mark.line,
                first=first,
                last=last,
            )
        )
    return entries


def _eol(text: str, index: int) -> int:
    """End of the line holding `index`, before its line break (\\n or \\r\\n)."""
    end = text.find("\n", index)
    if end == -1:
        return len(text)
    if end > index and text[end - 1] == "\r":
        end -= 1
    return end


def _bol(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _after_break(text: str, index: int) -> int:
    """Just past the line break at `index` (the value of _eol), or `index` at end of text."""
    if text.startswith("\r\n", index):
        return index + 2
    if text.startswith("\n", index):
        return index + 1
    return index


def _dump(yaml: YAML, value: Any) -> str:
    out = io.StringIO()
    yaml.dump(value, out)
    return out.getvalue()


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (list, tuple, dict))


def _prepare(value: Any, quote_style: str | None = None) -> Any:
    """Plain values -> what ruamel should dump (flow lists of scalars, kept quoting).

    `quote_style` '"' applies to every string inside a collection too: ruamel's emitter
    writes some strings plain in flow context that its parser then misreads (`[?0]`).
    """
    nested = quote_style if quote_style == '"' else None
    if isinstance(value, (list, tuple)):
        seq = CommentedSeq([_prepare(v, nested) for v in value])
        if all(_is_scalar(v) for v in value):
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, dict):
        return CommentedMap((k, _prepare(v, nested)) for k, v in value.items())
    if isinstance(value, str) and quote_style == '"':
        return DoubleQuotedScalarString(value)
    if isinstance(value, str) and quote_style == "'":
        return SingleQuotedScalarString(value)
    return value


def _reads_back(yaml: YAML, rendered: str, value: Any) -> bool:
    try:
        loaded = yaml.load("x: " + rendered)
    except YAMLError:
        return False
    return isinstance(loaded, dict) and _normal(loaded.get("x")) == _normal(value)


# Strings ruamel writes plain and reads back as the same string: a letter first, then letters,
# digits and `_.-/`, and none of the words YAML (1.1 or 1.2) reads as a boolean or null.
_PLAIN_STRING = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]{0,199}\Z")
_NOT_PLAIN = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


def _quick_inline(value: Any) -> str | None:
    """What `_render_inline` writes for the values operations write (a state word, a task ID,
    a number, a timestamp), without ruamel's emitter and parser (a third of a claim's status
    edit); None for anything else. tests/test_statusfile.py holds it to the emitter's output."""
    if value is None:
        return "null"  # not the empty form: `key:` followed by a comment reads as a slip
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is datetime and value.tzinfo is not None and value.utcoffset() is not None:
        stamp = format_timestamp(value)
        return stamp if _TIMESTAMP.match(stamp) else None  # a year of four digits
    if kind is str and _PLAIN_STRING.match(value) and value.lower() not in _NOT_PLAIN:
        return str(value)
    return None


def _render_inline(yaml: YAML, value: Any, quote_style: str | None = None) -> str:
    """The text of `value` on the key's line: a scalar or a flow collection."""
    quick = _quick_inline(value) if quote_style is None else None
    if quick is not None:
        return quick
    return _render_inline_emitted(yaml, value, quote_style)


def _render_inline_emitted(yaml: YAML, value: Any, quote_style: str | None = None) -> str:
    """`_render_inline` through ruamel's emitter, checked by reading it back."""
    if value is None:
        return "null"
    prepared = _prepare(value, quote_style)
    if isinstance(prepared, CommentedSeq):
        prepared.fa.set_flow_style()
    elif isinstance(prepared, CommentedMap):
        prepared.fa.set_flow_style()
    rendered = _dump(yaml, CommentedMap([("x", prepared)]))[len("x:") :].rstrip("\n")
    rendered = rendered[1:] if rendered.startswith(" ") else rendered
    if quote_style != '"' and ("\n" in rendered or not _reads_back(yaml, rendered, value)):
        # double quotes escape line breaks and cannot be misread
        return _render_inline_emitted(yaml, value, '"')
    return rendered


def _render_block(yaml: YAML, value: Any) -> list[str]:
    """Lines (unindented) of `value` as a block collection."""
    prepared = _prepare(value)
    if isinstance(prepared, CommentedSeq):
        prepared.fa.set_block_style()
    return _dump(yaml, prepared).rstrip("\n").split("\n")


def _render_key(yaml: YAML, key: str) -> str:
    return _dump(yaml, CommentedMap([(key, 0)])).rstrip("\n").removesuffix(": 0")


def _wants_block(value: Any, entry: _Entry | None) -> bool:
    if not isinstance(value, (list, tuple, dict)) or len(value) == 0:
        return False
    if entry is not None and not entry.empty and not entry.value_on_key_line:
        return True  # the key already holds a block collection: keep that style
    if entry is not None and (entry.flow_seq or isinstance(entry.first, FlowMappingStartToken)):
        return False
    if isinstance(value, dict):
        return True
    return not all(_is_scalar(v) for v in value)  # lists of mappings read better as blocks


_Edit = tuple[int, int, int, str]  # start, end, order at one offset (see _apply), replacement


def _entry_edits(yaml: YAML, text: str, entry: _Entry, value: Any, old_value: Any, nl: str) -> list[_Edit]:
    indent_next = " " * entry.key_col
    if not _wants_block(value, entry):
        quote = entry.last.style if isinstance(entry.last, ScalarToken) else None
        quote = quote if entry.first is entry.last and quote in ("'", '"') else None
        inline = _render_inline(yaml, value, quote).replace("\n", nl + indent_next + "  ")
        if entry.empty:
            return [(entry.colon_end, entry.colon_end, 0, " " + inline)]
        if not entry.value_on_key_line:
            # a block collection becomes a scalar: value goes after the colon, lines go away
            return [
                (entry.colon_end, entry.colon_end, 0, " " + inline),
                (_eol(text, entry.colon_end), _eol(text, entry.value_end), 0, ""),
            ]
        start, end = entry.value_start, entry.value_end
        rest = text[end : _eol(text, end)]
        gap = re.match(r"( +)#", rest)
        if gap and "\n" not in text[start:end] and "\n" not in inline:
            # keep an end-of-line comment in its column when there is room
            width = len(gap[1]) + (end - start) - len(inline)
            return [(start, end + len(gap[1]), 0, inline + " " * max(1, width))]
        return [(start, end, 0, inline)]

    if (
        entry.block_seq
        and isinstance(value, (list, tuple))
        and isinstance(old_value, list)
        and len(old_value) < len(value)
        and _normal(list(value[: len(old_value)])) == _normal(old_value)
    ):
        # the list grew at its end (completed: one more): keep old items and their comments
        lines = _render_block(yaml, list(value[len(old_value) :]))
        pad = " " * entry.value_col
        added = "".join(nl + pad + line for line in lines)
        return [(_eol(text, entry.value_end), _eol(text, entry.value_end), 0, added)]

    lines = _render_block(yaml, value)
    if not entry.empty and not entry.value_on_key_line:
        pad = " " * entry.value_col
        start = _bol(text, entry.value_start)
        return [(start, _eol(text, entry.value_end), 0, nl.join(pad + line for line in lines))]
    pad = " " * (entry.key_col + 2)
    block = "".join(nl + pad + line for line in lines)
    end = entry.value_end
    return [(entry.colon_end, end, 0, ""), (_eol(text, end), _eol(text, end), 0, block)]


def _normal(value: Any) -> Any:
    """A form in which an intended value and its re-parsed text compare equal."""
    value = to_plain(value)
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, datetime):
        return format_timestamp(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _check_writable(key: str, value: Any) -> None:
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{key}: datetime {value.isoformat()} has no time zone")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_writable(f"{key}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_writable(key, v)


def _edit_text(text: str, doc: CommentedMap | None, updates: dict[str, Any], remove: list[str]) -> str | None:
    """The surgical edit; None when the file's shape is beyond it."""
    entries = _entries(text) if doc is not None else []
    if entries is None:
        return None
    by_key = {e.key: e for e in entries}
    if len(by_key) != len(entries) or (doc is not None and set(by_key) != set(map(str, doc))):
        return None
    yaml = _new_yaml()
    nl = "\r\n" if "\r\n" in text else "\n"
    edits: list[_Edit] = []
    for key in remove:
        entry = by_key.get(key)
        if entry is None:
            continue
        start = _bol(text, entry.key_start)
        edits.append((start, _after_break(text, _eol(text, entry.value_end)), 0, ""))
    appended: list[str] = []
    col = entries[0].key_col if entries else 0
    for key, value in updates.items():
        entry = by_key.get(key)
        if entry is not None:
            old_value = to_plain(doc[key]) if doc is not None else None
            if _normal(old_value) == _normal(value):
                continue  # unchanged: leave its bytes alone
            edits.extend(_entry_edits(yaml, text, entry, value, old_value, nl))
            continue
        pad = " " * col
        head = pad + _render_key(yaml, key) + ":"
        if _wants_block(value, None):
            appended.append(head)
            appended.extend(pad + "  " + line for line in _render_block(yaml, value))
        else:
            inline = _render_inline(yaml, value).replace("\n", nl + pad + "  ")
            appended.append(f"{head} {inline}")
    if appended:
        kept = [e for e in entries if e.key not in remove]
        if kept:
            at = _eol(text, max(e.value_end for e in kept))
            edits.append((at, at, 1, "".join(nl + line for line in appended)))
        elif entries:  # every key removed: the new ones take the first one's place
            at = _bol(text, entries[0].key_start)
            edits.append((at, at, 1, "".join(line + nl for line in appended)))
        else:
            sep = "" if text == "" or text.endswith("\n") else nl
            edits.append((len(text), len(text), 1, sep + "".join(line + nl for line in appended)))
    return _apply(text, edits)


def _apply(text: str, edits: list[_Edit]) -> str:
    """Apply non-overlapping edits from the end of the text backwards.

    At one offset, an edit applied earlier ends up later in the text: so deletions go first
    (they must not eat an insertion), then appended keys (order 1), then an entry's own
    insertions (order 0), which thus stay right after that entry's value.
    """

    def rank(edit: _Edit) -> tuple[int, int]:
        start, end, order, _ = edit
        return start, 2 if end > start else order

    out = text
    for start, end, _, replacement in sorted(edits, key=rank, reverse=True):
        out = out[:start] + replacement + out[end:]
    return out


def _dump_whole(text: str, updates: dict[str, Any], remove: list[str], quote_style: str | None) -> str:
    """Last resort: let ruamel write the whole mapping (may normalise layout, keeps values)."""
    yaml = _new_yaml()
    mapping = yaml.load(text) if text.strip() else None
    if not isinstance(mapping, CommentedMap):
        mapping = CommentedMap()
    for key in remove:
        mapping.pop(key, None)
    for key, value in updates.items():
        mapping[key] = _prepare(value, quote_style)
    return _dump(yaml, mapping)


def _matches(text: str, expected: dict[str, Any]) -> bool:
    try:
        loaded = load_safe_yaml(_RENDER_LABEL, text, max_bytes=1 << 62)
    except InvalidData:
        return False
    if loaded is None:
        return expected == {}
    if not isinstance(loaded, dict):
        return False
    return {str(k): _normal(v) for k, v in loaded.items()} == expected


def render_status(
    old: bytes | None, updates: Mapping[str, Any], remove: Iterable[str] = (), path: str = _RENDER_LABEL
) -> bytes:
    """`old` with `updates` set and `remove` dropped, everything else kept byte for byte.

    New keys go after the last one. A datetime is written `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole
    seconds; a naive one is a ValueError). Lists keep the flow/block style of the key they
    replace; new lists of scalars are flow (`[F4.1, F4.3]`). When the file uses the legacy
    `timestamp:` and no `last_poll:`, a last_poll update is written to `timestamp:`.
    Raises InvalidData when `old` is not a usable status mapping (naming `path` when given).
    """
    updates = dict(updates)
    remove_list = list(dict.fromkeys(remove))
    if set(updates) & set(remove_list):
        raise ValueError(f"keys both set and removed: {sorted(set(updates) & set(remove_list))}")
    for key, value in updates.items():
        _check_writable(key, value)

    text = "" if old is None else _decode(path, old, MAX_STATUS_BYTES)
    bom = "\ufeff" if old is not None and old.startswith(b"\xef\xbb\xbf") else ""
    doc = load_safe_yaml(path, text) if text.strip() else None
    if doc is not None and not isinstance(doc, CommentedMap):
        raise InvalidData(f"a status file must be a YAML mapping, found {_kind(doc)}", file=path)
    present = set(map(str, doc)) if doc is not None else set()
    if "last_poll" not in present and "timestamp" in present:
        if "last_poll" in updates:
            updates["timestamp"] = updates.pop("last_poll")
        remove_list = ["timestamp" if k == "last_poll" else k for k in remove_list]

    expected = {str(k): _normal(v) for k, v in (doc or {}).items()}
    for key in remove_list:
        expected.pop(key, None)
    for key, value in updates.items():
        expected[key] = _normal(value)

    new_text = _edit_text(text, doc, updates, remove_list)
    if new_text is None or not _matches(new_text, expected):
        for quote_style in (None, '"'):
            new_text = _dump_whole(text, updates, remove_list, quote_style)
            if _matches(new_text, expected):
                break
        else:
            raise IfcoordError(
                f"could not write the status update for {sorted(updates)} so that it reads back",
                hint="this is a bug in ifcoord; please report it with the status file",
            )
    out = (bom + new_text).encode("utf-8")
    if len(out) > MAX_STATUS_BYTES:
        raise InvalidData(
            f"the update would make the status file {len(out)} bytes, over the "
            f"{MAX_STATUS_BYTES // 1024} KiB limit",
            file=None if path == _RENDER_LABEL else path,
            hint="shorten the values written to it",
        )
    return out
