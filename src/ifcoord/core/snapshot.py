"""From the files of the coordination branch (at a commit, or in a folder) to a Snapshot.

`build_snapshot` is pure; `SnapshotLoader` reads a commit through the store and caches parsed
boards and status files by blob id, so an unchanged board is never parsed twice in a process.
The state at a commit is built once per process and shared by every loader (every Workspace and
poll loop of the process): a commit id names its content, and the state is read-only once built.
"""

from __future__ import annotations

import functools
import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ifcoord.core.kept import kept_when_small
from ifcoord.errors import InvalidData
from ifcoord.files.board import parse_board, reread_board, unreadable_board
from ifcoord.files.config import CONFIG_PATH, is_board_path, is_status_path, parse_config
from ifcoord.files.status import parse_status, session_from_path
from ifcoord.files.yamlsafe import LOADED_TEXT_MAX
from ifcoord.models import Board, Config, Diagnostic, SessionStatus, Snapshot

# A board larger than this is not read (lint names it): a 20 MB board made every command, even
# `status`, take seconds and hundreds of MB. 2 MiB holds about 10,000 fully written tasks.
MAX_BOARD_BYTES = 2 * 1024 * 1024

# Tree entry modes that are plain files; anything else (symlink 120000, gitlink 160000) is
# never read as a board or STATUS file and never written over.
REGULAR_MODES = (0o100644, 0o100755)


@dataclass
class BranchState:
    """A snapshot together with the raw bytes it was parsed from (edits start from these).

    `blocked`: paths ifcoord must never write a file to: symlinks, gitlinks, and folders
    (writing `status/s1.yaml` over a folder of that name would delete what is inside it).
    """

    snapshot: Snapshot
    raw: dict[str, bytes] = field(default_factory=dict)
    blocked: frozenset[str] = frozenset()

    @property
    def commit(self) -> str | None:
        return self.snapshot.commit


# Parses the loader found in the on-disk cache (core/parsecache.py), by content; bounded.
_seeded: dict[tuple[object, ...], object] = {}
_SEEDED_MAX = 4096
_SEEDED_BYTES = 64 * 1024 * 1024  # the keys hold the files' bytes: a poll loop runs for days
_seeded_bytes = 0


def seed_board(path: str, data: bytes, config: Config, board: Board) -> None:
    _seed(("board", path, data, tuple(config.phases)), board, len(data))
    _remember_read(path, tuple(config.phases), data, board)


# The last version of each board this process read, with its reading: the next version (one
# operation later, usually one task's section changed) is read from it section by section
# (files/board.py `reread_board`) rather than whole. One entry per board path.
_last_read: dict[tuple[str, tuple[str, ...]], tuple[bytes, Board]] = {}
_LAST_READ_MAX = 256


def _remember_read(path: str, phases: tuple[str, ...], data: bytes, board: Board) -> None:
    if len(_last_read) >= _LAST_READ_MAX:
        _last_read.clear()
    _last_read[(path, phases)] = (data, board)


def _read_from_last(path: str, phases: tuple[str, ...], text: str) -> Board | None:
    """The board `text` reads as, from the last version of the same board read here; None
    when there is none or the change is not local to one task's section."""
    last = _last_read.get((path, phases))
    if last is None or len(last[0]) > MAX_BOARD_BYTES:
        return None
    try:
        return reread_board(path, last[0].decode("utf-8"), last[1], text)
    except Exception:  # noqa: BLE001 - any doubt: the whole text is read instead
        return None


StatusParse = tuple[str | None, SessionStatus | None, Diagnostic | None]


def seed_status(path: str, data: bytes, parsed: StatusParse) -> None:
    _seed(("status", path, data), parsed, len(data))


def remember_edited_board(path: str, data: bytes, config: Config, board: Board | None) -> None:
    """An edit's own reading of the board it wrote (files/board.py `edit_board`), so the state
    after the edit (the dashboard's snapshot, the parse cache) does not parse it again. Only what
    `decode_board` would answer from a parse: a board over the size limit reads otherwise."""
    if board is not None and len(data) <= MAX_BOARD_BYTES:
        seed_board(path, data, config, board)


