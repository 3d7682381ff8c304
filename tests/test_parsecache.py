"""The on-disk parse cache: a second process parses nothing unchanged, entries are keyed by
content, a torn or foreign entry is a miss, the folder stays bounded, and results equal a parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifcoord.core import snapshot
from ifcoord.core.parsecache import ParseCache, parser_fingerprint
from ifcoord.core.snapshot import SnapshotLoader, build_snapshot
from ifcoord.git.runner import find_repository
from ifcoord.git.store import BranchStore
from tests.conftest import git, make_clone

BOARD = (
    "# Phase 0: cache\n\n## P0.1: First\n\n**Status:** open\n**Depends on:** None\n\n"
    "**Milestones:**\n- [ ] 50% - half\n- [ ] 100% - all\n\n## P0.2: Second\n\n**Status:** open\n"
    "**Depends on:** P0.1\n"
)
STATUS = "session: alice\nstatus: working\ncurrent_task: P0.1\nepoch: 1\nprogress: 10\nextra_key: kept\n"


def commit_files(store: BranchStore, files: dict[str, bytes], parent: str | None = None) -> str:
    return store.write_commit(parent, files, "test", "tester")


@pytest.fixture
def store(clone: Path) -> BranchStore:
    git_dir, _ = find_repository(clone)
    return BranchStore(git_dir, "origin", "ifcoord")


def fresh_process() -> None:
    """What a new process starts with: no parse in memory (nor any state built from a commit)."""
    snapshot.forget_parses()


def counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []
    board, status = snapshot.parse_board, snapshot.parse_status

    def parse_board(path: str, *args: object) -> object:
        parsed.append(path)
        return board(path, *args)  # type: ignore[arg-type]

    def parse_status(path: str, data: bytes) -> object:
        parsed.append(path)
        return status(path, data)

    monkeypatch.setattr(snapshot, "parse_board", parse_board)
    monkeypatch.setattr(snapshot, "parse_status", parse_status)
    return parsed


def test_a_second_process_parses_only_the_blobs_that_changed(
    store: BranchStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"boards/PHASE-0.md": BOARD.encode(), "status/alice.yaml": STATUS.encode()}
    first = commit_files(store, files)
    parsed = counting_parses(monkeypatch)
    fresh_process()
    cold = SnapshotLoader(store).load(first)
    assert sorted(parsed) == ["boards/PHASE-0.md", "status/alice.yaml"]

    parsed.clear()
    fresh_process()
    warm = SnapshotLoader(store).load(first)
    assert parsed == []
    assert warm.snapshot == cold.snapshot == build_snapshot(cold.raw, first)
    assert warm.snapshot.statuses["alice"].model_extra == {"extra_key": "kept"}

    second = commit_files(store, {"status/alice.yaml": STATUS.replace("10", "50").encode()}, first)
    fresh_process()
    later = SnapshotLoader(store).load(second)
    assert parsed == ["status/alice.yaml"]
    assert later.snapshot.statuses["alice"].progress == 50


def test_entries_live_in_the_users_cache_and_a_torn_entry_is_a_miss(
    store: BranchStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = commit_files(store, {"boards/PHASE-0.md": BOARD.encode()})
    fresh_process()
    SnapshotLoader(store).load(first)
    folder = Path.home() / ".cache" / "ifcoord" / "parses" / f"parse-{parser_fingerprint()}"
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    assert not (store.git_dir / "ifcoord").exists() or not any((store.git_dir / "ifcoord").glob("parse-*"))
    entries[0].write_bytes(b'{"path": "boards/PHASE-0.md", "pha')  # a writer died mid-file
    parsed = counting_parses(monkeypatch)
    fresh_process()
    state = SnapshotLoader(store).load(first)
    assert parsed == ["boards/PHASE-0.md"]
    assert [t.id for t in state.snapshot.tasks().values()] == ["P0.1", "P0.2"]


def test_a_session_in_another_clone_parses_nothing_another_clone_parsed(
    bare_remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions of one machine in clones of their own read each new board version once between them."""
    stores = []
    for name in ("a", "b"):
        git_dir, _ = find_repository(make_clone(bare_remote, tmp_path / name))
        stores.append(BranchStore(git_dir, "origin", "ifcoord"))
    files = {"boards/PHASE-0.md": BOARD.encode(), "status/alice.yaml": STATUS.encode()}
    first = commit_files(stores[0], files)
    git("push", "-q", str(bare_remote), f"{first}:refs/heads/ifcoord", cwd=stores[0].git_dir)
    fresh_process()
    SnapshotLoader(stores[0]).load(first)
    parsed = counting_parses(monkeypatch)
    fresh_process()
    tip = stores[1].fetch()
    state = SnapshotLoader(stores[1]).load(tip)
    assert tip == first and parsed == []
    assert state.snapshot.statuses["alice"].progress == 10


