"""The server side of warm commands: a long-running ifcoord process that runs other commands.

`ifcoord poll` listens between its cycles, and `ifcoord serve` does nothing else. A request
carries a command's arguments, working folder, environment and standard streams (client.py).
The server forks: the copy has every module imported and the parse cache warm, takes the
client's streams as its own, and runs the command through the same entry point a fresh process
uses, so the command's output, exit code and effects are the same. Start-up, which is most of
an agent's short command, is paid once per server instead of once per command.

Safety:
- Only the same user is served (the peer's uid is checked; abstract sockets have no file
  permissions).
- A fork is refused while the server runs other threads (a copy could inherit a lock held by
  one of them); the client then runs the command itself.
- Each copy draws fresh randomness, so copies forked together do not back off in step or draw
  the same operation id.
- The server flushes its own output before forking and the copy never returns into the
  server's code: it exits with `os._exit` after the command, so nothing of the server (its
  lock files, its git processes) is released or written by a copy.
"""

from __future__ import annotations

import io
import marshal
import os
import random
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable

from ifcoord.serve.address import ABSTRACT, address, fingerprint
from ifcoord.serve.client import HEADER_SIZE, ONE_SHOT

MAX_REQUEST = 1 << 20  # arguments and environment: far more than any real one
MAX_CHILDREN = 64
REBIND_EVERY = 5.0  # seconds between two tries to take over an address another server held

Handler = Callable[[list[str]], int]