def is_seeded_board(path: str, data: bytes, config: Config) -> bool:
    return ("board", path, data, tuple(config.phases)) in _seeded


def is_seeded_status(path: str, data: bytes) -> bool:
    return ("status", path, data) in _seeded


def _seed(key: tuple[object, ...], value: object, size: int) -> None:
    global _seeded_bytes
    if len(_seeded) >= _SEEDED_MAX or _seeded_bytes + size > _SEEDED_BYTES:
        _seeded.clear()
        _seeded_bytes = 0
    _seeded[key] = value
    _seeded_bytes += size


def decode_board(path: str, data: bytes, config: Config) -> Board:
    """A board from its bytes; the same bytes are parsed once per process (treat it as read-only)."""
    phases = tuple(config.phases)
    seeded = _seeded.get(("board", path, data, phases))
    if isinstance(seeded, Board):
        return seeded
    return _decode_board_cached(path, data, phases)


# A parsed 500-task board holds about 4 MB of models: a poll loop on a busy branch sees a new
# version of a board at every claim, so only the recent ones are kept (512 could hold 2 GB).
@functools.lru_cache(maxsize=64)
def _decode_board_cached(path: str, data: bytes, phases: tuple[str, ...]) -> Board:
    if len(data) > MAX_BOARD_BYTES:
        board = unreadable_board(
            path,
            f"board is {len(data)} bytes, over the {MAX_BOARD_BYTES // (1024 * 1024)} MiB limit; "
            "split it into several boards (one per phase)",
        )
        board.diagnostics[0].code = "board-too-large"
        return board
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return unreadable_board(path, f"not UTF-8 text (byte {exc.start}); save the file as UTF-8")
    board = _read_from_last(path, phases, text) or parse_board(path, text, list(phases))
    _remember_read(path, phases, data, board)
    return board


def read_status(path: str, data: bytes) -> tuple[str | None, SessionStatus | None, Diagnostic | None]:
    """A status file from its bytes, parsed once per process (treat the result as read-only)."""
    seeded = _seeded.get(("status", path, data))
    if isinstance(seeded, tuple):
        return seeded
    return _read_status_cached(path, data)


def _read_status_now(path: str, data: bytes) -> tuple[str | None, SessionStatus | None, Diagnostic | None]:
    session = session_from_path(path)
    if session is None:
        return (
            None,
            None,
            Diagnostic(
                severity="warning",
                file=path,
                code="bad-status-name",
                message="file name is not a valid session name (lowercase letters, digits, . _ -)",
            ),
        )
    try:
        status = parse_status(path, data)
    except InvalidData as exc:
        return (
            session,
            None,
            Diagnostic(
                severity="error", file=path, line=exc.line_no or 0, code="unreadable", message=exc.reason
            ),
        )
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop every command
        message = f"status file could not be read: {type(exc).__name__}"
        return session, None, Diagnostic(severity="error", file=path, code="unreadable", message=message)
    return session, status, None


# The recent parses by content: a loop sees each session's file at every tip. Files of up to
# LOADED_TEXT_MAX bytes only (as the YAML cache, files/yamlsafe.py): at most 64 MB of texts.
_read_status_cached = kept_when_small(4096, LOADED_TEXT_MAX)(_read_status_now)


def read_config(files: Mapping[str, bytes]) -> tuple[Config, list[Diagnostic]]:
    config, diags = _read_config_cached(files.get(CONFIG_PATH))
    return config, list(diags)


def config_or_raise(files: Mapping[str, bytes]) -> Config:
    """The branch's config; InvalidData (exit 6, file:line) when it is bad: a typo or an
    out-of-range value must never quietly become the defaults for some commands."""
    config, diags = _read_config_cached(files.get(CONFIG_PATH))
    if diags:
        try:
            parse_config(files.get(CONFIG_PATH))  # raises again, with its own hint
        except InvalidData as exc:
            exc.hint = (
                f"{exc.hint}; every command refuses until ifcoord.yaml is fixed"
                if exc.hint
                else ("fix ifcoord.yaml on the branch; every command refuses until then")
            )
            raise
    return config


