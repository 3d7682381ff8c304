"""git:// spoken without git (git/wire.py), against a real `git daemon`: the tip as ls-remote reads
it, a push that lands, loses its compare-and-swap (before sending, or in the server), is refused by
a hook, or is handed back to git; packs that git itself reads."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port, git, make_clone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ifcoord.errors import UsageError
from ifcoord.git import objects, wire
from ifcoord.git.runner import find_repository
from ifcoord.git.store import BranchStore, PushOutcome


def store_for(clone: Path, remote: str) -> BranchStore:
    git_dir, _ = find_repository(clone)
    return BranchStore(git_dir, remote, "ifcoord")


@pytest.fixture
def daemon_clone(git_daemon: tuple[str, Path], tmp_path: Path) -> tuple[str, Path, Path]:
    url, bare = git_daemon
    return url, bare, make_clone(url, tmp_path / "clone")


@pytest.fixture
def git_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, ...]]]:
    """The git commands the runner starts (git itself still runs them)."""
    from ifcoord.git import runner

    calls: list[tuple[str, ...]] = []
    real = runner.GitRunner.run

    def run(self: runner.GitRunner, *args: str, **kw):  # type: ignore[no-untyped-def]
        calls.append(args)
        return real(self, *args, **kw)

    monkeypatch.setattr(runner.GitRunner, "run", run)
    yield calls


def commands(calls: list[tuple[str, ...]]) -> list[str]:
    """The git commands that talked to the remote."""
    return [c[0] for c in calls if c[0] in ("push", "fetch", "ls-remote")]


def landed_first(store: BranchStore) -> str:
    """The branch's first commit (a.md = 1), pushed: its sha."""
    first = store.write_commit(None, {"a.md": b"1\n"}, "one", "t")
    assert store.push(first, None) is PushOutcome.LANDED
    return first


def hook(bare: Path, name: str, body: str) -> None:
    path = bare / "hooks" / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("git://127.0.0.1:9555/remote.git", ("127.0.0.1", 9555, "/remote.git", "127.0.0.1:9555")),
        ("git://example.org/team/board.git", ("example.org", 9418, "/team/board.git", "example.org")),
        ("git://[::1]:7000/r.git", ("::1", 7000, "/r.git", "[::1]:7000")),
        ("git://host/~alice/r.git", ("host", 9418, "/~alice/r.git", "host")),
        ("https://example.org/r.git", None),
        ("ssh://git@example.org/r.git", None),
        ("/srv/git/r.git", None),
        ("git://host", None),  # no path
        ("git://host/", None),
        ("git://user@host/r.git", None),
        ("git://host:port/r.git", None),
        ("git://host:70000/r.git", None),
        ("git://host/a%20b.git", None),  # git's quoting rules are git's: let it
        ("git://[::1/r.git", None),
    ],
)
def test_only_plain_git_urls_are_spoken(url: str, expected: tuple[str, int, str, str] | None) -> None:
    address = wire.daemon_address(url)
    got = None if address is None else (address.host, address.port, address.path, address.host_field)
    assert got == expected


@pytest.mark.parametrize(
    ("config", "environ", "expected"),
    [
        (
            {"remote.origin.url": "git://h/r.git", "protocol.version": "2", "protocol.file.allow": "always"},
            {},
            True,
        ),
        ({"url.git://mirror/.insteadof": "git://h/"}, {}, False),
        ({"url.ssh://h/.pushinsteadof": "git://h/r"}, {}, False),
        ({"url.git://mirror/.insteadof": "git://elsewhere/"}, {}, True),  # not this URL
        ({"core.gitproxy": "my-proxy"}, {}, False),
        ({"protocol.git.allow": "never"}, {}, False),
        ({"protocol.allow": "user"}, {}, False),
        ({}, {"GIT_PROXY_COMMAND": "my-proxy"}, False),
        ({}, {"GIT_ALLOW_PROTOCOL": "https"}, False),
        ({}, {"IFCOORD_GIT_WIRE": "0"}, False),
        ({}, {"IFCOORD_GIT_WIRE": "1"}, True),
    ],
)
def test_git_is_left_to_reach_the_url_when_config_could_change_how(
    config: dict[str, str], environ: dict[str, str], expected: bool
) -> None:
    assert wire.allowed("git://h/r.git", config, environ) is expected


