"""Parsed boards and status files kept on disk by blob id, so a command re-parses only what changed.

Parsing a 500-task board takes about 100 ms and a status file about 6 ms (ruamel); an agent's
commands read the same blobs again and again, and every session of a machine reads each new
version of a board. Each entry is one file under `~/.cache/ifcoord/parses/parse-<version>/`
(shared by the user's clones; `<git dir>/ifcoord/` when that cannot be written), named by a
digest of what the parse depends on (kind, path, blob id, the configured phase order), holding
the model as JSON. Writers write a temporary file and rename it into place, so concurrent
processes see a whole entry or none; a file that does not validate is a miss. The folder name
carries PARSER_VERSION and a digest of the parser's source, so a changed parser or model never
reads an old entry. The folder is pruned to MAX_ENTRIES.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from ifcoord.files.places import user_cache_home
from ifcoord.models import Board, Config, Diagnostic, SessionStatus

# Bump when a parse's result changes for the same bytes without the sources below changing.
PARSER_VERSION = 1
MAX_ENTRIES = 4096
MAX_BYTES = 256 * 1024 * 1024  # a 500-task board is about 0.5 MB of JSON
OLD_VERSION_IDLE = 24 * 3600  # seconds without a write before another version's folder goes
PRUNE_EVERY = 32  # writes between two looks at the folder's size (a poll loop writes often)
_SOURCES = ("models.py", "files/board.py", "files/status.py", "files/yamlsafe.py", "files/config.py")

StatusParse = tuple[str | None, SessionStatus | None, Diagnostic | None]


def parse_home(git_dir: Path) -> Path:
    """Where parses are kept: one folder for every clone of this user on this machine
    (`~/.cache/ifcoord/parses`), so that sessions working in different clones parse each
    version of a board once between them (the commit's author leaves its parses there: the
    others only read them); the clone's own `.git/ifcoord/` when that folder cannot be written
    (a sandbox that lets a session write only its project)."""
    shared = user_cache_home() / "parses"
    try:
        shared.mkdir(parents=True, exist_ok=True)
        if os.access(shared, os.W_OK | os.X_OK):
            return shared
    except OSError:
        pass
    return git_dir / "ifcoord"


def cache_enabled() -> bool:
    """IFCOORD_PARSE_CACHE=0 turns the cache off (to measure a cold start, or to rule it out)."""
    return os.environ.get("IFCOORD_PARSE_CACHE", "1") != "0"


def parser_fingerprint() -> str:
    """PARSER_VERSION and a digest of the sources a parse depends on."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha1(str(PARSER_VERSION).encode())
    for name in _SOURCES:
        try:
            digest.update((package / name).read_bytes())
        except OSError:
            digest.update(name.encode())
    return f"{PARSER_VERSION}-{digest.hexdigest()[:12]}"


class ParseCache:
    """The on-disk parse cache (shared by every clone, worktree and process that uses its home)."""

    def __init__(self, home: Path, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.root = home / f"parse-{parser_fingerprint()}"
        self.home = home
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._writes = 0
        self.hits = 0
        self.misses = 0
        self._made = False

    @staticmethod
    def key(kind: str, path: str, blob: str, extra: str = "") -> str:
        return hashlib.sha1(f"{kind}\0{path}\0{blob}\0{extra}".encode()).hexdigest()

    # -- entries ------------------------------------------------------------------------------

    def get_board(self, path: str, blob: str, config: Config) -> Board | None:
        data = self._read(self.key("board", path, blob, "\0".join(config.phases)))
        if data is None:
            return None
        try:
            return Board.model_validate_json(data)
        except ValueError:
            return None

    def put_board(self, path: str, blob: str, config: Config, board: Board) -> None:
        # Without the fields left unset a 500-task board reads back 20% faster, and every command
        # pays that read. It reads back equal because every field of the board's models that
        # may be None is None by default (tests/test_parsecache.py checks the models).
        data = board.model_dump_json(exclude_none=True).encode()
        self._write(self.key("board", path, blob, "\0".join(config.phases)), data)

    def get_status(self, path: str, blob: str) -> StatusParse | None:
        data = self._read(self.key("status", path, blob))
        if data is None:
            return None
        try:
            entry = _StatusEntry.model_validate_json(data)
        except ValueError:
            return None
        return entry.session, entry.status, entry.diagnostic

    def put_status(self, path: str, blob: str, parsed: StatusParse) -> None:
        session, status, diag = parsed
        entry = _StatusEntry(session=session, status=status, diagnostic=diag)
        data = entry.model_dump_json().encode()
        # YAML can hold values JSON gives back differently (dates among unknown keys): such a
        # file is re-parsed each time rather than cached wrong.
        back = _StatusEntry.model_validate_json(data)
        if back.status == status and back.diagnostic == diag:
            self._write(self.key("status", path, blob), data)

    # -- files --------------------------------------------------------------------------------

    def _read(self, name: str) -> bytes | None:
        try:
            with open(self.root / name, "rb") as fh:
                data = fh.read()
        except OSError:
            self.misses += 1
            return None
        self.hits += 1
        return data

    def _write(self, name: str, data: bytes) -> None:
        try:
            if not self._made:
                self._made = True
                self.root.mkdir(parents=True, exist_ok=True)
                self._drop_old_versions()
            tmp = self.root / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self.root / name)
            if self._writes % PRUNE_EVERY == 0:
                self._prune()
            self._writes += 1
        except OSError:
            pass  # a cache that cannot be written is only slower

    def _prune(self) -> None:
        """Past max_entries or max_bytes, drop the oldest entries down to half of both (other
        processes may prune at the same time: a vanished file is fine)."""
        with os.scandir(self.root) as it:
            entries = [(e, _stat(e)) for e in it if not e.name.startswith(".")]
        total = sum(size for _, (_, size) in entries)
        if len(entries) <= self.max_entries and total <= self.max_bytes:
            return
        keep_entries, keep_bytes = self.max_entries // 2, self.max_bytes // 2
        count = len(entries)
        for e, (_, size) in sorted(entries, key=lambda item: item[1][0]):
            if count <= keep_entries and total <= keep_bytes:
                break
            try:
                os.unlink(e.path)
            except OSError:
                pass
            count -= 1
            total -= size

    def _drop_old_versions(self) -> None:
        """Drop the folders of other parser versions that nobody wrote to for a day (clones of
        one machine may run two versions of ifcoord at once: neither removes the other's)."""
        stale = time.time() - OLD_VERSION_IDLE
        for old in self.home.glob("parse-*"):
            try:
                idle = old.stat().st_mtime < stale
            except OSError:
                continue
            if old != self.root and idle:
                shutil.rmtree(old, ignore_errors=True)


def _stat(entry: os.DirEntry[str]) -> tuple[float, int]:
    """(modification time, size); a file another process just removed counts as empty."""
    try:
        st = entry.stat()
    except OSError:
        return 0.0, 0
    return st.st_mtime, st.st_size


class _StatusEntry(BaseModel):
    """What read_status returns, as one JSON document."""

    session: str | None = None
    status: SessionStatus | None = None
    diagnostic: Diagnostic | None = None