@functools.lru_cache(maxsize=64)
def _read_config_cached(data: bytes | None) -> tuple[Config, tuple[Diagnostic, ...]]:
    try:
        return parse_config(data), ()
    except InvalidData as exc:
        diag = Diagnostic(
            severity="error", file=CONFIG_PATH, line=exc.line_no or 0, code="bad-config", message=exc.reason
        )
        return Config(), (diag,)


def build_snapshot(files: Mapping[str, bytes], commit: str | None = None) -> Snapshot:
    """Parse every board and status file among `files` (path -> bytes)."""
    config, diags = read_config(files)
    boards: list[Board] = []
    statuses: dict[str, SessionStatus] = {}
    status_paths: dict[str, str] = {}
    for path in sorted(files):
        if path == DASHBOARD_FALLBACK:
            continue  # the dashboard's second home is never a board, whatever the globs say
        if is_board_path(config, path):
            boards.append(decode_board(path, files[path], config))
        elif is_status_path(config, path):
            session, status, diag = read_status(path, files[path])
            if diag:
                diags.append(diag)
            if session and session in status_paths:
                # Reads would use one file and writes the other: a live session would look
                # stale. The first (in path order) is its truth; the other is never read.
                diags.append(
                    Diagnostic(
                        severity="error", file=path, code="duplicate-status",
                        message=f"a second STATUS file for session {session} (the first is "
                        f"{status_paths[session]}); it is ignored: delete one of them",
                    )
                )  # fmt: skip
                continue
            if session:
                status_paths[session] = path
            if session and status:
                statuses[session] = status
    diags.extend(_dashboard_notes(files))
    return Snapshot(
        commit=commit,
        config=config,
        boards=boards,
        statuses=statuses,
        status_paths=status_paths,
        diagnostics=diags,
    )


DASHBOARD_PATH = "boards/README.md"
# Where the dashboard goes when boards/README.md is a person's own file (it lacks the marker).
DASHBOARD_FALLBACK = "IFCOORD-DASHBOARD.md"
DASHBOARD_MARK = "<!-- generated by ifcoord: do not edit, your changes would be overwritten -->"


def is_generated(data: bytes | None) -> bool:
    """Whether a dashboard file carries ifcoord's marker on its first line (or is absent)."""
    return data is None or data.split(b"\n", 1)[0].strip() == DASHBOARD_MARK.encode()


def dashboard_target(raw: Mapping[str, bytes], blocked: frozenset[str] = frozenset()) -> str | None:
    """Where the dashboard may be written: boards/README.md when it is absent or ifcoord's own,
    else IFCOORD-DASHBOARD.md; None when neither may be (a person's file or a link at both)."""
    for path in (DASHBOARD_PATH, DASHBOARD_FALLBACK):
        if path not in blocked and is_generated(raw.get(path)):
            return path
    return None


def _dashboard_notes(files: Mapping[str, bytes]) -> list[Diagnostic]:
    if is_generated(files.get(DASHBOARD_PATH)):
        return []
    target = DASHBOARD_FALLBACK if is_generated(files.get(DASHBOARD_FALLBACK)) else None
    where = f"the dashboard is written to {target} instead" if target else "no dashboard is written"
    return [
        Diagnostic(
            severity="note", file=DASHBOARD_PATH, code="dashboard-moved",
            message=f"{DASHBOARD_PATH} was not written by ifcoord (no generated marker), so it is "
            f"left alone; {where}",
        )
    ]  # fmt: skip


def relevant_paths(config: Config, paths: Iterable[str]) -> list[str]:
    """The files ifcoord reads: config, boards, status files, and the dashboard it writes."""
    return [
        p for p in paths
        if p in (CONFIG_PATH, DASHBOARD_PATH, DASHBOARD_FALLBACK)
        or is_board_path(config, p) or is_status_path(config, p)
    ]  # fmt: skip


