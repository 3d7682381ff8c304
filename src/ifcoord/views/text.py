"""Text from the branch made safe for a person's terminal.

Boards, STATUS files, notes and commit messages are written by anyone who can push. A terminal
obeys escape sequences (OSC 52 writes the reader's clipboard, CSI clears the screen), and
bidirectional overrides make text read differently from what it is; so every view passes such
text through `safe` before printing it, and shows the characters as visible escapes instead.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (U+0080..U+009F: U+009B is a one-character CSI), bidirectional
# embeddings/overrides/isolates, and lone surrogates (bytes that were not UTF-8).
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_KEEP_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str | None, *, lines: bool = False) -> str:
    """`text` with every control character shown as a visible escape (`\\x1b`); tabs stay, and
    newlines stay when `lines` is true (multi-line output such as a lint report)."""
    if not text:
        return ""
    pattern = _UNSAFE_KEEP_LINES if lines else _UNSAFE
    return pattern.sub(_visible, text)


def safe_markup(text: str | None) -> str:
    """`safe`, then escaped for rich markup (`[bold]` in a title is text, not a style)."""
    from rich.markup import escape

    return escape(safe(text))


def has_control(text: str) -> bool:
    """Whether `text` holds a character `safe` would escape (tab and newline included)."""
    return _UNSAFE.search(text.replace("\t", "\x00")) is not None
