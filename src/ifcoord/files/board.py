"""Markdown task boards <-> Board models: parse with line numbers, edit in place byte-carefully.

Pure functions over text; git and files live elsewhere. The format: docs/board-format.md.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import threading
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath

from markdown_it import MarkdownIt
from pydantic import BaseModel, Field

from ifcoord.models import Board, Diagnostic, FieldLine, Kind, Milestone, State, Task

__all__ = [
    "BoardEdit",
    "BoardEditError",
    "FIELD_ALIASES",
    "FIELD_LABELS",
    "STATE_WORDS",
    "apply_edits",
    "canonical_key",
    "edit_board",
    "is_group_prefix",
    "looks_like_task_id",
    "normalize_state",
    "parse_board",
    "parse_dependency_tokens",
    "phase_from",
    "read_title",
    "render_new_task",
]


class BoardEditError(ValueError):
    """An edit that cannot be applied to a board (unknown task, bad value, no round trip)."""


class BoardEdit(BaseModel):
    """The change one operation wants on one task of one board file."""

    task_id: str
    # canonical field name -> new value; None removes that field line
    fields: dict[str, str | None] = Field(default_factory=dict)
    state: State | None = None  # written as the Status field, in the board's own dialect
    tick_milestones_upto: int | None = None  # tick every milestone with percent <= this
    # A person's retitle (`ifcoord task edit --title`): the one edit that rewrites a heading,
    # and only the title part of it (board-format.md, editing).
    title: str | None = None


# --- vocabulary -------------------------------------------------------------------------------

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "status": ("status", "state"),
    "owner": ("owner", "assignee", "assigned to", "claimed by"),
    "session": ("session", "sessions", "reserved for"),
    "depends_on": (
        "depends on",
        "dependencies",
        "dependency",
        "blocked until",
        "blocked by",
        "requires",
    ),
    "deliverable": ("deliverable", "deliverables"),
    "estimate": ("estimate", "effort"),
    "priority": ("priority",),
    "risk": ("risk",),
    "model": ("model",),
    "kind": ("kind", "type"),
    "progress": ("progress",),
    # ifcoord's own claim bookkeeping, written as ordinary field lines so humans see it
    "claimed_at": ("claimed at",),
    "epoch": ("epoch",),
    "previous_owner": ("previous owner",),
    "waiting_on": ("waiting on",),
    "block_reason": ("block reason",),
    "note": ("note",),
    "tests": ("tests",),
    "completed_at": ("completed at",),
    "cancel_reason": ("cancel reason", "cancelled because"),
}
_ALIAS_TO_KEY = {alias: key for key, aliases in FIELD_ALIASES.items() for alias in aliases}

FIELD_LABELS: dict[str, str] = {
    "status": "Status",
    "owner": "Owner",
    "session": "Session",
    "depends_on": "Depends on",
    "deliverable": "Deliverable",
    "estimate": "Estimate",
    "priority": "Priority",
    "risk": "Risk",
    "model": "Model",
    "kind": "Kind",
    "progress": "Progress",
    "claimed_at": "Claimed at",
    "epoch": "Epoch",
    "previous_owner": "Previous owner",
    "waiting_on": "Waiting on",
    "block_reason": "Block reason",
    "note": "Note",
    "tests": "Tests",
    "completed_at": "Completed at",
    "cancel_reason": "Cancel reason",
}

# A board-wide field describes the tasks; owner and claim bookkeeping are per task by nature.
_INHERITED_KEYS = frozenset(
    {"status", "session", "depends_on", "deliverable", "estimate", "priority", "risk", "model"} | {"kind"}
)

STATE_WORDS: dict[str, str] = {
    "open": "open",
    "claimed": "claimed",
    "in_progress": "in progress",
    "blocked": "blocked",
    "review": "review",
    "done": "done",
    "cancelled": "cancelled",
}

_STATUS_VOCABULARY: dict[str, State] = {
    "not started": "open",
    "todo": "open",
    "to do": "open",
    "open": "open",
    "queued": "open",
    "ready": "open",
    "ready to start": "open",
    "pending": "open",
    "claimed": "claimed",
    "in progress": "in_progress",
    "inprogress": "in_progress",
    "active": "in_progress",
    "wip": "in_progress",
    "blocked": "blocked",
    "review": "review",
    "in review": "review",
    "done": "done",
    "complete": "done",
    "completed": "done",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "dropped": "cancelled",
}
_STATUS_WORDS_LONGEST_FIRST = sorted(_STATUS_VOCABULARY, key=len, reverse=True)

_NO_OWNER = frozenset({"", "-", "—", "–", "none", "n/a", "unassigned", "nobody"})
_MILESTONE_LABELS = frozenset({"milestones", "milestone"})


# --- glyphs and mojibake ----------------------------------------------------------------------

_GLYPH_MEANINGS: dict[str, str] = {
    "⏳": "open",
    "⌛": "open",
    "🚧": "in_progress",
    "⛔": "blocked",
    "🚫": "blocked",
    "✅": "done",
    "✔": "done",
    "🔧": "filler",
}


def _glyph_forms(glyph: str) -> set[str]:
    """The glyph as written, and as real boards mangle it (UTF-8 bytes read as cp1252/latin-1)."""
    raw = glyph.encode("utf-8")
    forms = {glyph, glyph + "\ufe0f"}
    forms.add(raw.decode("cp1252", errors="ignore"))
    forms.add(raw.decode("latin-1"))
    # markdown-it strips heading text with str.strip(), which eats a trailing NEL (\x85)
    forms |= {f.strip() for f in forms}
    return {f for f in forms if f}


_GLYPH_TABLE: list[tuple[str, str]] = sorted(
    ((form, meaning) for glyph, meaning in _GLYPH_MEANINGS.items() for form in _glyph_forms(glyph)),
    key=lambda pair: len(pair[0]),
    reverse=True,
)


def _mojibake_pattern() -> str:
    # UTF-8 continuation bytes (0x80-0xBF) as they look once decoded as cp1252 or latin-1.
    cont = {bytes([b]).decode("cp1252", errors="ignore") for b in range(0x80, 0xC0)}
    cont |= {chr(b) for b in range(0x80, 0xC0)}
    cls = "".join(re.escape(c) for c in sorted(c for c in cont if c))
    # Lead bytes of 3-byte symbols (E2 'â', EF 'ï') and of 4-byte emoji (F0 'ð').
    return rf"(?:[âï][{cls}]{{1,2}}|ð[{cls}]{{1,3}})"


_MOJIBAKE = _mojibake_pattern()
_LEADING_MOJIBAKE_RE = re.compile(rf"^(?:{_MOJIBAKE})+")
_TRAILING_MOJIBAKE_RE = re.compile(rf"(?:{_MOJIBAKE})+$")
_TRAILING_GLYPH_CATEGORIES = frozenset({"So", "Sk", "Cf", "Co", "Cs", "Cn"})
_GLYPH_MODIFIERS = frozenset({"\ufe0e", "\ufe0f", "\u20e3"})


def _is_trailing_glyph(char: str) -> bool:
    return char in _GLYPH_MODIFIERS or unicodedata.category(char) in _TRAILING_GLYPH_CATEGORIES


def _strip_glyphs(text: str) -> tuple[str, str]:
    """Remove leading/trailing emoji, status glyphs and their mojibake; return (core, glyphs)."""
    removed: list[str] = []
    core = text.strip()
    while core:
        match = _LEADING_MOJIBAKE_RE.match(core)
        if match:
            cut = match.end()
        elif not core[0].isalnum():
            cut = 1  # an ID or status word starts with a letter, so anything else up front is decor
        else:
            break
        removed.append(core[:cut])
        core = core[cut:].lstrip()
    while core:
        match = _TRAILING_MOJIBAKE_RE.search(core)
        if match:
            cut = match.start()
        elif _is_trailing_glyph(core[-1]):
            cut = len(core) - 1  # only symbols: a title may well end in ")" or "?"
        else:
            break
        removed.append(core[cut:])
        core = core[:cut].rstrip()
    return core, " ".join(removed)


def _glyph_meanings(text: str) -> list[str]:
    """Meanings of the known glyphs found in `text`, in table order (longest form first)."""
    found: list[str] = []
    rest = text
    for form, meaning in _GLYPH_TABLE:
        if form in rest:
            found.append(meaning)
            rest = rest.replace(form, " ")
    return found


def _glyph_state(text: str) -> State | None:
    for meaning in _glyph_meanings(text):
        if meaning in STATE_WORDS:
            return meaning  # type: ignore[return-value]
    return None


_EMPHASIS_RE = re.compile(r"\*\*|__|~~|`|\*")


def _strip_emphasis(text: str) -> str:
    return _EMPHASIS_RE.sub("", text)


def _strip_wrapping_emphasis(text: str) -> str:
    """Emphasis around a value, keeping a `*` inside it: `session-4-*` is a glob, not italics."""
    text = re.sub(r"\*\*|__|~~|`", "", text).strip()
    if len(text) > 1 and text.startswith("*") and text.endswith("*"):
        text = text[1:-1]
    return text


# --- small public helpers ---------------------------------------------------------------------

_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9.\-]*")


def looks_like_task_id(token: str) -> bool:
    """A task ID starts with a letter, holds a digit, and has only letters, digits, `.`, `-`."""
    return bool(_ID_RE.fullmatch(token)) and any(c.isdigit() for c in token)


def is_group_prefix(token: str, task_ids: Iterable[str]) -> bool:
    """`P2A` for `P2A.1`, `P2A.2`: not an ID itself, but the dot-prefix of at least one."""
    ids = set(task_ids)
    return token not in ids and any(i.startswith(token + ".") for i in ids)


def canonical_key(label: str) -> str:
    """Canonical field name of a label (`Assigned to` -> `owner`); else the label lower-cased."""
    normal = " ".join(label.replace("_", " ").lower().split())
    return _ALIAS_TO_KEY.get(normal, " ".join(label.lower().split()))


_PAREN_RE = re.compile(r"\([^()]*\)")
_NO_DEPS_RE = re.compile(r"^(?:none\b|n/?a\b|-|—|–)", re.IGNORECASE)
_DEP_TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")


def _drop_remarks(text: str) -> str:
    previous = None
    while previous != text:  # nested remarks "(a (b) c)" go from the inside out
        previous, text = text, _PAREN_RE.sub(" ", text)
    return text


def parse_dependency_tokens(value: str) -> list[str]:
    """IDs and group prefixes named by a dependency value; `None (parallel with P2A)` names none."""
    text = _drop_remarks(_strip_emphasis(value)).strip()
    if not text or _NO_DEPS_RE.match(text):
        return []
    tokens: list[str] = []
    for raw in _DEP_TOKEN_RE.findall(text):
        token = raw.rstrip(".-")
        if looks_like_task_id(token) and token not in tokens:
            tokens.append(token)
    return tokens


def _id_list(value: str) -> list[str]:
    tokens: list[str] = []
    for raw in _DEP_TOKEN_RE.findall(_strip_emphasis(value)):
        token = raw.rstrip(".-")
        if looks_like_task_id(token) and token not in tokens:
            tokens.append(token)
    return tokens


def _status_core(value: str) -> tuple[str, str]:
    """The status word without emphasis, remarks in parentheses and glyphs; plus the glyphs."""
    return _strip_glyphs(_drop_remarks(_strip_emphasis(value)))


def normalize_state(word: str) -> State | None:
    """Map a status value as written (`NOT STARTED`, `🚧 WIP`, `Done (merged)`) to a state."""
    core, glyphs = _status_core(word)
    normal = " ".join(re.sub(r"[_\-]+", " ", core.lower()).split())
    if normal in _STATUS_VOCABULARY:
        return _STATUS_VOCABULARY[normal]
    for known in _STATUS_WORDS_LONGEST_FIRST:
        if re.match(re.escape(known) + r"\b", normal):
            return _STATUS_VOCABULARY[known]  # a trailing remark: "done: merged in #12"
    if not normal:
        return _glyph_state(glyphs)
    return None


_PHASE_FILE_RE = re.compile(r"^phase[-_ ]?([A-Za-z0-9.]+?)(?:[-_ ]|$)", re.IGNORECASE)


def phase_from(path: str, text: str) -> str:
    """Phase of a board: `PHASE-0...` file -> `0`, else its first `#` heading, else the stem."""
    return _phase_from_tokens(path, _parse_markdown(text).headings)


def _phase_name(heading: str) -> str:
    """`Phase 2: Security` -> `2`; `P2: PRODUCTION FOUNDATION` -> `P2`; else the heading."""
    named = re.match(r"^phase\s+([A-Za-z0-9._-]+)\b", heading, re.IGNORECASE)
    if named:
        return named.group(1)
    short = re.match(r"^([A-Za-z0-9._-]{1,12})\s*[:—–-]\s+\S", heading)
    if short and any(ch.isdigit() for ch in short.group(1)):
        return short.group(1)
    return heading


def _phase_from_tokens(path: str, headings: Sequence[_Heading]) -> str:
    stem = PurePosixPath(path.replace("\\", "/")).stem
    match = _PHASE_FILE_RE.match(stem)
    if match:
        return match.group(1)
    for heading in headings:
        if heading.level == 1:
            core, _ = _strip_glyphs(_strip_emphasis(heading.content))
            if core:
                return _phase_name(core)
    return stem


# --- lines and markdown structure -------------------------------------------------------------


@dataclass
class _Line:
    content: str
    eol: str  # "\n", "\r\n", "\r" or "" for a last line without newline


def _split_lines(text: str) -> list[_Line]:
    # The same line breaks markdown-it counts (\r\n, \r, \n), so its maps index this list.
    # The usual board has no \r: str.split, and no regular expression (6.7 -> 2.5 ms at 6,000 lines).
    if "\r" not in text:
        contents = text.split("\n")
        last = contents.pop()
        lines = [_Line(content, "\n") for content in contents]
        if last:
            lines.append(_Line(last, ""))
        return lines
    parts = re.split(r"(\r\n|\r|\n)", text)
    lines = [_Line(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
    if parts[-1]:
        lines.append(_Line(parts[-1], ""))
    return lines


def _file_eol(lines: list[_Line]) -> str:
    counts = Counter(line.eol for line in lines if line.eol)
    return counts.most_common(1)[0][0] if counts else "\n"


# Only the block structure matters (headings, fences); inline parsing would double the cost.
_MARKDOWN = MarkdownIt("commonmark").disable(["inline", "text_join"])


@dataclass(frozen=True)
class _Heading:
    level: int
    start: int  # 0-based first line
    end: int  # 0-based line after the heading (setext headings span two lines or more)
    content: str


@dataclass(frozen=True)
class _Markdown:
    headings: tuple[_Heading, ...]
    opaque_lines: frozenset[int]  # code fences, indented code and HTML: never fields or headings
    block_starts: frozenset[int] = frozenset()  # lines where a top-level block starts


@functools.lru_cache(maxsize=64)
def _parse_markdown(text: str) -> _Markdown:
    """The block structure of a text; cached, since an edit scans, edits and re-reads a board."""
    try:
        # a byte order mark would hide a heading on the first line from markdown-it; dropping
        # it here changes no line number, and the file keeps it when edited
        tokens = _MARKDOWN.parse(text.removeprefix("\ufeff"))
    except Exception:  # markdown-it should not fail; if it does, the board is read as plain lines
        return _Markdown((), frozenset())
    headings: list[_Heading] = []
    opaque: set[int] = set()
    starts: set[int] = set()
    for index, token in enumerate(tokens):
        if token.map is None:
            continue
        start, end = token.map
        if token.level == 0:
            starts.add(start)
        if token.type in ("fence", "code_block", "html_block"):
            opaque.update(range(start, end))
        elif token.type == "heading_open" and token.level == 0:  # not in quotes or list items
            inline = tokens[index + 1] if index + 1 < len(tokens) else None
            content = inline.content if inline is not None else ""
            headings.append(_Heading(int(token.tag[1:]), start, end, content.replace("\n", " ")))
    return _Markdown(tuple(headings), frozenset(opaque), frozenset(starts))


_TASK_HEADING_RE = re.compile(
    r"(?P<id>[A-Za-z][A-Za-z0-9.\-]*?)(?:[ \t]*:|[ \t]+[-—–][ \t]+)[ \t]*(?P<title>.*)", re.DOTALL
)


def _task_heading(content: str) -> tuple[str, str, str] | None:
    """(id, title, glyphs) when a heading's text reads `ID: Title`, else None."""
    core, glyphs = _strip_glyphs(_strip_emphasis(content))
    match = _TASK_HEADING_RE.fullmatch(core)
    if not match or not looks_like_task_id(match.group("id")):
        return None
    title = match.group("title").strip()
    if not title:
        return None
    return match.group("id"), title, glyphs