def load_folder(root: Path) -> BranchState:
    """A folder laid out like the branch (boards/, status/, legacy names at the top).

    Symlinks are not followed: a link pointing out of the folder would show files from elsewhere
    as if they were boards (and inside, it would be read twice)."""
    if not root.is_dir():
        raise InvalidData(f"{root} is not a folder", hint="pass --dir with a folder holding boards/")
    cfg_file = root / CONFIG_PATH
    config_files = (
        {CONFIG_PATH: cfg_file.read_bytes()} if cfg_file.is_file() and not cfg_file.is_symlink() else {}
    )
    config = config_or_raise(config_files)
    present: dict[str, Path] = {}
    skipped: list[str] = []
    for folder, dirnames, filenames in os.walk(root):  # os.walk does not follow links to folders
        base = Path(folder)
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in filenames:
            f = base / name
            rel = f.relative_to(root).as_posix()
            if f.is_symlink() or not f.is_file():
                skipped.append(rel)
            else:
                present[rel] = f
        skipped += [(base / d).relative_to(root).as_posix() for d in dirnames if (base / d).is_symlink()]
    raw = {rel: present[rel].read_bytes() for rel in relevant_paths(config, present)}
    snapshot = build_snapshot(raw)
    snapshot.diagnostics += _skipped_entries(config, skipped, "a symlink or not a regular file")
    return BranchState(snapshot, raw, frozenset(skipped))


def _skipped_entries(config: Config, paths: Iterable[str], what: str) -> list[Diagnostic]:
    return [
        Diagnostic(
            severity="warning",
            file=p,
            code="not-a-file",
            message=f"{what}: not read as a board or STATUS file, and never written over",
        )  # fmt: skip
        for p in sorted(paths)
        if relevant_paths(config, [p])
    ]