class CommandServer:
    """Listens on this user's address for this ifcoord; `wait` serves while it sleeps."""

    def __init__(self, handler: Handler, log: Callable[[str], None] | None = None) -> None:
        self.handler = handler
        self.log = log or (lambda message: None)
        self.address = address(fingerprint())
        self.listener: socket.socket | None = None
        self.children: set[int] = set()
        self.last_served = time.monotonic()
        self._tried = -REBIND_EVERY  # the first `wait` opens the address
        self.selector = selectors.DefaultSelector()

    # -- listening ------------------------------------------------------------------------------

    def open(self) -> bool:
        """Start listening; False when another server already holds the address."""
        self._tried = time.monotonic()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if not ABSTRACT:
                folder = os.path.dirname(self.address)
                os.makedirs(folder, mode=0o700, exist_ok=True)
                if _stale(self.address):
                    os.unlink(self.address)
            sock.bind(self.address)
            sock.listen(128)
        except OSError:
            sock.close()
            return False
        sock.setblocking(False)
        self.listener = sock
        self.selector.register(sock, selectors.EVENT_READ)
        return True

    def close(self) -> None:
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None
            if not ABSTRACT:
                try:
                    os.unlink(self.address)
                except OSError:
                    pass
        self.reap()

    # -- serving --------------------------------------------------------------------------------

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, serving every request that arrives meanwhile."""
        self.reap()
        if self.listener is None:
            if time.monotonic() - self._tried >= REBIND_EVERY:
                self.open()
            if self.listener is None:
                time.sleep(seconds)
                return
        if self.selector.select(timeout=max(0.0, seconds)):
            self.accept_all()

    def accept_all(self) -> None:
        assert self.listener is not None
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # BlockingIOError: nobody else is waiting
                return
            try:
                self.handle(conn)
            finally:
                conn.close()

    def handle(self, conn: socket.socket) -> None:
        """One request: check it, agree to it, fork the copy that runs it."""
        conn.setblocking(True)
        conn.settimeout(2.0)
        fds: list[int] = []
        try:
            if not _same_user(conn):
                return
            request, fds = _receive(conn)
            reason = self.refusal(request, len(fds))
            if reason:
                conn.sendall(f"R {reason}\n".encode())
                return
            conn.sendall(b"A\n")
            if conn.recv(2) != b"G\n":
                return  # the client gave up waiting and runs the command itself
            self.fork(conn, request, fds)
        except (OSError, ValueError):
            return
        finally:
            for fd in fds:
                os.close(fd)

    def refusal(self, request: dict[str, object], nfds: int) -> str:
        argv = request["argv"]
        if not (isinstance(argv, list) and argv and argv[0] in ONE_SHOT):
            return "not a one-shot command"
        if nfds != 3:
            return "expected standard input, output and error"
        if threading.active_count() > 1:
            return "the server runs other threads now"
        if len(self.children) >= MAX_CHILDREN:
            return "too many commands at once"
        return ""

    def fork(self, conn: socket.socket, request: dict[str, object], fds: list[int]) -> None:
        _flush_std()  # nothing of the server's may reach a copy's caller
        try:
            pid = os.fork()
        except OSError:
            conn.sendall(b"F\n")  # not started: the client runs the command itself
            return
        if pid == 0:  # the copy: never returns
            self._run_copy(conn, request, fds)
        self.children.add(pid)
        self.last_served = time.monotonic()
        argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
        self.log(f"serving {argv[0]} in {str(request['cwd'])!r} (pid {pid})")

    def _run_copy(self, conn: socket.socket, request: dict[str, object], fds: list[int]) -> None:
        code = 1
        try:
            # The command's own signal handling before the client learns this pid: the client
            # forwards SIGINT/SIGTERM/SIGHUP to it from then on, and a signal caught by the
            # server's handlers (inherited by the fork) would be lost, the copy left running.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            conn.sendall(f"P{os.getpid()}\n".encode())  # before anything it could print
            if self.listener is not None:
                self.listener.close()
            random.seed()  # os.urandom: copies forked together must not share a sequence
            _die_with_client(conn)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            fds.clear()
            encoding = str(request.get("encoding") or "utf-8")
            sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=encoding)
            sys.stdout = io.TextIOWrapper(
                io.FileIO(1, "w", closefd=False), encoding=encoding, line_buffering=os.isatty(1)
            )
            sys.stderr = io.TextIOWrapper(
                io.FileIO(2, "w", closefd=False), encoding=encoding, errors="backslashreplace",
                line_buffering=True,
            )  # fmt: skip
            env = request["env"]
            assert isinstance(env, dict)
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in env.items()})
            time.tzset()
            os.chdir(str(request["cwd"]))
            argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
            sys.argv = ["ifcoord", *argv]
            code = self.handler(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - a copy must always answer and exit
            try:
                traceback.print_exc()  # what an uncaught exception prints in a process of its own
            except Exception:  # noqa: BLE001
                pass
        finally:
            _flush_std()
            try:
                conn.sendall(f"X{code}\n".encode())
            except OSError:
                pass
            os._exit(code if 0 <= code < 256 else 1)

    def reap(self) -> None:
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.discard(pid)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream is left as it is
            pass


def _die_with_client(conn: socket.socket) -> None:
    """Killing the client kills the command, as it would a command run in the client's process:
    the client never writes after its go-ahead, so the connection turns readable only when the
    client is gone (SIGINT and SIGTERM it forwards instead, for a clean stop)."""

    def watch() -> None:
        try:
            select.select([conn], [], [])
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="ifcoord-client-watch", daemon=True).start()


def _same_user(conn: socket.socket) -> bool:
    if not ABSTRACT:
        return True  # the socket's folder is private to the user (0700)
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def _receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    if len(data) < HEADER_SIZE:
        raise ValueError("short request")
    size = int.from_bytes(data[:HEADER_SIZE], "big")
    if size > MAX_REQUEST:
        raise ValueError("request too large")
    body = data[HEADER_SIZE:]
    while len(body) < size:
        chunk = conn.recv(min(65536, size - len(body)))
        if not chunk:
            raise ValueError("short request")
        body += chunk
    request = marshal.loads(body)
    if not isinstance(request, dict) or not isinstance(request.get("argv"), list):
        raise ValueError("not a request")
    return request, list(fds)


def _stale(path: str) -> bool:
    """A socket file nobody listens on (its server died)."""
    if not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return True
    finally:
        probe.close()
    return False