# --- field lines, labels, list items ----------------------------------------------------------

_FIELD_RE = re.compile(
    r"^(?P<prefix>[ \t]*(?:[-*+][ \t]+)?)"
    r"(?P<key>\*\*(?P<l1>[^*\s][^*]*?):\*\*|\*\*(?P<l2>[^*\s][^*:]*?)\*\*:"
    r"|__(?P<l3>[^_\s][^_]*?):__|__(?P<l4>[^_\s][^_:]*?)__:)"
    r"(?P<gap>[ \t]*)(?P<value>.*?)(?P<trail>[ \t]*)$"
)
_ITEM_RE = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(?P<text>.*?)[ \t]*$")
_CHECKBOX_RE = re.compile(r"^\[(?P<mark>[ xX])\][ \t]*(?P<rest>.*)$")
_CHECKBOX_IN_LINE_RE = re.compile(r"^([ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\[)([ xX])(\])")
_PERCENT_RE = re.compile(r"^[*_]*(\d{1,3})[ \t]*%")
_SETEXT_UNDERLINE_RE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")


@dataclass
class _FieldHit:
    index: int  # 0-based line
    key: str
    label: str
    value: str
    head: str  # prefix + bold key, kept byte for byte on edit
    gap: str
    trail: str
    is_item: bool

    def with_value(self, value: str) -> str:
        return f"{self.head}{self.gap or ' '}{value}{self.trail}"

    def to_model(self) -> FieldLine:
        return FieldLine(key=self.key, label=self.label, value=self.value, line=self.index + 1)