def test_a_clone_keeps_its_parses_itself_when_the_users_cache_cannot_be_written(
    store: BranchStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    first = commit_files(store, {"boards/PHASE-0.md": BOARD.encode()})
    loader = SnapshotLoader(store)
    assert loader.parse_cache is not None and loader.parse_cache.home == store.git_dir / "ifcoord"
    fresh_process()
    loader.load(first)
    parsed = counting_parses(monkeypatch)
    fresh_process()
    SnapshotLoader(store).load(first)
    assert parsed == []


def test_an_entry_of_another_parser_version_is_never_read(tmp_path: Path) -> None:
    import os
    import time

    cache = ParseCache(tmp_path)
    old, recent = tmp_path / "parse-0-000000000000", tmp_path / "parse-0-111111111111"
    for folder in (old, recent):
        folder.mkdir()
        (folder / "x").write_text("stale")
    day_ago = time.time() - 24 * 3600 - 60
    os.utime(old, (day_ago, day_ago))
    from ifcoord.models import Board

    cache.put_board("boards/A.md", "a" * 40, snapshot.Config(), Board(path="boards/A.md", phase="A"))
    assert not old.exists()  # nobody wrote to it for a day
    assert recent.exists()  # maybe another version of ifcoord in use on this machine: left alone
    assert cache.root.name == f"parse-{parser_fingerprint()}"


def test_the_folder_is_pruned_to_its_bound(tmp_path: Path) -> None:
    from ifcoord.models import Board

    cache = ParseCache(tmp_path, max_entries=10)
    for i in range(65):
        cache.put_board(f"boards/B{i}.md", f"{i:040d}", snapshot.Config(), Board(path=f"b{i}", phase="B"))
    left = [p for p in cache.root.iterdir() if not p.name.startswith(".")]
    assert 0 < len(left) <= 10 + 32  # looked at every 32 writes
    assert cache.get_board("boards/B64.md", f"{64:040d}", snapshot.Config()) is not None
    assert cache.get_board("boards/B0.md", f"{0:040d}", snapshot.Config()) is None


def test_the_folder_is_pruned_to_its_byte_bound(tmp_path: Path) -> None:
    from ifcoord.models import Board

    cache = ParseCache(tmp_path, max_bytes=2000)
    for i in range(40):
        cache.put_board(f"boards/B{i}.md", f"{i:040d}", snapshot.Config(), Board(path="x" * 200, phase="B"))
    assert sum(p.stat().st_size for p in cache.root.iterdir()) <= 2000 + 32 * 300


def test_the_cache_can_be_turned_off(store: BranchStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IFCOORD_PARSE_CACHE", "0")
    first = commit_files(store, {"boards/PHASE-0.md": BOARD.encode()})
    assert SnapshotLoader(store).parse_cache is None
    SnapshotLoader(store).load(first)
    assert not (store.git_dir / "ifcoord").exists() or not any((store.git_dir / "ifcoord").glob("parse-*"))
    assert not (Path.home() / ".cache" / "ifcoord" / "parses").exists() or not any(
        (Path.home() / ".cache" / "ifcoord" / "parses").glob("parse-*/*")
    )


def test_a_second_load_in_the_same_process_reads_no_entry_again(
    store: BranchStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = commit_files(store, {"boards/PHASE-0.md": BOARD.encode(), "status/alice.yaml": STATUS.encode()})
    fresh_process()
    loader = SnapshotLoader(store)
    loader.load(first)
    assert loader.parse_cache is not None
    reads = loader.parse_cache.hits + loader.parse_cache.misses
    parsed = counting_parses(monkeypatch)
    loader.load(first)
    assert loader.parse_cache.hits + loader.parse_cache.misses == reads
    assert parsed == []


def big_board(tasks: int) -> str:
    parts = ["# Phase 0: cache\n"]
    for i in range(1, tasks + 1):
        parts.append(f"## P0.{i}: Task {i}\n\n**Status:** open\n**Milestones:**\n- [ ] 50% - half\n")
    return "\n".join(parts)


def test_a_claim_reads_no_board_in_full_and_the_next_process_parses_nothing(
    bare_remote: Path, clone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ifcoord.files import board as boardfile
    from ifcoord.files.config import render_default_config
    from testing.branch import HandBranch, ifcoord

    hand = HandBranch(bare_remote, tmp_path)
    files = {
        "ifcoord.yaml": render_default_config(),
        "boards/PHASE-0.md": big_board(40),
        "status/alice.yaml": STATUS,
    }
    hand.write(files)
    fresh_process()
    assert ifcoord("board", "--json", cwd=clone).code == 0  # the first read fills the cache

    scans: list[str] = []
    scan = boardfile._scan
    monkeypatch.setattr(boardfile, "_scan", lambda path, *a: scans.append(path) or scan(path, *a))
    fresh_process()
    claimed = ifcoord("claim", "P0.20", "-s", "bob", cwd=clone)
    assert claimed.code == 0, claimed.err
    assert scans == []  # the edit read P0.20's section only; the dashboard took the edit's reading
    board = hand.show("boards/PHASE-0.md").decode()
    assert "**Owner:** bob" in board.split("## P0.20:")[1].split("## P0.21:")[0]

    parsed = counting_parses(monkeypatch)
    fresh_process()
    after = ifcoord("next", "-s", "bob", "--json", cwd=clone)
    assert after.code == 0, after.err
    assert parsed == []  # the claim put its board and bob's new STATUS file in the cache
    assert '"id": "P0.20"' in after.out and '"kind": "current"' in after.out


def test_a_board_entry_leaves_out_unset_fields_and_reads_back_equal(tmp_path: Path) -> None:
    from ifcoord.files.board import parse_board
    from ifcoord.models import Config

    board = parse_board("boards/PHASE-0.md", BOARD + "**Owner:** bob\n**Claimed at:** 2025-01-01T00:00:00Z\n")
    cache = ParseCache(tmp_path)
    cache.put_board("boards/PHASE-0.md", "b" * 40, Config(), board)
    (entry,) = [p for p in cache.root.iterdir() if not p.name.startswith(".")]
    assert b'"owner":null' not in entry.read_bytes() and b'"owner":"bob"' in entry.read_bytes()
    assert cache.get_board("boards/PHASE-0.md", "b" * 40, Config()) == board


def test_every_field_of_a_board_that_may_be_none_is_none_by_default() -> None:
    """What lets a board entry leave out its None fields: reading it back gives None again."""
    import types
    import typing

    from pydantic import BaseModel

    from ifcoord.models import Board

    seen: set[type] = set()
    todo: list[type] = [Board]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            args = typing.get_args(info.annotation)
            if info.annotation is None or type(None) in args:
                assert info.default is None and info.default_factory is None, f"{model.__name__}.{name}"
            for arg in (info.annotation, *args, *(a for x in args for a in typing.get_args(x))):
                if (
                    isinstance(arg, type)
                    and issubclass(arg, BaseModel)
                    and not isinstance(arg, types.GenericAlias)
                ):
                    todo.append(arg)
    assert {m.__name__ for m in seen} >= {"Board", "Task", "Diagnostic"}


def test_milestones_and_field_lines_keep_their_none_items_in_a_board_entry(tmp_path: Path) -> None:
    """Milestones and field lines are tuples, written as JSON arrays: leaving out a None item
    would shift the rest, so the entry keeps them, and reads back equal."""
    from ifcoord.files.board import parse_board
    from ifcoord.models import Config

    text = "# Phase 0\n\n## P0.1: One\n\n**Milestones:**\n- [ ] no percent here\n- [x] 50% - half\n"
    board = parse_board("boards/PHASE-0.md", text)
    (task,) = board.tasks
    assert [m.percent for m in task.milestones] == [None, 50]
    cache = ParseCache(tmp_path)
    cache.put_board("boards/PHASE-0.md", "c" * 40, Config(), board)
    (entry,) = [p for p in cache.root.iterdir() if not p.name.startswith(".")]
    assert b'["no percent here",null,false,' in entry.read_bytes()
    back = cache.get_board("boards/PHASE-0.md", "c" * 40, Config())
    assert back == board
    assert back is not None and back.tasks[0].milestones[0].percent is None
