"""Shared mode at its edges (issue 14): unknown push outcomes, wedged clones, the environment,
missing remotes. Each test reproduces a failure seen on real remotes."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import git, make_clone, run_ifcoord

from testing.proxy import FaultProxy


def daemon_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture
def proxied(git_daemon: tuple[str, Path]) -> Iterator[tuple[str, str, Path, FaultProxy]]:
    """(direct url, proxied url, bare repository, proxy)."""
    url, bare = git_daemon
    proxy = FaultProxy(daemon_port(url))
    try:
        yield url, f"git://127.0.0.1:{proxy.port}/remote.git", bare, proxy
    finally:
        proxy.close()


def init(remote: str, tmp_path: Path, board: str = "# P\n\n## T1: Task one\n\n## T2: Task two\n") -> None:
    admin = make_clone(remote, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text(board)
    done = run_ifcoord("init", "--remote", remote, "--board", "PHASE-0.md", cwd=admin)
    assert done.returncode == 0, done.stderr


def subjects(bare: Path) -> list[str]:
    return git("log", "--format=%s", "ifcoord", cwd=bare).splitlines()


def wait_until(condition, timeout: float = 30.0, message=None) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time" + (f": {message()}" if message else ""))


def test_a_push_the_slow_server_took_is_never_reported_as_nothing_changed(
    proxied: tuple[str, str, Path, FaultProxy], tmp_path: Path
) -> None:
    direct, url, bare, proxy = proxied
    init(direct, tmp_path)
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\ncat >/dev/null\nsleep 8\n")
    hook.chmod(0o755)
    clone = make_clone(url, tmp_path / "c")
    proxy.cut_next()
    done = run_ifcoord(
        "claim", "T1", "--session", "s1", "--remote", url, "--json", cwd=clone, env={"IFCOORD_DEADLINE": "5"}
    )
    # The server answers after its 8 s hook, so the cut comes then: after a command that gave up
    # at its 5 s deadline, not necessarily before it returned.
    wait_until(lambda: proxy.cuts == 1, message=lambda: f"pushes: {proxy.pushes}, requests: {proxy.requests}")
    assert "nothing was changed" not in done.stdout + done.stderr
    if done.returncode == 0:
        out = json.loads(done.stdout)
        assert out["changed"] is True
        op_id = out["op_id"]
    else:
        assert done.returncode == 5, done.stdout + done.stderr
        message = json.loads(done.stdout)["error"]["message"]
        assert "the outcome is unknown" in message
        found = re.search(r"ifcoord log --op ([0-9a-f]+)", message)
        assert found, message
        op_id = found.group(1)
    # once the server is done, `log --op` says it landed, and it landed once
    wait_until(lambda: "ifcoord: claim T1 by s1" in subjects(bare))
    hook.unlink()
    landed = run_ifcoord("log", "--op", op_id, "--remote", direct, "--json", cwd=clone)
    assert landed.returncode == 0, landed.stderr
    assert json.loads(landed.stdout)["landed"] is True
    assert subjects(bare).count("ifcoord: claim T1 by s1") == 1
    missing = run_ifcoord("log", "--op", "0123456789abcdef", "--remote", direct, cwd=clone)
    assert missing.returncode == 4
    assert "did not land" in missing.stderr


@pytest.mark.parametrize(
    "command",
    [["release", "T1"], ["progress", "T1", "50", "--note", "half"], ["heartbeat", "--state", "idle"]],
)
def test_an_operation_cut_off_then_an_outage_lands_once_and_reports_success(
    command: list[str], proxied: tuple[str, str, Path, FaultProxy], tmp_path: Path
) -> None:
    direct, url, bare, proxy = proxied
    init(direct, tmp_path)
    clone = make_clone(url, tmp_path / "c")
    claim = run_ifcoord("claim", "T1", "--session", "s1", "--remote", url, cwd=clone)
    assert claim.returncode == 0, claim.stderr
    before = subjects(bare)
    proxy.cut_next()
    proxy.outage_after_cut = 3.0  # the remote goes away right after it took the push
    done = run_ifcoord(*command, "--session", "s1", "--remote", url, "--json", cwd=clone)
    assert proxy.cuts == 1, (
        f"pushes {proxy.pushes}; requests {proxy.requests}; {done.returncode} {done.stdout} {done.stderr}"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["changed"] is True
    new = subjects(bare)[: len(subjects(bare)) - len(before)]
    assert len(new) == 1, new  # landed exactly once: never re-decided on its own commit


def copy_without_blobs(bare: Path, clone: Path, tip: str) -> str:
    """Copy the tip commit's new commit and tree objects into the clone, not its new blobs."""
    sha_tip = git("rev-parse", tip, cwd=bare)
    for line in git("rev-list", "--objects", sha_tip, "--not", f"{sha_tip}~1", cwd=bare).split("\n"):
        sha = line.split()[0]
        kind = git("cat-file", "-t", sha, cwd=bare)
        if kind == "blob":
            continue
        data = subprocess.run(
            ["git", "cat-file", kind, sha], cwd=bare, capture_output=True, check=True
        ).stdout
        subprocess.run(
            ["git", "hash-object", "-w", "--literally", "-t", kind, "--stdin"],
            cwd=clone, input=data, capture_output=True, check=True,
        )  # fmt: skip
    return sha_tip