def _field_hit(index: int, content: str) -> _FieldHit | None:
    match = _FIELD_RE.match(content)
    if not match:
        return None
    label = next(g for g in (match["l1"], match["l2"], match["l3"], match["l4"]) if g is not None)
    label = label.strip()
    head = match["prefix"] + match["key"]
    return _FieldHit(
        index=index,
        key=canonical_key(label),
        label=label,
        value=match["value"],
        head=head,
        gap=match["gap"],
        trail=match["trail"],
        is_item=bool(match["prefix"].strip()),
    )


@dataclass
class _Section:
    """What the line scan of one task (or the file preamble) found."""

    fields: list[_FieldHit] = field(default_factory=list)
    milestones: list[Milestone] = field(default_factory=list)
    lists: dict[str, list[str]] = field(default_factory=dict)


def _scan_section(
    lines: list[_Line], indexes: Iterable[int], headings: set[int], opaque: frozenset[int]
) -> _Section:
    """Read field lines, labelled lists and milestones from the given lines, in order.

    A heading ends a list; code does not (a `**Key Tests:**` list is often just a fence).
    """
    section = _Section()
    label: str | None = None
    after_blank = False
    previous = -2
    for index in indexes:
        if index != previous + 1:
            label = None  # a nested task's section or a heading lies in between
        previous = index
        if index in headings:
            label = None
            continue
        if index in opaque:
            continue
        content = lines[index].content
        if not content.strip():
            after_blank = True
            continue
        hit = _field_hit(index, content)
        item = _ITEM_RE.match(content)
        if hit is not None and not hit.value:
            label = hit.label  # a bold label alone starts a list
            if hit.key in FIELD_ALIASES:
                section.fields.append(hit)  # e.g. an empty `**Owner:**` an edit may fill in
        elif hit is not None:
            section.fields.append(hit)
            if item is not None and label is not None:
                section.lists.setdefault(label, []).append(item["text"])
            elif not hit.is_item:
                label = None
        elif item is not None and label is not None:
            _add_item(section, label, index, item["text"])
        elif after_blank and not content[:1].isspace():
            label = None  # a new paragraph ends the list
        after_blank = False
    return section


def _add_item(section: _Section, label: str, index: int, text: str) -> None:
    box = _CHECKBOX_RE.match(text)
    if label.lower() in _MILESTONE_LABELS and box is not None:
        percent = _PERCENT_RE.match(box["rest"])
        section.milestones.append(
            Milestone(
                text=box["rest"],
                percent=int(percent.group(1)) if percent else None,
                done=box["mark"] != " ",
                line=index + 1,
            )
        )
    else:
        section.lists.setdefault(label, []).append(text)


# --- parsing a board --------------------------------------------------------------------------


@dataclass
class _TaskScan:
    task: Task
    fields: list[_FieldHit]  # the task's own field lines (nested tasks excluded)
    anchor: int  # 0-based line after which new field lines go
    anchor_hit: _FieldHit | None  # the field line at the anchor, to copy its style
    heading_content: str
    heading_lines: int = 1  # setext headings span more than one line


@dataclass
class _Scan:
    lines: list[_Line]
    board: Board
    tasks: list[_TaskScan]
    text: str = ""  # the text scanned

    def find(self, task_id: str) -> _TaskScan:
        for task_scan in self.tasks:
            if task_scan.task.id == task_id:
                return task_scan
        raise BoardEditError(f"{self.board.path}: no task {task_id!r} in this board")


@dataclass
class _TaskHeading:
    heading: _Heading
    task_id: str
    title: str
    glyphs: str
    end: int  # 0-based last line of the section, inclusive
    ancestors: list[_Heading]


def _task_headings(headings: Sequence[_Heading], line_count: int) -> list[_TaskHeading]:
    """Task headings with their section ends and enclosing headings, in one pass: the stack of
    open headings gives both (a board of 50,000 tasks must not cost 50,000 scans of the rest)."""
    found: list[_TaskHeading] = []
    ends: dict[int, int] = {}  # index in `headings` -> 0-based last line of its section
    open_stack: list[int] = []
    parsed_at: list[tuple[int, tuple[str, str, str], list[_Heading]]] = []
    for i, heading in enumerate(headings):
        while open_stack and headings[open_stack[-1]].level >= heading.level:
            ends[open_stack.pop()] = heading.start - 1
        parsed = _task_heading(heading.content) if heading.level >= 2 else None
        if parsed is not None:
            ancestors = [headings[j] for j in reversed(open_stack)]
            parsed_at.append((i, parsed, ancestors))
        open_stack.append(i)
    for i, parsed, ancestors in parsed_at:
        heading = headings[i]
        end = ends.get(i, line_count - 1)
        found.append(_TaskHeading(heading, *parsed, max(end, heading.end - 1), ancestors))
    return found


