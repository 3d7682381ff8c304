"""A push whose connection breaks after the server took it: "unknown", not "failed"."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import git, make_clone, run_ifcoord


class CuttingProxy:
    """A TCP proxy in front of `git daemon` that hangs up on the first push just before the
    server's answer reaches the client: the server has updated the branch, the client only sees
    a connection reset. Every other connection passes through untouched."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_done = threading.Event()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.target_port))
        request = client.recv(65536)
        is_push = b"git-receive-pack" in request
        cut = is_push and not self.cut_done.is_set()
        if cut:
            self.cut_done.set()
        server.sendall(request)
        state = {"client_spoke_again": False}

        def upstream() -> None:  # client -> server
            try:
                while data := client.recv(65536):
                    state["client_spoke_again"] = True
                    server.sendall(data)
                if not cut:
                    server.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=upstream, daemon=True)
        t.start()
        try:
            while data := server.recv(65536):
                if cut and state["client_spoke_again"]:
                    # The server answers the push: it has the pack. Hang up on the client, and
                    # let the server finish its work undisturbed.
                    self.cuts += 1
                    client.shutdown(socket.SHUT_RDWR)  # wakes the other thread's recv too
                    while server.recv(65536):
                        pass
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, server):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def cutting_proxy(git_daemon: tuple[str, Path]) -> Iterator[tuple[str, Path, CuttingProxy]]:
    url, bare = git_daemon
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = CuttingProxy(port)
    try:
        yield f"git://127.0.0.1:{proxy.port}/remote.git", bare, proxy
    finally:
        proxy.close()


def test_a_push_cut_off_after_it_landed_is_found_landed_not_pushed_twice(
    git_daemon: tuple[str, Path], cutting_proxy: tuple[str, Path, CuttingProxy], tmp_path: Path
) -> None:
    direct, _ = git_daemon
    url, bare, proxy = cutting_proxy
    admin = make_clone(direct, tmp_path / "admin")
    (admin / "PHASE-0.md").write_text("# P\n\n## T1: Task\n")
    assert run_ifcoord("init", "--remote", direct, "--board", "PHASE-0.md", cwd=admin).returncode == 0
    clone = make_clone(url, tmp_path / "c")
    proxy.cut_done.clear()
    done = run_ifcoord("claim", "T1", "--session", "s1", "--remote", url, "--json", cwd=clone)
    assert done.returncode == 0, done.stderr
    assert proxy.cuts == 1  # the connection really was cut during the push
    out = json.loads(done.stdout)
    assert out["changed"] is True  # reported as landed, because it had
    assert out["attempts"] == 1  # and not decided or pushed again
    subjects = git("log", "--format=%s", "ifcoord", cwd=bare).splitlines()
    assert subjects.count("ifcoord: claim T1 by s1") == 1
