"""BranchStore over real remotes: private refs, plumbing commits, compare-and-swap pushes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git

from ifcoord.errors import RemoteUnreachable, UsageError
from ifcoord.git.runner import find_repository
from ifcoord.git.store import BranchStore, PushOutcome


def store_for(clone: Path, remote: str = "origin", branch: str = "ifcoord") -> BranchStore:
    git_dir, _ = find_repository(clone)
    return BranchStore(git_dir, remote, branch)


def user_view(clone: Path) -> tuple[str, str, str, str]:
    """Everything of the user's that ifcoord must never touch."""
    return (
        git("rev-parse", "HEAD", cwd=clone),
        git("status", "--porcelain", cwd=clone),
        git("for-each-ref", "refs/heads", "refs/remotes", cwd=clone),
        git("symbolic-ref", "HEAD", cwd=clone),
    )


def test_fetch_of_a_missing_branch_is_none(clone: Path) -> None:
    assert store_for(clone).fetch() is None


def test_commit_and_push_create_the_branch_without_touching_the_user(clone: Path, bare_remote: Path) -> None:
    (clone / "wip.txt").write_text("uncommitted work\n")
    before = user_view(clone)
    store = store_for(clone)
    commit = store.write_commit(
        None, {"boards/A.md": b"# A\n", "ifcoord.yaml": b""}, "ifcoord: init", "tester"
    )
    assert store.push(commit, None) is PushOutcome.LANDED
    assert git("rev-parse", "refs/heads/ifcoord", cwd=bare_remote) == commit
    assert git("show", f"{commit}:boards/A.md", cwd=bare_remote) == "# A"
    assert user_view(clone) == before
    assert store.local_tip() == commit


def test_write_commit_applies_changes_and_deletions_to_the_parent_tree(clone: Path) -> None:
    store = store_for(clone)
    first = store.write_commit(None, {"a/x.md": b"1", "a/y.md": b"2", "b.md": b"3"}, "one", "t")
    second = store.write_commit(first, {"a/x.md": b"changed", "b.md": None, "a/z/new.md": b"n"}, "two", "t")
    files = store.read_files(second)
    assert files == {"a/x.md": b"changed", "a/y.md": b"2", "a/z/new.md": b"n"}
    # git itself agrees the tree is well formed
    assert git("fsck", "--strict", "--no-dangling", "--no-progress", cwd=clone) == ""
    assert git("log", "--format=%s", second, cwd=clone).splitlines() == ["two", "one"]


def test_tree_entries_sort_like_git(clone: Path) -> None:
    store = store_for(clone)
    commit = store.write_commit(None, {"a.b": b"1", "a/c": b"2", "a-b": b"3"}, "sorted", "t")
    # git fsck refuses trees whose entries are out of order
    git("fsck", "--strict", "--no-dangling", "--no-progress", cwd=clone)
    assert sorted(store.read_files(commit)) == ["a-b", "a.b", "a/c"]


def test_push_with_a_stale_expected_tip_is_rejected(clone: Path, bare_remote: Path, tmp_path: Path) -> None:
    store = store_for(clone)
    base = store.write_commit(None, {"f": b"0"}, "base", "t")
    assert store.push(base, None) is PushOutcome.LANDED
    ours = store.write_commit(base, {"f": b"ours"}, "ours", "t")
    # another clone moves the branch first
    other = tmp_path / "other"
    git("clone", "-q", str(bare_remote), str(other))
    other_store = store_for(other)
    tip = other_store.fetch()
    theirs = other_store.write_commit(tip, {"f": b"theirs"}, "theirs", "t")
    assert other_store.push(theirs, tip) is PushOutcome.LANDED
    assert store.push(ours, base) is PushOutcome.REJECTED
    assert git("rev-parse", "refs/heads/ifcoord", cwd=bare_remote) == theirs


def test_creating_an_existing_branch_is_rejected(clone: Path) -> None:
    store = store_for(clone)
    one = store.write_commit(None, {"f": b"1"}, "one", "t")
    two = store.write_commit(None, {"f": b"2"}, "two", "t")
    assert store.push(one, None) is PushOutcome.LANDED
    assert store.push(two, None) is PushOutcome.REJECTED


def test_sync_fetches_only_when_the_tip_moved(clone: Path) -> None:
    store = store_for(clone)
    commit = store.write_commit(None, {"f": b"1"}, "one", "t")
    store.push(commit, None)
    calls = store.git.calls
    assert store.sync() == commit
    assert store.git.calls - calls == 1  # one ls-remote, no fetch


def test_unreachable_remote_raises_remote_unreachable(tmp_path: Path) -> None:
    clone = tmp_path / "c"
    git("init", "-q", str(clone))
    store = BranchStore(find_repository(clone)[0], str(tmp_path / "nowhere.git"), "ifcoord")
    with pytest.raises(RemoteUnreachable) as info:
        store.fetch()
    assert "unreachable" in info.value.line()
    with pytest.raises(RemoteUnreachable):
        store.remote_tip()


def test_a_hook_refusal_is_a_usage_error_not_a_retry(clone: Path, bare_remote: Path) -> None:
    hook = bare_remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'no pushes here' >&2\nexit 1\n")
    hook.chmod(0o755)
    store = store_for(clone)
    commit = store.write_commit(None, {"f": b"1"}, "one", "t")
    with pytest.raises(UsageError) as info:
        store.push(commit, None)
    assert "refused" in info.value.line()


def test_works_over_git_daemon(git_daemon: tuple[str, Path], tmp_path: Path) -> None:
    url, bare = git_daemon
    clone = tmp_path / "c"
    git("init", "-q", str(clone))
    store = BranchStore(find_repository(clone)[0], url, "ifcoord")
    assert store.fetch() is None
    commit = store.write_commit(None, {"f": b"1"}, "one", "t")
    assert store.push(commit, None) is PushOutcome.LANDED
    assert store.remote_tip() == commit
    assert git("rev-parse", "refs/heads/ifcoord", cwd=bare) == commit


def test_history_lists_messages_newest_first(clone: Path) -> None:
    store = store_for(clone)
    one = store.write_commit(None, {"f": b"1"}, "one\n\nIfcoord-Op: init", "t")
    two = store.write_commit(one, {"f": b"2"}, "two", "t")
    rows = store.history(two)
    assert [r[0] for r in rows] == [two, one]
    assert rows[1][2].startswith("one\n\nIfcoord-Op: init")


def test_find_repository_from_a_subfolder_and_outside(clone: Path, tmp_path: Path) -> None:
    sub = clone / "deep" / "er"
    sub.mkdir(parents=True)
    git_dir, top = find_repository(sub)
    assert git_dir == (clone / ".git").resolve()
    assert top == clone.resolve()
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(UsageError):
        find_repository(outside)