def _own_lines(position: int, all_tasks: list[_TaskHeading]) -> list[int]:
    """Lines of the section that are not inside a nested task (those belong to the inner task)."""
    current = all_tasks[position]
    owned: list[int] = []
    index = current.heading.end
    for later in range(position + 1, len(all_tasks)):  # sorted by line: nested ones come right after
        inner = all_tasks[later]
        if inner.heading.start > current.end:
            break
        if inner.heading.start >= index:
            owned.extend(range(index, inner.heading.start))
            index = inner.end + 1
    owned.extend(range(index, current.end + 1))
    return owned


def _top_block_anchor(
    lines: list[_Line], heading: _Heading, section_end: int, hits: dict[int, _FieldHit]
) -> tuple[int, _FieldHit | None]:
    """The last field line of the run right under the heading, or the heading itself."""
    index = heading.end
    while index <= section_end and index < len(lines) and not lines[index].content.strip():
        index += 1
    anchor, anchor_hit = heading.end - 1, None
    # an empty `**Key:**` is a list label too: new lines must not split it from its items
    while index <= section_end and index in hits and hits[index].value:
        anchor, anchor_hit = index, hits[index]
        index += 1
    return anchor, anchor_hit


_NO_TASKS_MESSAGE = "no task headings found (a task is a heading like `## T-1: Title`)"


def parse_board(path: str, text: str, phase_order: list[str] | None = None) -> Board:
    """Read one board file. Never raises: what it cannot read becomes a Diagnostic."""
    try:
        return _scan(path, text, phase_order).board
    except Exception as exc:  # a parser bug must not take the whole branch down (board-format.md)
        return unreadable_board(path, f"board could not be read: {type(exc).__name__}: {exc}")


def unreadable_board(path: str, reason: str) -> Board:
    """A board with no tasks and one error saying why the file could not be read."""
    return Board(
        path=path,
        phase=PurePosixPath(path).stem,
        diagnostics=[Diagnostic(severity="error", file=path, code="unreadable", message=reason)],
    )


def _scan(path: str, text: str, phase_order: list[str] | None = None) -> _Scan:
    """The board and its lines, scanned once per text: a claim scans the text it edits (already
    scanned when the branch was read), the edited text to verify it, and the same edited text
    again for the dashboard and for every session that then reads the branch. A scan is treated
    as read-only by everyone (editors build new lines)."""
    key = (path, text, tuple(phase_order or ()))
    with _scans_lock:
        scan = _scans.get(key)
        if scan is not None:
            _scans.move_to_end(key)
            return scan
    scan = _scan_text(path, text, phase_order)
    global _scans_chars
    with _scans_lock:
        if key not in _scans:
            _scans[key] = scan
            _scans_chars += len(text)
        while len(_scans) > 1 and (len(_scans) > _SCANS_MAX or _scans_chars > _SCANS_CHARS):
            (_, old_text, _), _ = _scans.popitem(last=False)
            _scans_chars -= len(old_text)
    return scan


# Recent scans by text. A scan holds about 60 times its text in objects (6 MB for a 500-task
# board): bounded by entries and by characters, so that a board of megabytes keeps one scan and
# boards of a few hundred tasks (a team editing four of them at once) keep a dozen or two.
_scans: OrderedDict[tuple[str, str, tuple[str, ...]], _Scan] = OrderedDict()
_scans_lock = threading.Lock()
_scans_chars = 0
_SCANS_MAX = 24
_SCANS_CHARS = 2 * 1024 * 1024


def _scan_text(path: str, text: str, phase_order: list[str] | None) -> _Scan:
    lines = _split_lines(text)
    markdown = _parse_markdown(text)
    phase = _ordered_phase(_phase_from_tokens(path, markdown.headings), path, phase_order)
    board = Board(path=path, phase=phase)
    heading_lines = {i for h in markdown.headings for i in range(h.start, h.end)}
    opaque = markdown.opaque_lines
    task_headings = _task_headings(markdown.headings, len(lines))

    preamble_end = task_headings[0].heading.start if task_headings else len(lines)
    preamble = _scan_section(lines, range(preamble_end), heading_lines, opaque)
    board.file_fields = [hit.to_model() for hit in preamble.fields]
    inherited = _first_per_key(preamble.fields, _INHERITED_KEYS)

    diagnostics = _Diagnostics(path)
    scans: list[_TaskScan] = []
    for position, th in enumerate(task_headings):
        section = _scan_section(lines, _own_lines(position, task_headings), heading_lines, opaque)
        task = _build_task(path, phase, position, th, section, inherited, diagnostics)
        hits = {hit.index: hit for hit in section.fields}
        anchor, anchor_hit = _top_block_anchor(lines, th.heading, th.end, hits)
        scans.append(
            _TaskScan(
                task,
                section.fields,
                anchor,
                anchor_hit,
                th.heading.content,
                th.heading.end - th.heading.start,
            )
        )

    board.tasks = [s.task for s in scans]
    board.upper_status_words = _writes_upper_status(board)
    if not board.tasks:
        diagnostics.add("note", 0, "no-tasks", _NO_TASKS_MESSAGE)
    board.diagnostics = diagnostics.items
    return _Scan(lines, board, scans, text)


def _ordered_phase(phase: str, path: str, phase_order: list[str] | None) -> str:
    """Prefer the configured spelling of a phase (`p2.md` with phases [P2] -> `P2`)."""
    if not phase_order:
        return phase
    stem = PurePosixPath(path.replace("\\", "/")).stem.lower()
    for configured in phase_order:
        if configured.lower() in (phase.lower(), stem):
            return configured
    return phase


class _Diagnostics:
    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[Diagnostic] = []
        self._seen: set[tuple[int, str]] = set()

    def add(self, severity: str, line: int, code: str, message: str) -> None:
        if (line, code) in self._seen:
            return  # an inherited file-level field is checked once per task, reported once
        self._seen.add((line, code))
        self.items.append(
            Diagnostic(severity=severity, file=self.path, line=line, code=code, message=message)  # type: ignore[arg-type]
        )


def _first_per_key(hits: list[_FieldHit], keys: Iterable[str] | None = None) -> dict[str, _FieldHit]:
    wanted = set(keys) if keys is not None else None
    first: dict[str, _FieldHit] = {}
    for hit in hits:
        if wanted is None or hit.key in wanted:
            first.setdefault(hit.key, hit)  # only the first line for a key counts
    return first


def _build_task(
    path: str,
    phase: str,
    position: int,
    th: _TaskHeading,
    section: _Section,
    inherited: dict[str, _FieldHit],
    diagnostics: _Diagnostics,
) -> Task:
    task = Task(
        id=th.task_id,
        title=th.title,
        file=path,
        line=th.heading.start + 1,
        end_line=th.end + 1,
        level=th.heading.level,
        phase=phase,
        position=position,
        milestones=section.milestones,
        lists=section.lists,
        fields=[hit.to_model() for hit in section.fields],
    )
    values = {**inherited, **_first_per_key(section.fields)}
    for hit in values.values():
        if hit.key not in FIELD_ALIASES:
            task.extra.setdefault(hit.label, hit.value)
    _apply_known_fields(task, values, diagnostics)
    _apply_state(task, values.get("status"), th.glyphs, diagnostics)
    task.kind = _kind(values.get("kind"), th)
    if task.progress is None:
        done = [m.percent for m in task.milestones if m.done and m.percent is not None]
        task.progress = max(done) if done else None
    return task