def test_a_store_with_url_rewriting_pushes_through_git(
    daemon_clone: tuple[str, Path, Path], git_calls: list[tuple[str, ...]]
) -> None:
    url, bare, clone = daemon_clone
    git("config", f"url.{url}.insteadOf", "git://elsewhere.invalid/remote.git", cwd=clone)
    git("remote", "set-url", "origin", "git://elsewhere.invalid/remote.git", cwd=clone)
    store = store_for(clone, "origin")
    assert store.fetch_wire is None and store.push_wire is None
    commit = store.write_commit(None, {"a.md": b"a\n"}, "ifcoord: init", "t")
    assert store.push(commit, None) is PushOutcome.LANDED  # git applied the rewrite
    assert "push" in commands(git_calls)
    assert git("rev-parse", "refs/heads/ifcoord", cwd=bare) == commit


def test_the_tip_reads_as_ls_remote_says_without_starting_git(
    daemon_clone: tuple[str, Path, Path], git_calls: list[tuple[str, ...]]
) -> None:
    url, bare, clone = daemon_clone
    store = store_for(clone, url)
    assert store.fetch_wire is not None
    assert store.remote_tip() is None  # an empty repository: no such branch
    commit = store.write_commit(None, {"a.md": b"a\n"}, "ifcoord: init", "t")
    assert store.push(commit, None) is PushOutcome.LANDED
    git("--git-dir", str(bare), "update-ref", "refs/heads/other", commit)
    git("--git-dir", str(bare), "tag", "v1", commit)
    listed = git("ls-remote", url, "refs/heads/ifcoord").split()[0]
    assert store.remote_tip() == listed == commit
    assert commands(git_calls) == []  # neither the push nor the reads started git


def test_a_push_lands_whole_and_git_reads_the_objects(
    daemon_clone: tuple[str, Path, Path], git_calls: list[tuple[str, ...]]
) -> None:
    url, bare, clone = daemon_clone
    store = store_for(clone, url)
    first = store.write_commit(None, {"boards/A.md": b"# A\n" * 50, "ifcoord.yaml": b"x: 1\n"}, "one", "t")
    assert store.push(first, None) is PushOutcome.LANDED
    big = os.urandom(70_000).hex().encode()  # a size that needs several bytes of pack header
    second = store.write_commit(first, {"boards/A.md": big, "boards/B/deep/C.md": b"c\n"}, "two", "t")
    assert store.push(second, first) is PushOutcome.LANDED
    assert commands(git_calls) == []
    assert git("rev-parse", "refs/heads/ifcoord", cwd=bare) == second
    assert store.local_tip() == second
    assert git("fsck", "--strict", "--no-dangling", "--no-progress", cwd=bare) == ""
    assert git("show", f"{second}:boards/A.md", cwd=bare).encode() == big


def test_a_stale_expected_tip_is_rejected_before_anything_is_sent(
    daemon_clone: tuple[str, Path, Path], git_calls: list[tuple[str, ...]]
) -> None:
    url, bare, clone = daemon_clone
    store = store_for(clone, url)
    first = landed_first(store)
    ahead = store.write_commit(first, {"a.md": b"2\n"}, "two", "t")
    assert store.push(ahead, first) is PushOutcome.LANDED
    late = store.write_commit(first, {"a.md": b"3\n"}, "late", "t")  # decided on the old tip
    objects_before = sorted(p.name for p in (bare / "objects").rglob("*") if p.is_file())
    assert store.push(late, first) is PushOutcome.REJECTED
    assert git("rev-parse", "refs/heads/ifcoord", cwd=bare) == ahead
    assert sorted(p.name for p in (bare / "objects").rglob("*") if p.is_file()) == objects_before
    assert commands(git_calls) == []
    # and a branch that exists is not created again
    fresh = store.write_commit(None, {"a.md": b"4\n"}, "fresh", "t")
    assert store.push(fresh, None) is PushOutcome.REJECTED


