"""The catalogue of large, deep and careless inputs that issue 13 found, as branch files.

Shared by tests/test_hostile_input.py, tests/e2e/test_hostile_branch.py and bench/hostile.py.
Each generator returns {path on the branch: bytes}.
"""

from __future__ import annotations

PER_BOARD = 1000  # tasks per board in the big cases: under the board size limit


def _task(task_id: str, depends: str | None = None, extra: str = "") -> str:
    dep = f"**Depends on:** {depends}\n" if depends else ""
    return f"## {task_id}: task {task_id}\n**Status:** open\n{dep}{extra}\n"


def chain(n: int, per_board: int = PER_BOARD) -> dict[str, bytes]:
    """n tasks, each depending on the next one: the deepest dependency graph there is, listed
    dependants first (so a walk in board order goes the whole depth at once)."""
    files: dict[str, bytes] = {}
    for start in range(0, n, per_board):
        body = "".join(
            _task(f"C-{i}", f"C-{i + 1}" if i + 1 < n else None)
            for i in range(start, min(n, start + per_board))
        )
        files[f"boards/chain-{start // per_board:04d}.md"] = (
            f"# Chain {start // per_board}\n\n{body}".encode()
        )
    return files


def wide(n: int, per_board: int = PER_BOARD) -> dict[str, bytes]:
    """n independent tasks: every one of them ready."""
    files: dict[str, bytes] = {}
    for start in range(0, n, per_board):
        body = "".join(_task(f"W-{i}") for i in range(start, min(n, start + per_board)))
        files[f"boards/wide-{start // per_board:04d}.md"] = f"# Wide {start // per_board}\n\n{body}".encode()
    return files


def own_group(n: int) -> dict[str, bytes]:
    """n tasks that each depend on their own group: a cycle through every pair."""
    body = "".join(_task(f"P7.{i}", "P7") for i in range(1, n + 1))
    return {"boards/group.md": f"# Group\n\n{body}".encode()}


def deep_status(depth: int, session: str = "s2", flow: bool = True) -> dict[str, bytes]:
    """Another session's STATUS file nested `depth` levels (`x: [[[...]]]`, or block mappings)."""
    if flow:
        text = "x: " + "[" * depth + "]" * depth + "\n"
    else:
        text = "".join(" " * i + "a:\n" for i in range(depth)) + " " * depth + "a: 1\n"
    return {f"status/{session}.yaml": f"session: {session}\n{text}".encode()}


def big_board(size: int) -> dict[str, bytes]:
    """One board of about `size` bytes of long task sections."""
    filler = "Lorem ipsum dolor sit amet. " * 30 + "\n"
    parts = ["# Big\n\n"]
    total, i = 0, 0
    while total < size:
        part = _task(f"B-{i}", extra=filler)
        parts.append(part)
        total += len(part)
        i += 1
    return {"boards/big.md": "".join(parts).encode()}


def nested_headings(depth: int) -> dict[str, bytes]:
    """Task headings nested in many sections (levels cycling 2..6) in one board."""
    lines = ["# Nested\n"]
    for i in range(depth):
        level = 2 + i % 5
        lines.append("#" * level + f" N-{i}: nested {i}\n**Depends on:** {f'N-{i - 1}' if i else ''}\n")
    return {"boards/nested.md": "\n".join(lines).encode()}


ESCAPES = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x9b31m\u202e"  # OSC 52 clipboard, clear screen, C1 CSI, RLO