def _apply_known_fields(task: Task, values: dict[str, _FieldHit], diag: _Diagnostics) -> None:
    def text(key: str) -> str | None:
        hit = values.get(key)
        return hit.value.strip() if hit is not None and hit.value.strip() else None

    owner = text("owner")
    if owner is not None and _strip_emphasis(owner).strip().lower() not in _NO_OWNER:
        task.owner = _strip_emphasis(owner).strip()
    if (sessions := text("session")) is not None:
        names = re.split(r"[,\s]+", _strip_wrapping_emphasis(sessions))
        task.sessions = [n for n in names if n and n.lower() not in _NO_OWNER]
    if (depends := text("depends_on")) is not None:
        task.depends_raw = depends
        task.depends_tokens = parse_dependency_tokens(depends)
    if (priority := text("priority")) is not None:
        core, _ = _strip_glyphs(_strip_emphasis(priority))
        task.priority = (core.split() or [priority])[0].upper()
    task.estimate = text("estimate")
    task.deliverable = text("deliverable")
    task.risk = text("risk")
    task.model = text("model")
    task.block_reason = text("block_reason")
    task.note = text("note")
    task.tests = text("tests")
    task.cancel_reason = text("cancel_reason")
    if (previous := text("previous_owner")) is not None:
        task.previous_owner = None if previous.lower() in _NO_OWNER else previous
    if (waiting := text("waiting_on")) is not None:
        task.waiting_on = _id_list(waiting)
    _apply_numbers(task, values, diag)


def _apply_numbers(task: Task, values: dict[str, _FieldHit], diag: _Diagnostics) -> None:
    """Fields with a typed value; a bad value is reported and ignored, never fatal."""
    if (hit := values.get("progress")) is not None and hit.value.strip():
        match = re.match(r"^\s*(\d{1,3})\s*%?", _strip_emphasis(hit.value))
        if match:
            task.progress = min(int(match.group(1)), 100)
        else:
            message = f"progress {hit.value!r} is not a percent"
            diag.add("warning", hit.index + 1, "bad-value", message)
    if (hit := values.get("epoch")) is not None and hit.value.strip():
        # digits only: `1e3` or `-2` must not be read as some other number (the epoch only rises)
        number = _strip_emphasis(hit.value).strip()
        if re.fullmatch(r"[0-9]{1,18}", number):
            task.epoch = int(number)
        else:
            diag.add("warning", hit.index + 1, "bad-value", f"epoch {hit.value!r} is not a whole number >= 0")
    for key in ("claimed_at", "completed_at"):
        if (hit := values.get(key)) is not None and hit.value.strip():
            stamp = _parse_timestamp(hit.value)
            if stamp is None:
                label = key.replace("_", " ")
                diag.add("warning", hit.index + 1, "bad-value", f"{label} {hit.value!r} is not ISO-8601")
            setattr(task, key, stamp)


