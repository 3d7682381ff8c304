"""Real git servers on 127.0.0.1 for the suite: smart HTTP (`git http-backend` behind nginx and
fcgiwrap) and ssh (openssh-server with a generated key), each in a temporary folder, on a free
port, stopped afterwards. The Debian packages are listed in .ci/packages.txt."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
USED: set[str] = set()  # which kinds of remote this run served (the terminal summary says)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare_repository(base: Path, name: str = "remote.git") -> Path:
    bare = base / name
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    # smart HTTP refuses pushes from unauthenticated users unless the repository allows them
    subprocess.run(["git", "config", "http.receivepack", "true"], cwd=bare, check=True)
    return bare


def wait_for_git(url: str, env: dict[str, str] | None = None, what: str = "server") -> None:
    deadline = time.monotonic() + 15
    last = ""
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["git", "ls-remote", url], capture_output=True, text=True, env={**os.environ, **(env or {})}
        )
        if proc.returncode == 0:
            return
        last = proc.stderr
        time.sleep(0.1)
    raise AssertionError(f"{what} did not start: {last}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session, with every process it forked (fcgiwrap -c)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # forked workers outlive their parent otherwise
    except ProcessLookupError:
        pass


NGINX_CONF = """
worker_processes 2;
daemon off;
user root;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    fastcgi_temp_path {d}/fastcgi;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            fastcgi_pass unix:{sock};
            fastcgi_read_timeout 120s;
            fastcgi_param SCRIPT_FILENAME {backend};
            fastcgi_param GIT_PROJECT_ROOT {base};
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param PATH_INFO $uri;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param HTTP_CONTENT_ENCODING $http_content_encoding;
            fastcgi_param GIT_PROTOCOL $http_git_protocol;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
        }}
    }}
}}
"""


@contextmanager
def smart_http(tmp: Path) -> Iterator[tuple[str, Path, int]]:
    """nginx + fcgiwrap + git http-backend serving one bare repository: (url, bare, port)."""
    for tool in ("nginx", "fcgiwrap"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise AssertionError(f"{tool} is not installed: run `make system` (see .ci/packages.txt)")
    d = tmp / "http"
    base = d / "repos"
    base.mkdir(parents=True)
    bare = bare_repository(base)
    sock = d / "fcgi.sock"
    port = free_port()
    (d / "nginx.conf").write_text(
        NGINX_CONF.format(d=d, port=port, sock=sock, backend=GIT_HTTP_BACKEND, base=base)
    )
    fcgi = subprocess.Popen(
        ["/usr/sbin/fcgiwrap", "-c", "24", "-s", f"unix:{sock}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    nginx = subprocess.Popen(
        ["/usr/sbin/nginx", "-p", str(d), "-c", str(d / "nginx.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/remote.git"
    try:
        wait_for_git(url, what="nginx with git http-backend")
        USED.add("smart HTTP (nginx + fcgiwrap + git http-backend)")
        yield url, bare, port
    finally:
        stop(nginx)
        stop(fcgi)


# sshd runs each command with the user's shell, and bash run by sshd reads ~/.bashrc unless it
# is a nested shell. A root whose .bashrc starts pyenv (as on these machines) paid ~60 processes
# per git command: most of the CPU of the ssh tests. A server's git account has no such start-up;
# SHLVL=1 makes the command's bash a nested one, which skips it.
SSHD_QUIET_SHELL = "SetEnv SHLVL=1\n"

SSHD_CONF = """
Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
PermitRootLogin yes
AllowUsers {user}
MaxStartups 100
MaxSessions 100
LogLevel ERROR
""" + SSHD_QUIET_SHELL


@contextmanager
def ssh_server(tmp: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """sshd (not a daemon) with its own host key, config and client key: (url, bare, env),
    where env holds the GIT_SSH_COMMAND that reaches it."""
    if not Path("/usr/sbin/sshd").exists():
        raise AssertionError("openssh-server is not installed: run `make system` (see .ci/packages.txt)")
    d = tmp / "ssh"
    d.mkdir()
    base = d / "repos"
    base.mkdir()
    bare = bare_repository(base)
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    (d / "sshd_config").write_text(SSHD_CONF.format(port=port, d=d, user=user))
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    sshd = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    # One connection master (ControlMaster), as people set up hosts they talk to all day: every
    # git command would otherwise pay a key exchange on both sides. A short path: a socket's
    # name is at most 107 bytes.
    sockets = Path(tempfile.mkdtemp(prefix="ifc-ssh-"))
    env = {
        "GIT_SSH_COMMAND": (
            f"ssh -i {d / 'client_key'} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes "
            f"-o ControlMaster=auto -o ControlPath={sockets}/m -o ControlPersist=30"
        )
    }
    url = f"ssh://{user}@127.0.0.1:{port}{bare}"
    try:
        wait_for_git(url, env, what="sshd")
        USED.add("ssh (openssh-server)")
        yield url, bare, env
    finally:
        subprocess.run(["ssh", "-o", f"ControlPath={sockets}/m", "-O", "exit", "x"],
                       capture_output=True, check=False, timeout=30)  # fmt: skip
        stop(sshd)
        shutil.rmtree(sockets, ignore_errors=True)
