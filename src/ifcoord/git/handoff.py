"""What a turn hands to the next: the commit it pushed and that commit's new objects.

Sessions of one machine take turns at a branch (git/queue.py). A session that waited for its
turn knows the branch moved while it waited: the sessions before it pushed. Rather than fetch
what they pushed from the remote (a `git fetch`, its server process, its pack, its connectivity
check: the longest part of a turn), it takes it from them. Each turn that lands a commit leaves
the commit's new objects (the commit, the trees along the changed paths, the changed files), in
git's loose form, in the queue's folder, with its parent; the next session copies the ones
between its own tip and the newest into its clone and takes the newest as the tip, as a fetch
would have.

It is only a guess at the remote's tip, made safe by what follows: the push's compare-and-swap
still decides. When a session of another machine (or a person) pushed in between, the push is
rejected and the turn fetches and decides again at once (git/transaction.py). A handoff is
taken only when it was left after the taker joined the queue (a turn ran and landed while it
waited) and it leads, parent by parent, to the tip the taker has: otherwise the turn fetches.
A clone that still misses an object heals as after any broken fetch.
"""

from __future__ import annotations

import marshal
import os
import threading
import time
from pathlib import Path

# Commits kept: a session further behind than this fetches. A poll looks every 30 s; a team
# of 200 sessions lands 2-3 commits a second (docs/scaling.md), so 256 covers one poll's gap
# with room (about 16 KB each in the team bench: 4 MB).
KEEP = 256
LATEST = "latest"
SUFFIX = ".commit"

Loose = list[tuple[str, bytes]]  # (hex sha, the object's loose form)


class Handoff:
    """The handoff folder of one queue (one remote URL and branch on this machine)."""

    def __init__(self, queue_path: Path) -> None:
        self.path = queue_path / "handoff"

    def leave(self, parent: str | None, commit: str, loose: Loose) -> None:
        """Record a commit that just landed, then say it is the newest (each write is a rename:
        a reader sees a whole file or none). Files are named by when they were left, then the
        commit, so that the oldest are known by name."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._write(
                f"{time.monotonic_ns():020d}-{commit}{SUFFIX}", marshal.dumps((parent or "", commit, loose))
            )
            self._write(LATEST, f"{commit} {time.monotonic():.6f}".encode())
            self._prune()
        except (OSError, ValueError):
            pass  # the next session fetches instead

    def take(self, tip: str | None, since: float) -> tuple[str, Loose] | None:
        """The newest commit and the objects from `tip` to it, when it was left at or after
        `since` (time.monotonic(), shared by every process of the machine) and leads back to
        `tip`; None: fetch instead. `tip` itself newest: (tip, [])."""
        if tip is None:
            return None
        try:
            latest, _, when = (self.path / LATEST).read_text().partition(" ")
            if float(when) < since:
                return None
        except (OSError, ValueError):
            return None
        loose = self.between(tip, latest)
        return None if loose is None else (latest, loose)

    def between(self, tip: str | None, newest: str) -> Loose | None:
        """The objects the commits after `tip` up to `newest` brought, when the handoff holds
        every one of them (parent by parent); None: fetch instead. A poll that sees the remote
        at `newest` takes them from here rather than from the server."""
        if tip is None:
            return None
        if newest == tip:
            return []
        try:
            files = {name[21 : -len(SUFFIX)]: name for name in self._entries()}
            loose: Loose = []
            commit = newest
            for _ in range(KEEP):
                if commit == tip:
                    return loose
                if commit not in files:
                    return None
                parent, found, objects = marshal.loads((self.path / files[commit]).read_bytes())
                if found != commit:
                    return None
                loose.extend(objects)
                commit = parent
        except (OSError, ValueError, EOFError, TypeError):
            return None
        return None

    def _entries(self) -> list[str]:
        return sorted(name for name in os.listdir(self.path) if name.endswith(SUFFIX))

    def _write(self, name: str, data: bytes) -> None:
        tmp = self.path / f".{name}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_bytes(data)
        os.replace(tmp, self.path / name)

    def _prune(self) -> None:
        """Keep the newest KEEP commits."""
        entries = self._entries()
        for name in entries[: max(0, len(entries) - KEEP)]:
            try:
                os.unlink(self.path / name)
            except OSError:
                pass