def _parse_timestamp(value: str) -> datetime | None:
    text = _strip_emphasis(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"  # Python 3.10's fromisoformat does not read "Z"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _apply_state(task: Task, hit: _FieldHit | None, glyphs: str, diag: _Diagnostics) -> None:
    if hit is not None and hit.value.strip():
        task.status_word = hit.value.strip()
        state = normalize_state(hit.value)
        if state is None:
            diag.add(
                "warning",
                hit.index + 1,
                "unknown-status",
                f"unknown status {hit.value.strip()!r}; read as open",
            )
        task.state = state or "open"
        return
    task.state = _glyph_state(glyphs) or "open"


_FILLER_WORD_RE = re.compile(r"\bfillers?\b", re.IGNORECASE)


def _kind(hit: _FieldHit | None, th: _TaskHeading) -> Kind:
    if hit is not None and hit.value.strip():
        return "filler" if _FILLER_WORD_RE.search(hit.value) else "primary"
    if any(_FILLER_WORD_RE.search(a.content) for a in th.ancestors):
        return "filler"
    return "filler" if "filler" in _glyph_meanings(th.glyphs) else "primary"


def _writes_upper_status(board: Board) -> bool:
    upper = lower = 0
    for line in [f for t in board.tasks for f in t.fields] + board.file_fields:
        if line.key != "status":
            continue
        letters = [c for c in _status_core(line.value)[0] if c.isalpha()]
        if letters and all(c.isupper() for c in letters):
            upper += 1
        elif letters:
            lower += 1
    return upper > lower


# --- editing ----------------------------------------------------------------------------------


def _case_style(word: str | None) -> str | None:
    if not word:
        return None
    core = _status_core(word)[0]
    letters = [c for c in core if c.isalpha()]
    if not letters:
        return None
    if all(c.isupper() for c in letters):
        return "upper"
    if all(c.islower() for c in letters):
        return "lower"
    if core.istitle():
        return "title"
    if core[:1].isupper():
        return "sentence"
    return None


def _status_word_for(state: State, existing: str | None, upper_board: bool) -> str:
    """The word for a state in the board's dialect: `IN PROGRESS`, `In Progress`, `in progress`."""
    word = STATE_WORDS[state]
    style = _case_style(existing) or ("upper" if upper_board else "lower")
    if style == "upper":
        return word.upper()
    if style == "title":
        return word.title()
    if style == "sentence":
        return word.capitalize()
    return word


def _label_for(key: str) -> str:
    if key in FIELD_LABELS:
        return FIELD_LABELS[key]
    return key[:1].upper() + key[1:]


def _check_value(task_id: str, key: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise BoardEditError(f"{task_id}: value for {key!r} must be one line")


def apply_edits(path: str, text: str, edits: list[BoardEdit]) -> str:
    """Apply edits to a board's text, changing only the lines they need (board-format.md: editing)."""
    for edit in edits:
        text = _apply_edit(_scan(path, text), edit).text
    return text


def edit_board(
    path: str,
    text: str,
    edits: list[BoardEdit],
    phase_order: list[str] | None = None,
    parsed: Board | None = None,
) -> tuple[str, Board | None]:
    """`apply_edits`, and the board the new text reads as: `parse_board(path, new_text,
    phase_order)`'s answer, or None when there were no edits.

    The round-trip check reads the new text back anyway; a command that then shows or caches
    the state after its edit (the dashboard, the parse cache) takes that reading instead of
    parsing the board once more (a 500-task board costs about 100 ms per parse).

    `parsed`, when given, must be `parse_board(path, text, phase_order)` (the snapshot's board,
    from the parse cache): the edit then reads only the edited task's section, before and after,
    where that provably reads as the whole file would (`_edit_section`), and keeps the rest of
    the reading; otherwise it reads the whole text before and after, as apply_edits does. A
    refusal is always the whole-file path's: the section path only ever answers an edit that
    reads back as intended."""
    if not edits:
        return text, None
    if parsed is not None:
        try:
            local = _edit_sections(path, text, edits, parsed)
        except Exception:  # noqa: BLE001 - a refusal (or any doubt) is decided by the whole-file path
            local = None
        if local is not None:
            return local
    scan = _scan(path, text, phase_order)
    for edit in edits:
        scan = _apply_edit(scan, edit, phase_order)  # the check's reading is the next edit's scan
    return scan.text, scan.board


# -- editing one section without reading the whole board ------------------------------------------
#
# A task's section starts at a top-level heading and ends right before the next top-level heading
# of its level or above (or at the end of the file). markdown-it's block parser, at top level,
# starts each block at a line and decides where it ends from that line and the ones after it,
# up to the first line that ends it: so the blocks of a section read the same from the section's
# text alone as from the whole file, and an edit that changes only the section's lines changes
# nothing before it. After it, the file reads the same (shifted) when a top-level block still
# starts on the line after the section: that is checked by reading the new section together
# with that one line. Then the tasks before the section are the same models, the ones after are
# the same with their line numbers moved, and only the edited task is read again. Anything this
# does not cover (nested tasks, a retitle, diagnostics outside task sections, a new heading in
# the section) reads the whole file instead.


def _edit_sections(path: str, text: str, edits: list[BoardEdit], parsed: Board) -> tuple[str, Board] | None:
    lines = _split_lines(text)
    board: Board | None = parsed
    for edit in edits:
        step = _edit_section(path, text, lines, board, edit) if board is not None else None
        if step is None:
            return None
        text, lines, board = step
    assert board is not None
    return text, board


def _section_scan(
    path: str, lines: list[_Line], board: Board, task: Task, start: int, end: int
) -> tuple[_TaskScan, _Diagnostics, bool] | None:
    """The edited task read from its section alone (lines start..end, 0-based, inclusive), as
    the whole file would read it; None when that cannot be shown. The flag: a `Kind:` value
    decided the kind (else the heading and the headings around it did)."""
    window = "".join(line.content + line.eol for line in lines[start : end + 1])
    after = end + 1 < len(lines)
    if after:
        window += lines[end + 1].content + lines[end + 1].eol
    md = _parse_markdown(window)
    size = end + 1 - start
    if after and size not in md.block_starts:
        return None  # the section's last block runs on into the next heading's line
    shifted = [
        _Heading(h.level, h.start + start, h.end + start, h.content) for h in md.headings if h.start < size
    ]
    if not shifted or shifted[0].start != start or shifted[0].level != task.level:
        return None
    if any(h.level <= task.level for h in shifted[1:]):
        return None  # a new heading of its level or above would end the section early
    found = _task_headings(shifted, end + 1)
    if len(found) != 1 or found[0].task_id != task.id:
        return None  # a nested task, or the heading no longer reads as this task
    th = found[0]
    heading_lines = {i for h in shifted for i in range(h.start, h.end)}
    opaque = frozenset(i + start for i in md.opaque_lines if i < size)
    section = _scan_section(lines, _own_lines(0, found), heading_lines, opaque)
    preamble = [_FieldHit(f.line - 1, f.key, f.label, f.value, "", "", "", False) for f in board.file_fields]
    inherited = _first_per_key(preamble, _INHERITED_KEYS)
    diagnostics = _Diagnostics(path)
    new = _build_task(path, board.phase, task.position, th, section, inherited, diagnostics)
    values = {**inherited, **_first_per_key(section.fields)}
    by_field = (hit := values.get("kind")) is not None and bool(hit.value.strip())
    if not by_field:
        new.kind = task.kind  # the heading and the ones around it are unchanged: so is the kind
    hits = {hit.index: hit for hit in section.fields}
    anchor, anchor_hit = _top_block_anchor(lines, th.heading, th.end, hits)
    scan = _TaskScan(
        new, section.fields, anchor, anchor_hit, th.heading.content, th.heading.end - th.heading.start
    )
    return scan, diagnostics, by_field


def _edit_section(
    path: str, text: str, lines: list[_Line], board: Board, edit: BoardEdit
) -> tuple[str, list[_Line], Board] | None:
    """One edit by reading only the task's section; None when the whole file must be read."""
    if edit.title is not None:
        return None
    found = _readable_section(path, lines, board, edit.task_id)
    if found is None:
        return None
    at, before = found
    new_text, new_lines = _edited(_Scan(lines, board, [before[0]], text), edit)
    after = _reread_section(path, lines, new_lines, board, at, before)
    if after is None:
        return None
    new_board, new_task = after
    _check_read_back(new_task, edit)
    return new_text, new_lines, new_board


def _readable_section(
    path: str, lines: list[_Line], board: Board, task_id: str
) -> tuple[int, tuple[_TaskScan, _Diagnostics, bool]] | None:
    """The task's index in the board and its section read alone, when that section provably
    reads as the whole file does (else None)."""
    if board.path != path:
        return None
    at = next((i for i, t in enumerate(board.tasks) if t.id == task_id), None)
    if at is None or any(t.id == task_id for t in board.tasks[at + 1 :]):
        return None
    task = board.tasks[at]
    start, end = task.line - 1, task.end_line - 1
    if end >= len(lines) or any(t.line <= task.line <= t.end_line for t in board.tasks if t is not task):
        return None  # inside another task's section, or one inside its own
    if not _all_in_task_sections([d.line for d in board.diagnostics], board.tasks):
        return None  # a finding on the preamble (an inherited value): its order depends on all tasks
    before = _section_scan(path, lines, board, task, start, end)
    if before is None or before[0].task != task:
        return None
    return at, before


def _reread_section(
    path: str,
    lines: list[_Line],
    new_lines: list[_Line],
    board: Board,
    at: int,
    before: tuple[_TaskScan, _Diagnostics, bool],
) -> tuple[Board, Task] | None:
    """The board `new_lines` read as, when they differ from `lines` only inside the section of
    task `at` (read alone as `before`): that section read again, the tasks before it kept, the
    ones after it moved. None when that cannot be shown."""
    task = board.tasks[at]
    start, end = task.line - 1, task.end_line - 1
    delta = len(new_lines) - len(lines)
    if new_lines[:start] != lines[:start] or new_lines[end + 1 + delta :] != lines[end + 1 :]:
        return None
    after = _section_scan(path, new_lines, board, task, start, end + delta)
    if after is None or (before[2] and not after[2]):
        return None  # the kind came from a value the edit removed: the headings around decide
    new_scan, diagnostics, _ = after
    tasks = [*board.tasks[:at], new_scan.task, *(_moved(t, delta) for t in board.tasks[at + 1 :])]
    kept = [d for d in board.diagnostics if d.line < task.line]
    later = [
        d.model_copy(update={"line": d.line + delta}) for d in board.diagnostics if d.line > task.end_line
    ]
    new_board = board.model_copy(update={"tasks": tasks, "diagnostics": [*kept, *diagnostics.items, *later]})
    new_board.upper_status_words = _writes_upper_status(new_board)
    return new_board, new_scan.task


def reread_board(path: str, text: str, board: Board, new_text: str) -> Board | None:
    """What `parse_board(path, new_text)` answers, from `board` (`parse_board(path, text)`, same
    phase order) when the two texts differ inside one task's section only, as an operation's
    edit leaves them: only that section is read again (a session reading a commit another
    session made re-reads one task of a 500-task board, not the board). None when the change
    is not shown to be local: the caller reads the whole text."""
    if new_text == text:
        return board
    lines, new_lines = _split_lines(text), _split_lines(new_text)
    shortest = min(len(lines), len(new_lines))
    first = 0  # the first line that differs
    while first < shortest and lines[first] == new_lines[first]:
        first += 1
    # The section it falls in, below that section's heading; whether every other change stays
    # inside that section too is _reread_section's check of the lines after it.
    owner = next((t for t in board.tasks if t.line - 1 < first <= t.end_line - 1), None)
    if owner is None:
        return None
    found = _readable_section(path, lines, board, owner.id)
    if found is None:
        return None
    after = _reread_section(path, lines, new_lines, board, *found)
    return None if after is None else after[0]


def _all_in_task_sections(lines: list[int], tasks: list[Task]) -> bool:
    """Whether every line lies in some task's section (tasks in heading order; a line is in a
    section when the furthest end among the sections begun at or before it reaches it)."""
    if not lines:
        return True
    starts = [t.line for t in tasks]
    reach = list(itertools.accumulate((t.end_line for t in tasks), max))
    for line in lines:
        at = bisect.bisect_right(starts, line) - 1
        if at < 0 or reach[at] < line:
            return False
    return True


def _moved(task: Task, delta: int) -> Task:
    """A task below the edited section, its line numbers moved by the lines the edit added."""
    if not delta:
        return task
    return task.model_copy(
        update={
            "line": task.line + delta,
            "end_line": task.end_line + delta,
            "milestones": [m._replace(line=m.line + delta) for m in task.milestones],
            "fields": [f._replace(line=f.line + delta) for f in task.fields],
        }
    )


def _wanted_fields(scan: _Scan, task_scan: _TaskScan, edit: BoardEdit) -> dict[str, str | None]:
    wanted: dict[str, str | None] = {}
    for key, value in edit.fields.items():
        canonical = canonical_key(key)
        if value is not None:
            _check_value(edit.task_id, key, value)
        wanted[canonical] = value
    if edit.state is not None:  # the explicit state wins over a raw "status" value, and goes first
        existing = _first_per_key(task_scan.fields).get("status")
        word = existing.value if existing is not None else task_scan.task.status_word
        status = _status_word_for(edit.state, word, scan.board.upper_status_words)
        wanted = {"status": status, **{k: v for k, v in wanted.items() if k != "status"}}
    return wanted


def _apply_edit(scan: _Scan, edit: BoardEdit, phase_order: list[str] | None = None) -> _Scan:
    """The scan of the edited text (its `text` is the new text), read back and checked."""
    new_text = _edited_text(scan, edit)
    return _verify_round_trip(scan.board.path, new_text, edit, phase_order)


def _edited_text(scan: _Scan, edit: BoardEdit) -> str:
    """The board's text with one edit made: only the edited task's own lines change."""
    return _edited(scan, edit, lines_too=False)[0]


def _edited(scan: _Scan, edit: BoardEdit, lines_too: bool = True) -> tuple[str, list[_Line]]:
    """`_edited_text`, and the new text's lines (`_split_lines` of it; with `lines_too` false,
    maybe none: the caller reads the text anew). Only the lines from the
    first to the last one the edit touches are built again; the ones before and after are the
    scan's own (shared, never changed), and so is the text around them, when the scan has its
    text and the edit ends before the last line (whose line break `_join` may change)."""
    task_scan = scan.find(edit.task_id)
    replacements: dict[int, str] = {}
    deletions: set[int] = set()
    inserts: list[str] = []
    for key, value in _wanted_fields(scan, task_scan, edit).items():
        hits = [hit for hit in task_scan.fields if hit.key == key]
        if value is None:
            deletions.update(hit.index for hit in hits)
        elif hits:
            replacements[hits[0].index] = hits[0].with_value(value)
        else:
            inserts.append(_new_field_line(task_scan.anchor_hit, _label_for(key), value))
    if edit.tick_milestones_upto is not None:
        replacements.update(_ticks(scan.lines, task_scan.task, edit.tick_milestones_upto))
    if edit.title is not None:
        index = task_scan.task.line - 1
        replacements[index] = _retitled_heading(task_scan, scan.lines[index].content, edit.title)

    lines = scan.lines
    touched = [*deletions, *replacements, *([task_scan.anchor] if inserts else [])]
    low, high = (min(touched), max(touched)) if touched else (0, -1)
    ranged = bool(scan.text) and 0 <= low and high < len(lines) - 1
    eol = _file_eol(lines)
    out: list[_Line] = []
    for index in range(low, high + 1) if ranged else range(len(lines)):
        line = lines[index]
        if index not in deletions:
            out.append(_Line(replacements.get(index, line.content), line.eol))
        if index == task_scan.anchor and inserts:
            out.extend(_Line(content, eol) for content in inserts)
            if _needs_blank_after_insert(lines, index, deletions, task_scan):
                out.append(_Line("", eol))  # keep the next line from merging into our lines
    if not ranged:
        text = _join(out, lines, eol)
        return text, _split_lines(text) if lines_too else []
    # Every line up to `high` + 1 has its line break (only the last line may lack one).
    start = sum(len(line.content) + len(line.eol) for line in lines[:low])
    end = start + sum(len(line.content) + len(line.eol) for line in lines[low : high + 1])
    middle = "".join(line.content + line.eol for line in out)
    return scan.text[:start] + middle + scan.text[end:], [*lines[:low], *out, *lines[high + 1 :]]


def _new_field_line(anchor_hit: _FieldHit | None, label: str, value: str) -> str:
    """`**Key:** value`, in the style of the field line it follows (list marker, `**Key**:`)."""
    if anchor_hit is None:
        return f"**{label}:** {value}"
    match = _FIELD_RE.match(anchor_hit.head + " x")
    prefix = match["prefix"] if match else ""
    key = anchor_hit.head[len(prefix) :]
    if key.startswith("__"):
        bold = f"__{label}__:" if key.endswith("__:") else f"__{label}:__"
    else:
        bold = f"**{label}**:" if key.endswith("**:") else f"**{label}:**"
    return f"{prefix}{bold} {value}"


def _needs_blank_after_insert(
    lines: list[_Line], anchor: int, deletions: set[int], task_scan: _TaskScan
) -> bool:
    following = next((i for i in range(anchor + 1, len(lines)) if i not in deletions), None)
    if following is None:
        return False
    content = lines[following].content
    if _SETEXT_UNDERLINE_RE.match(content):
        return True  # "**Owner:** x" over "---" would turn into a heading
    after_heading = task_scan.anchor_hit is None
    indented = content.startswith(("    ", "\t")) and bool(content.strip())
    return after_heading and indented  # indented code under a heading would become our paragraph


def _ticks(lines: list[_Line], task: Task, upto: int) -> dict[int, str]:
    ticked: dict[int, str] = {}
    for milestone in task.milestones:
        if milestone.done or milestone.percent is None or milestone.percent > upto:
            continue
        index = milestone.line - 1
        ticked[index] = _CHECKBOX_IN_LINE_RE.sub(r"\1x\3", lines[index].content, count=1)
    return ticked


def _join(out: list[_Line], original: list[_Line], eol: str) -> str:
    """Join lines, keeping the original's final-newline choice whatever moved at the end."""
    had_final_eol = not original or bool(original[-1].eol)  # an empty file gets the usual "\n"
    out = [_Line(line.content, line.eol) for line in out]  # the scan's own lines are shared: never changed
    for line in out[:-1]:
        if not line.eol:
            line.eol = eol
    if out:
        out[-1].eol = (out[-1].eol or eol) if had_final_eol else ""
    text = "".join(line.content + line.eol for line in out)
    # A file without a final newline keeps it that way, even when its last line was deleted
    # and a blank line would now end it.
    return text if had_final_eol else text.rstrip("\r\n")


def _verify_round_trip(
    path: str, new_text: str, edit: BoardEdit, phase_order: list[str] | None = None
) -> _Scan:
    """Refuse an edit whose result would not read back as intended, rather than write it;
    the reading of the new text when it does (`phase_order` names its phase, as parse_board)."""
    scan = _scan(path, new_text, phase_order)
    _check_read_back(scan.find(edit.task_id).task, edit)
    return scan


def _check_read_back(task: Task, edit: BoardEdit) -> None:
    """The edited task, as the new text reads, says what the edit wrote."""
    own = {f.key: f.value for f in reversed(task.fields)}  # first line per key wins
    for key, value in edit.fields.items():
        canonical = canonical_key(key)
        if canonical == "status" and edit.state is not None:
            continue  # the state was written instead
        if value is None and canonical in own:
            raise BoardEditError(f"{edit.task_id}: {key!r} is still set after removal")
        if value is not None and own.get(canonical, "").strip() != value.strip():
            raise BoardEditError(f"{edit.task_id}: {key!r} would not read back as {value!r}")
    if edit.state is not None and task.state != edit.state:
        raise BoardEditError(f"{edit.task_id}: state would read back as {task.state!r}")
    if edit.title is not None and task.title != read_title(edit.task_id, edit.title):
        raise BoardEditError(f"{edit.task_id}: the heading would not read back with the title {edit.title!r}")


def read_title(task_id: str, title: str) -> str:
    """The title as the board reads it back from `ID: title`: emphasis and end glyphs set aside
    (`Fix **bold** bug` reads `Fix bold bug`; the heading keeps what the person wrote)."""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in title):
        raise BoardEditError(f"{task_id}: a title is one line of printable text, got {title!r}")
    # `#`s at the end of a heading, after a space, are its closing sequence, not its text
    parsed = _task_heading(_ATX_CLOSE_RE.sub("", f"{task_id}: {title.strip()}", count=1))
    if parsed is None or parsed[0] != task_id:
        raise BoardEditError(
            f"{task_id}: the title {title!r} leaves no text once emphasis and glyphs are set aside"
        )
    return parsed[1]


_ATX_OPEN_RE = re.compile(r"^ {0,3}#{1,6}[ \t]+")
_ATX_CLOSE_RE = re.compile(r"(?:[ \t]+#+)?[ \t]*$")
_AFTER_ID_RE = re.compile(r"(?P<close>[*_`~]*)(?:[ \t]*:|[ \t]+[-—–][ \t]+)[ \t]*")


def _retitled_heading(task_scan: _TaskScan, line: str, title: str) -> str:
    """The heading line with only its title replaced: the `#`s, the emphasis around it, the ID,
    the separator, the glyphs and a closing `#` sequence stay as they were."""
    task_id = task_scan.task.id
    opening = _ATX_OPEN_RE.match(line)
    if task_scan.heading_lines != 1 or opening is None:
        raise BoardEditError(f"{task_id}: its heading spans lines (setext); retitle it by hand")
    at = line.find(task_id, opening.end())
    after = _AFTER_ID_RE.match(line, at + len(task_id)) if at >= 0 else None
    if after is None:
        raise BoardEditError(f"{task_id}: cannot find `{task_id}:` in its heading; retitle it by hand")
    head, rest = line[: after.end()], line[after.end() :]
    closing = _ATX_CLOSE_RE.search(rest)
    tail = rest[closing.start() :] if closing else ""
    rest = rest[: len(rest) - len(tail)]
    core = rest.rstrip()
    while core:  # the same trailing glyphs `_strip_glyphs` sets aside when reading
        match = _TRAILING_MOJIBAKE_RE.search(core)
        if match:
            core = core[: match.start()].rstrip()
        elif _is_trailing_glyph(core[-1]) and core[-1] not in "*_`~":  # "`" is a symbol too
            core = core[:-1].rstrip()
        else:
            break
    glyph_tail = rest[len(core) :]
    # Emphasis opened before the ID and not closed right after it wraps the title: keep its close.
    opened = "".join(re.findall(r"[*_`~]+", line[opening.end() : at]))
    wrap = "" if after["close"] else opened[::-1]
    if wrap and core.endswith(wrap):
        core, glyph_tail = core[: -len(wrap)], wrap + glyph_tail
    return head + title.strip() + glyph_tail + tail


def render_new_task(
    text: str,
    *,
    task_id: str,
    title: str,
    fields: dict[str, str],
    after_task: str | None = None,
) -> str:
    """Add a task in the file's own dialect, after `after_task`'s section or at the end."""
    if not looks_like_task_id(task_id):
        raise BoardEditError(f"{task_id!r} is not a task ID (letters, a digit, `.`, `-`)")
    _check_value(task_id, "title", title)
    expected = read_title(task_id, title)
    for key, value in fields.items():
        _check_value(task_id, key, value)
    scan = _scan("", text)
    _, glyphs = _strip_glyphs(_strip_emphasis(f"{task_id}: {title.strip()}"))
    if _glyph_state(glyphs) not in (None, "open") and "status" not in {canonical_key(k) for k in fields}:
        # `Tidy ✅` must not read as done: a status line wins over a glyph in the heading.
        fields = {"status": "NOT STARTED" if scan.board.upper_status_words else "open", **fields}
    if any(t.task.id == task_id for t in scan.tasks):
        raise BoardEditError(f"task {task_id} is already on this board")
    model = scan.find(after_task) if after_task is not None else _last(scan.tasks)
    block = [_new_heading(model, task_id, title.strip())]
    if fields and _blank_under_heading(scan, model):
        block.append("")
    labels = _board_labels(scan.tasks)
    block += [
        f"**{labels.get(canonical_key(k)) or _label_for(canonical_key(k))}:** {v}" for k, v in fields.items()
    ]

    lines, eol = scan.lines, _file_eol(scan.lines)
    at = model.task.end_line if after_task is not None and model is not None else len(lines)
    before = [""] if at > 0 and lines[at - 1].content.strip() else []
    after = _separator_after(lines, at) if at < len(lines) else []
    new = [_Line(c, eol) for c in before + block + after]
    new_text = _join(lines[:at] + new + lines[at:], lines, eol)
    check = _scan("", new_text)
    if not any(t.task.id == task_id and t.task.title == expected for t in check.tasks):
        raise BoardEditError(f"task {task_id} would not read back from its heading with the title {title!r}")
    return new_text


def _blank_under_heading(scan: _Scan, model: _TaskScan | None) -> bool:
    """Whether the board leaves a blank line between a task heading and its fields (as the task
    the new one follows does)."""
    if model is None:
        return False
    below = model.task.line - 1 + model.heading_lines
    return below < len(scan.lines) and not scan.lines[below].content.strip()


def _board_labels(task_scans: list[_TaskScan]) -> dict[str, str]:
    """The label this board uses most for each field (`Dependency`, `Effort`...): its dialect."""
    counts: dict[str, Counter[str]] = {}
    for scan in task_scans:
        for field_line in scan.task.fields:
            counts.setdefault(field_line.key, Counter())[field_line.label] += 1
    return {key: labels.most_common(1)[0][0] for key, labels in counts.items()}


def _last(task_scans: list[_TaskScan]) -> _TaskScan | None:
    return task_scans[-1] if task_scans else None


def _new_heading(model: _TaskScan | None, task_id: str, title: str) -> str:
    if model is None:
        return f"## {task_id}: {title}"
    text = f"{task_id}: {title}"
    if f"**{model.task.id}" in model.heading_content:
        text = f"**{text}**"  # the board bolds its task headings
    return "#" * model.task.level + " " + text


def _separator_after(lines: list[_Line], at: int) -> list[str]:
    """A blank line, plus the board's `---` between tasks when it uses one."""
    previous = next((line.content for line in reversed(lines[:at]) if line.content.strip()), "")
    if re.fullmatch(r" {0,3}(?:-{3,}|\*{3,}|_{3,})[ \t]*", previous):
        return ["", previous.strip(), ""]
    return [""]
