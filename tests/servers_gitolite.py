"""A real git server that enforces who may push what: gitolite over sshd on 127.0.0.1.

One ssh key per user; gitolite's rules let session `NAME` push only `claude/NAME` and the
arbiter push the coordination branch; everyone may read. Everything lives in a temporary
folder: gitolite's home, the repositories, sshd's host key and config, on a free port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import SSHD_QUIET_SHELL

CONF = """repo gitolite-admin
    RW+     =   admin

repo project
    RW      ifcoord$        =   arbiter
@own
    R                       =   @all
"""


@dataclass
class Gitolite:
    root: Path
    port: int
    keys: dict[str, Path]
    sockets: Path  # ssh connection masters: a short path (a socket's name is at most 107 bytes)

    @property
    def url(self) -> str:
        return f"ssh://{os.environ.get('USER') or 'root'}@127.0.0.1:{self.port}/project"

    def env(self, user: str) -> dict[str, str]:
        """What a process acting as `user` needs: its own key, and only it."""
        # One ssh connection per user, shared by its git commands (ControlMaster), as people
        # set it up for hosts they talk to all day: without it, every look at the remote pays
        # a key exchange on both sides, and five loops polling spent a core on that alone.
        ssh = (
            f"ssh -i {self.keys[user]} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no "
            f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ControlMaster=auto "
            f"-o ControlPath={self.sockets}/{user} -o ControlPersist=30"
        )
        return {"GIT_SSH_COMMAND": ssh}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*argv: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr}")


def start_gitolite(root: Path, sessions: list[str]) -> tuple[Gitolite, subprocess.Popen[bytes]]:
    if shutil.which("gitolite") is None or not Path("/usr/sbin/sshd").exists():
        pytest.skip("gitolite3 and openssh-server are needed (listed in .ci/packages.txt)")
    home = root / "gl-home"
    keydir = root / "keys"
    home.mkdir(parents=True)
    keydir.mkdir()
    keys: dict[str, Path] = {}
    for user in ["admin", "arbiter", *sessions]:
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", user, "-f", str(keydir / user))
        keys[user] = keydir / user
    gl_env = {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    _run("gitolite", "setup", "-pk", str(keydir / "admin.pub"), env=gl_env)
    own = "".join(f"    RW      claude/{name}$  =   {name}\n" for name in sessions)
    conf = CONF.replace("@own\n", own)
    (home / ".gitolite" / "conf" / "gitolite.conf").write_text(conf)
    for user in ["arbiter", *sessions]:
        shutil.copy(keydir / f"{user}.pub", home / ".gitolite" / "keydir" / f"{user}.pub")
    _run("gitolite", "compile", env=gl_env)
    _run("gitolite", "trigger", "POST_COMPILE", env=gl_env)
    auth = home / ".ssh" / "authorized_keys"
    # sshd runs the forced command with the real user's HOME; gitolite must find this one.
    auth.write_text(auth.read_text().replace('command="', f'command="HOME={home} '))
    host_key = root / "ssh_host_ed25519_key"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    port = _free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {auth}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin yes\nPubkeyAuthentication yes\n"
        + SSHD_QUIET_SHELL
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    server = Gitolite(root, port, keys, Path(tempfile.mkdtemp(prefix="ifc-ssh-")))
    deadline = time.monotonic() + 20
    while True:
        probe = subprocess.run(["git", "ls-remote", server.url], capture_output=True, text=True,
                               env={**os.environ, **server.env("admin")}, check=False)  # fmt: skip
        if probe.returncode == 0:
            return server, proc
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"gitolite over sshd did not answer: {probe.stderr}")
        time.sleep(0.2)


@pytest.fixture
def gitolite(tmp_path: Path) -> Iterator[Gitolite]:
    """A gitolite server for sessions s0..s3 (and alice, bob) plus the arbiter."""
    server, proc = start_gitolite(tmp_path / "gitolite", ["s0", "s1", "s2", "s3", "alice", "bob"])
    try:
        yield server
    finally:
        for user in server.keys:  # the connection masters, then the server
            subprocess.run(["ssh", "-o", f"ControlPath={server.sockets}/{user}", "-O", "exit", "x"],
                           capture_output=True, check=False, timeout=30)  # fmt: skip
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(server.sockets, ignore_errors=True)
