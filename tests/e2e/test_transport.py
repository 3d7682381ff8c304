"""A push whose connection breaks after the server took it: "unknown", not "failed"."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, git, make_clone, run_ifcoord

sys.path.insert(0, str(ROOT))
from testing.proxy import FaultProxy  # noqa: E402


@pytest.fixture
def cutting_proxy(git_daemon: tuple[str, Path]) -> Iterator[tuple[str, Path, FaultProxy]]:
    url, bare = git_daemon
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = FaultProxy(port)
    try:
        yield f"git://127.0.0.1:{proxy.port}/remote.git", bare, proxy
    finally:
        proxy.close()


def test_a_push_cut_off_after_it_landed_is_found_landed_not_pushed_twice(
    git_daemon: tuple[str, Path], cutting_proxy: tuple[str, Path, FaultProxy], tmp_path: Path
) -> None:
    direct, _ = git_daemon
    url, bare, proxy = cutting_proxy
    admin = make_clone(direct, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text("# P\n\n## T1: Task\n")
    assert run_ifcoord("init", "--remote", direct, "--board", "PHASE-0.md", cwd=admin).returncode == 0
    clone = make_clone(url, tmp_path / "c")
    proxy.cut_next()
    done = run_ifcoord("claim", "T1", "--session", "s1", "--remote", url, "--json", cwd=clone)
    assert done.returncode == 0, done.stderr
    assert proxy.cuts == 1, (proxy.pushes, proxy.requests)  # the connection really was cut during the push
    out = json.loads(done.stdout)
    assert out["changed"] is True  # reported as landed, because it had
    assert out["attempts"] == 1  # and not decided or pushed again
    subjects = git("log", "--format=%s", "ifcoord", cwd=bare).splitlines()
    assert subjects.count("ifcoord: claim T1 by s1") == 1