def test_the_servers_own_compare_and_swap_rejects_a_tip_moved_after_the_advertisement(
    daemon_clone: tuple[str, Path, Path], git_calls: list[tuple[str, ...]]
) -> None:
    url, bare, clone = daemon_clone
    store = store_for(clone, url)
    first = landed_first(store)
    other = store.write_commit(first, {"a.md": b"other\n"}, "other", "t")
    git("push", "-q", url, f"{other}:refs/heads/parked", cwd=clone)
    # Between the advertisement and the update, another writer moves the branch: the hook runs
    # after the client has sent its commands and pack, before the server takes its ref lock.
    # (written as a file: git refuses ref updates from a hook that sees the push's quarantine)
    hook(bare, "pre-receive", f"printf '%s\\n' {other} > refs/heads/ifcoord\n")
    mine = store.write_commit(first, {"a.md": b"mine\n"}, "mine", "t")
    git_calls.clear()
    assert store.push(mine, first) is PushOutcome.REJECTED
    assert commands(git_calls) == []  # the server's "ng" said so, not a push by git
    assert git("rev-parse", "refs/heads/ifcoord", cwd=bare) == other


def test_a_hook_refusal_is_a_usage_error(
    daemon_clone: tuple[str, Path, Path], git_calls: list[tuple[str, ...]]
) -> None:
    url, bare, clone = daemon_clone
    store = store_for(clone, url)
    hook(bare, "pre-receive", "echo 'not you' >&2\nexit 1\n")
    commit = store.write_commit(None, {"a.md": b"1\n"}, "one", "t")
    with pytest.raises(UsageError, match="hook declined"):
        store.push(commit, None)
    assert commands(git_calls) == []
    assert git("for-each-ref", cwd=bare) == ""


def test_objects_the_server_misses_send_the_push_through_git(
    daemon_clone: tuple[str, Path, Path], git_calls: list[tuple[str, ...]]
) -> None:
    url, bare, clone = daemon_clone
    store = store_for(clone, url)
    first = landed_first(store)
    second = store.write_commit(first, {"a.md": b"2\n", "b.md": b"b\n"}, "two", "t")
    assert store.last_written is not None
    blob = objects.object_id(b"blob", b"b\n")
    # as if this clone had kept one of the commit's objects from elsewhere, and not listed it
    store.last_written = (second, [o for o in store.last_written[1] if o[0] != blob])
    assert store.push(second, first) is PushOutcome.LANDED
    assert commands(git_calls) == ["push"]  # the server refused the pack; git sent it whole
    assert git("fsck", "--strict", "--no-dangling", "--no-progress", cwd=bare) == ""


def test_a_commit_the_store_did_not_just_write_on_that_parent_goes_through_git(
    daemon_clone: tuple[str, Path, Path], git_calls: list[tuple[str, ...]]
) -> None:
    url, bare, clone = daemon_clone
    store = store_for(clone, url)
    first = store.write_commit(None, {"a.md": b"1\n"}, "one", "t")
    second = store.write_commit(first, {"a.md": b"2\n"}, "two", "t")
    # two commits at once: what the second brings over nothing is more than it wrote
    assert store.push(second, None) is PushOutcome.LANDED
    assert commands(git_calls) == ["push"]
    assert git("rev-parse", "refs/heads/ifcoord", cwd=bare) == second


def test_an_unexported_repository_or_a_dead_port_is_left_to_git_to_explain(
    git_daemon: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = git_daemon
    for dead in (url.replace("remote.git", "missing.git"), f"git://127.0.0.1:{free_port()}/remote.git"):
        address = wire.daemon_address(dead)
        assert address is not None
        with pytest.raises(wire.NotSpoken):
            wire.remote_refs(address, 5.0)
        with pytest.raises(wire.NotSpoken):
            wire.push(address, "refs/heads/ifcoord", None, "0" * 40, [], 5.0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=5000), min_size=1, max_size=6))
def test_git_reads_every_object_of_a_pack_as_written(
    tmp_path_factory: pytest.TempPathFactory, blobs: list[bytes]
) -> None:
    where = tmp_path_factory.mktemp("pack")
    loose = [(objects.object_id(b"blob", b), objects.compress_object(b"blob", b)) for b in blobs]
    git("init", "-q", "--bare", str(where))
    packed = wire.pack(loose + loose[:1])  # an object listed twice is packed once
    indexed = subprocess.run(
        ["git", f"--git-dir={where}", "index-pack", "--stdin", "--strict"], input=packed, capture_output=True
    )
    assert indexed.returncode == 0, indexed.stderr
    for sha, _ in loose:
        got = subprocess.run(
            ["git", f"--git-dir={where}", "cat-file", "blob", sha], capture_output=True, check=True
        )
        assert got.stdout == blobs[[s for s, _ in loose].index(sha)]
    assert int.from_bytes(packed[8:12], "big") == len(set(blobs))