def _folders(paths: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for p in paths:
        head = p.rpartition("/")[0]
        while head and head not in out:
            out.add(head)
            head = head.rpartition("/")[0]
    return out


class TreeSource(Protocol):
    """What the loader needs of a store (git/store.py's BranchStore): the core does not import git."""

    git_dir: Path

    def list_tree(self, commit: str) -> Mapping[str, Any]: ...

    def read_object(self, sha: str) -> bytes: ...

    def read_objects(self, shas: Iterable[str]) -> dict[str, bytes]: ...


# The state at each recently loaded commit, shared by every loader of the process (200 sessions
# in one process read the same tip: one build, not 200). Bounded: a loop runs for days.
_by_commit: OrderedDict[str, BranchState] = OrderedDict()
_BY_COMMIT_MAX = 16
_by_commit_lock = threading.Lock()
BUILDS = {"commits": 0}  # states built from a commit in this process (tests and the bench count them)


_building: dict[str, threading.Lock] = {}  # one builder per commit; the others wait for its state


def _shared_state(commit: str) -> BranchState | None:
    with _by_commit_lock:
        state = _by_commit.get(commit)
        if state is not None:
            _by_commit.move_to_end(commit)
        return state


def _share_state(commit: str, state: BranchState) -> BranchState:
    """Keep `state` for every loader; when another thread built it first, theirs is the one."""
    with _by_commit_lock:
        kept = _by_commit.setdefault(commit, state)
        _by_commit.move_to_end(commit)
        while len(_by_commit) > _BY_COMMIT_MAX:
            _by_commit.popitem(last=False)
        return kept


def forget_parses() -> None:
    """Drop every parse and state this process holds in memory (what a new process starts with)."""
    global _seeded_bytes
    _decode_board_cached.cache_clear()
    _read_status_cached.cache_clear()
    _seeded.clear()
    _seeded_bytes = 0
    _last_read.clear()
    with _by_commit_lock:
        _by_commit.clear()


class SnapshotLoader:
    """Reads branch commits through a BranchStore, reusing parses of unchanged blobs; the state
    at a commit is built once per process (BranchState and its Snapshot are shared: read-only)."""

    def __init__(self, store: TreeSource) -> None:
        from ifcoord.core.parsecache import ParseCache, cache_enabled, parse_home

        self.store = store
        self._blobs: dict[str, bytes] = {}
        git_dir = getattr(store, "git_dir", None)
        self.parse_cache = ParseCache(parse_home(git_dir)) if git_dir and cache_enabled() else None

    def load(self, commit: str | None) -> BranchState:
        if commit is None:
            return BranchState(Snapshot(), {})
        shared = _shared_state(commit)
        if shared is not None:
            return shared
        # When a tip moves, every loop of the process looks at it at once: one builds it.
        with _by_commit_lock:
            building = _building.setdefault(commit, threading.Lock())
        try:
            with building:
                return _shared_state(commit) or self._build(commit)
        finally:
            with _by_commit_lock:
                _building.pop(commit, None)

    def _build(self, commit: str) -> BranchState:
        entries = self.store.list_tree(commit)
        special = {p for p, e in entries.items() if e.mode not in REGULAR_MODES}
        shas = {path: entry.sha for path, entry in entries.items() if path not in special}
        if CONFIG_PATH in special:
            raise InvalidData(
                "is a symlink or a gitlink, not a file", file=CONFIG_PATH,
                hint="replace it with the file itself (docs/board-format.md, ifcoord.yaml, lists every key)",
            )  # fmt: skip
        config = config_or_raise({CONFIG_PATH: self._blob(shas[CONFIG_PATH])} if CONFIG_PATH in shas else {})
        wanted = relevant_paths(config, shas)
        self._blobs.update(self.store.read_objects(shas[p] for p in wanted if shas[p] not in self._blobs))
        raw = {p: self._blobs[shas[p]] for p in wanted}
        # keep only this tree's blobs, so a loop running for days does not grow
        self._blobs = {shas[p]: raw[p] for p in wanted}
        if self.parse_cache is not None:
            self._warm(config, shas, raw)
        snapshot = build_snapshot(raw, commit)
        kinds = {p: "a gitlink (submodule)" if entries[p].mode == 0o160000 else "a symlink" for p in special}
        for p in sorted(special):
            snapshot.diagnostics += _skipped_entries(config, [p], f"{kinds[p]}")
        BUILDS["commits"] += 1
        return _share_state(commit, BranchState(snapshot, raw, frozenset(special | _folders(entries))))

    def _warm(self, config: Config, blobs: Mapping[str, str], raw: Mapping[str, bytes]) -> None:
        """Make every board and status file among `raw` parse from the on-disk cache: entries
        found are seeded into the in-process memo; the rest are parsed now, seeded, and written
        for the next process. What this process already holds is neither read nor validated
        again (a command loads the branch before and after its commit)."""
        cache = self.parse_cache
        assert cache is not None
        # Building thousands of models allocates without freeing: the collector would only walk them.
        enabled = gc.isenabled()
        gc.disable()
        try:
            for path, data in raw.items():
                blob = blobs[path]
                if is_board_path(config, path):
                    if is_seeded_board(path, data, config):
                        continue
                    board = cache.get_board(path, blob, config)
                    if board is None:
                        board = decode_board(path, data, config)
                        cache.put_board(path, blob, config, board)
                    seed_board(path, data, config, board)
                elif is_status_path(config, path):
                    if is_seeded_status(path, data):
                        continue
                    parsed = cache.get_status(path, blob)
                    if parsed is None:
                        parsed = read_status(path, data)
                        cache.put_status(path, blob, parsed)
                    seed_status(path, data, parsed)
        finally:
            if enabled:
                gc.enable()

    def keep(self, config: Config, written: Mapping[str, tuple[str, bytes | None]]) -> None:
        """Put the parses of the boards and status files a commit of this process wrote (path ->
        (blob id, bytes); None for a deleted file) in the on-disk cache: the next command reads
        them at the new tip, and would otherwise parse the board this one just edited. The
        parses are mostly at hand already (the edit's own reading, the dashboard's snapshot)."""
        cache = self.parse_cache
        if cache is None:
            return
        for path, (blob, data) in written.items():
            if data is None or path == DASHBOARD_FALLBACK:
                continue
            if is_board_path(config, path):
                cache.put_board(path, blob, config, decode_board(path, data, config))
            elif is_status_path(config, path):
                cache.put_status(path, blob, read_status(path, data))

    def _blob(self, sha: str) -> bytes:
        if sha not in self._blobs:
            self._blobs[sha] = self.store.read_object(sha)
        return self._blobs[sha]