def test_a_clone_whose_fetch_died_mid_unpack_heals_itself(
    git_daemon: tuple[str, Path], tmp_path: Path
) -> None:
    url, bare = git_daemon
    init(url, tmp_path)
    clone = make_clone(url, tmp_path / "c")
    first = run_ifcoord("board", "--remote", url, cwd=clone)
    assert first.returncode == 0, first.stderr
    other = make_clone(url, tmp_path / "other")
    assert run_ifcoord("claim", "T1", "--session", "s2", "--remote", url, cwd=other).returncode == 0
    # What a SIGKILL during `git unpack-objects` leaves: the new commit and its trees, and not
    # every blob (here: the changed board and status blobs are missing).
    copy_without_blobs(bare, clone, "ifcoord")
    # the loop's cheap sync, then every command, keep working; the branch moves on meanwhile
    poll = run_ifcoord(
        "poll", "--once", "--no-claim", "--json", "--session", "s1", "--remote", url, cwd=clone
    )
    assert poll.returncode == 0, poll.stderr
    assert '"error"' not in poll.stdout, poll.stdout
    assert run_ifcoord("claim", "T2", "--session", "s2", "--remote", url, cwd=other).returncode == 0
    for args in (["board", "--json"], ["claim", "T1", "--session", "s1", "--json"]):
        done = run_ifcoord(*args, "--remote", url, cwd=clone)
        assert "missing" not in done.stderr and "unresolved" not in done.stderr, done.stderr
        assert done.returncode in (0, 3), done.stderr
    board = json.loads(run_ifcoord("board", "--json", "--remote", url, cwd=clone).stdout)
    owners = {t["id"]: t.get("owner") for t in board["tasks"]}
    assert owners == {"T1": "s2", "T2": "s2"}


def test_a_private_ref_already_on_a_broken_commit_heals_on_the_next_command(
    git_daemon: tuple[str, Path], tmp_path: Path
) -> None:
    url, bare = git_daemon
    init(url, tmp_path)
    clone = make_clone(url, tmp_path / "c")
    assert run_ifcoord("board", "--remote", url, cwd=clone).returncode == 0
    # an older version moved the private ref onto a commit whose blobs never arrived
    writer = make_clone(url, tmp_path / "writer")
    assert run_ifcoord("claim", "T2", "--session", "s3", "--remote", url, cwd=writer).returncode == 0
    broken = copy_without_blobs(bare, clone, "ifcoord")
    ref = git("for-each-ref", "--format=%(refname)", "refs/ifcoord/", cwd=clone).split()[0]
    git("update-ref", ref, broken, cwd=clone)
    assert run_ifcoord("release", "T2", "--session", "s3", "--remote", url, cwd=writer).returncode == 0
    other = make_clone(url, tmp_path / "other")
    assert run_ifcoord("claim", "T1", "--session", "s2", "--remote", url, cwd=other).returncode == 0
    done = run_ifcoord("claim", "T2", "--session", "s1", "--remote", url, cwd=clone)
    assert done.returncode == 0, done.stderr
    assert git("rev-parse", ref, cwd=clone) == git("rev-parse", "ifcoord", cwd=bare)


def test_git_variables_of_a_hook_do_not_reach_ifcoord(bare_remote: Path, tmp_path: Path) -> None:
    init(str(bare_remote), tmp_path)
    clone = make_clone(bare_remote, tmp_path / "c")
    elsewhere = make_clone(bare_remote, tmp_path / "elsewhere")
    index = clone / ".git" / "index"
    before = index.read_bytes()
    env = {
        "GIT_DIR": str(elsewhere / ".git"),
        "GIT_WORK_TREE": str(elsewhere),
        "GIT_INDEX_FILE": str(index),
        "GIT_OBJECT_DIRECTORY": str(tmp_path / "nowhere"),
    }
    done = run_ifcoord("claim", "T1", "--session", "s1", "--json", cwd=clone, env=env)
    assert done.returncode == 0, done.stderr
    assert index.read_bytes() == before
    # the clone it ran in holds the operation's state, not the repository GIT_DIR named
    assert git("for-each-ref", "refs/ifcoord/", cwd=clone)
    assert not git("for-each-ref", "refs/ifcoord/", cwd=elsewhere)
    assert not (tmp_path / "nowhere").exists()


def test_a_remote_that_does_not_exist_fails_at_once_with_gits_message(tmp_path: Path) -> None:
    clone = make_clone(tmp_path / "nothing-here.git", tmp_path / "c")
    start = time.monotonic()
    done = run_ifcoord("board", "--remote", str(tmp_path / "nothing-here.git"), cwd=clone, timeout=30)
    assert time.monotonic() - start < 30  # not the 60 s deadline (generous: CI machines are busy)
    assert done.returncode == 5, done.stderr
    assert "does not appear to be a git repository" in done.stderr
    assert "and the repository exists." not in done.stderr


def test_a_long_remote_url_makes_a_valid_private_ref_name() -> None:
    from ifcoord.git.store import ref_slug

    url = "ssh://root@127.0.0.1:55311/tmp/pytest-of-root/pytest-41/test_srv_ssh_remote_0/ssh/repos/remote.git"
    slug = ref_slug(url)
    assert not slug.startswith((".", "-", "_")) and len(slug) <= 80
    checked = subprocess.run(["git", "check-ref-format", f"refs/ifcoord/{slug}/ifcoord"], check=False)
    assert checked.returncode == 0
    assert ref_slug("origin") == "origin"


def test_git_reason_keeps_gits_words_not_its_advice() -> None:
    from ifcoord.git.runner import GitFailed
    from ifcoord.git.store import git_reason

    stderr = (
        "fatal: '/x/y.git' does not appear to be a git repository\n"
        "fatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\nand the repository exists.\n"
    )
    reason = git_reason(GitFailed(["fetch"], 128, "", stderr))
    assert reason.startswith("'/x/y.git' does not appear to be a git repository")
    assert "and the repository exists" not in reason