def test_a_fetch_that_finds_the_tip_unchanged_starts_no_git_and_one_that_moved_fetches(
    daemon_clone: tuple[str, Path, Path], git_calls: list[tuple[str, ...]], tmp_path: Path
) -> None:
    url, bare, clone = daemon_clone
    store = store_for(clone, url)
    first = landed_first(store)
    git_calls.clear()
    assert store.fetch() == first
    assert commands(git_calls) == []  # the tip was the private ref's: nothing to fetch
    other = store_for(make_clone(url, tmp_path / "other"), url)
    assert other.fetch() == first
    second = other.write_commit(first, {"a.md": b"2\n"}, "two", "t")
    assert other.push(second, first) is PushOutcome.LANDED
    git_calls.clear()
    assert store.fetch() == second
    assert commands(git_calls) == ["fetch"]
    assert store.read_files(second) == {"a.md": b"2\n"}


def test_the_loops_look_at_a_tip_from_elsewhere_asks_for_it_once_then_fetches(
    daemon_clone: tuple[str, Path, Path],
    git_calls: list[tuple[str, ...]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, bare, clone = daemon_clone
    store = store_for(clone, url)
    first = landed_first(store)
    other = store_for(make_clone(url, tmp_path / "other"), url)
    assert other.fetch() == first
    second = other.write_commit(first, {"a.md": b"2\n"}, "two", "t")
    assert other.push(second, first) is PushOutcome.LANDED
    asked: list[str] = []
    real = wire.remote_refs

    def counted(address: wire.Address, timeout: float) -> dict[str, str]:
        asked.append(address.path)
        return real(address, timeout)

    monkeypatch.setattr(wire, "remote_refs", counted)
    git_calls.clear()
    assert store.sync(supply=lambda local, tip: None) == second  # in no handoff: fetched
    assert len(asked) == 1  # the tip, read once: git's fetch is not preceded by a second look
    assert commands(git_calls) == ["fetch"]
    assert store.read_files(second) == {"a.md": b"2\n"}


def test_the_branches_list_as_ls_remote_lists_them_without_starting_git(
    daemon_clone: tuple[str, Path, Path], git_calls: list[tuple[str, ...]]
) -> None:
    url, bare, clone = daemon_clone
    store = store_for(clone, url)
    assert store.list_heads() == {}
    commit = store.write_commit(None, {"a.md": b"1\n"}, "one", "t")
    assert store.push(commit, None) is PushOutcome.LANDED
    for ref in ("refs/heads/ifcoord-session/s1", "refs/heads/main", "refs/tags/v1", "refs/notes/x"):
        git("--git-dir", str(bare), "update-ref", ref, commit)
    listed = {
        ref[len("refs/heads/") :]: sha
        for sha, ref in (line.split("\t") for line in git("ls-remote", "--heads", url).splitlines())
    }
    git_calls.clear()
    assert store.list_heads() == listed == {"ifcoord": commit, "ifcoord-session/s1": commit, "main": commit}
    assert commands(git_calls) == []


def test_a_server_that_never_answers_is_unreachable_without_asking_git_to_wait_as_long(
    tmp_path: Path, git_calls: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from ifcoord.errors import RemoteUnreachable
    from ifcoord.git import store as store_module

    monkeypatch.setattr(store_module, "WIRE_TIMEOUT", 0.5)
    with socket.socket() as listener:  # takes connections (the kernel's backlog), never speaks
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"git://127.0.0.1:{listener.getsockname()[1]}/remote.git"
        clone = tmp_path / "clone"
        git("init", "-q", str(clone))
        store = store_for(clone, url)
        for ask in (store.remote_tip, store.list_heads, store.fetch):
            with pytest.raises(RemoteUnreachable, match="did not answer within 0.5s"):
                ask()
        commit = store.write_commit(None, {"a.md": b"1\n"}, "one", "t")
        with pytest.raises(RemoteUnreachable, match="did not answer within 0.5s"):
            store.push(commit, None, timeout=0.5)
    assert commands(git_calls) == []  # git would have waited its own minute
