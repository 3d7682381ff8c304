"""The client side of warm commands: hand a command to this user's running server, if any.

`ifcoord claim ...` starts an interpreter and, before importing anything of the CLI, asks the
server at `address()` to run it. The server forks a copy of itself that already has every
module imported, gives it this process's standard input, output and error (passed over the
socket), its working folder, environment and arguments, and the copy runs the command exactly
as this process would have. This process waits for the exit code and forwards SIGINT, SIGTERM
and SIGHUP to the copy. See docs/agents.md, section 6.

Whatever goes wrong before the server has agreed to run the command (no server, a busy or
refusing server, a standard stream that is closed) leaves the command to this process: it runs
locally, as it did before servers existed. Once the server agreed, the command is the copy's:
it is never run twice.
"""

from __future__ import annotations

import _socket  # the C module: `socket` imports selectors and enum, a tenth of our start-up
import marshal
import os
import sys

from ifcoord.serve.address import address

# Commands that run once and exit: a server runs them, and they run without the cyclic garbage
# collector. Long-running ones (poll, watch, arbitrate, serve, mcp) always run in their own
# process, with the collector.
ONE_SHOT = frozenset(
    ("claim", "reclaim", "progress", "block", "unblock", "complete", "release", "heartbeat", "now",
     "next", "board", "show", "status", "lint", "log", "graph", "brief", "join", "init", "events",
     "task", "agent", "ci")
)  # fmt: skip
ACCEPT_WAIT = 0.5  # seconds a client waits for a busy server to take its command before running it
HEADER_SIZE = 4  # the request's length, big-endian


class _Lost(Exception):
    """The server went away after it agreed to run the command."""


def enabled() -> bool:
    return os.environ.get("IFCOORD_SERVER", "1") != "0"


def request(argv: list[str]) -> bytes:
    """The command as bytes: marshal (built in, nothing to import) of plain strings; the peer
    is the same user's server, checked by uid."""
    payload = marshal.dumps(
        {
            "argv": list(argv),
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "encoding": getattr(sys.stdout, "encoding", None) or "utf-8",
        }
    )
    return len(payload).to_bytes(HEADER_SIZE, "big") + payload


def served(argv: list[str]) -> int | None:
    """The command's exit code when a server ran it; None when this process must run it."""
    if not argv or argv[0] not in ONE_SHOT or not enabled():
        return None
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)  # a closed standard stream cannot be passed on
        message = request(argv)
    except (OSError, ValueError):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(ACCEPT_WAIT)
        reader = _Lines(sock)
        try:
            sock.connect(address())
            fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
            sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            answer = reader.line()
        except (OSError, _Lost):
            return None  # no server, or it did not take the command in time
        if not answer.startswith("A"):
            return None  # refused (busy, or it cannot fork safely now)
        try:
            sock.sendall(b"G\n")  # from here on the command is the server's
        except OSError:
            return None
        sock.settimeout(None)
        return _wait(reader)
    finally:
        sock.close()


class _Lines:
    """Lines read from the server, as they arrive."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def line(self) -> str:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(256)
            if not chunk:
                raise _Lost()
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode().strip()


def _wait(reader: _Lines) -> int | None:
    """Forward signals to the server's copy and return its exit code (None: the server could
    not start a copy, so the command never ran)."""
    try:
        started = reader.line()
    except (OSError, _Lost):
        started = ""
    if not started.startswith("P"):
        return None
    pid = int(started[1:])
    import signal

    forwarded: list[int] = []

    def forward(signum: int, frame: object) -> None:
        forwarded.append(signum)
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    try:
        return int(reader.line()[1:])
    except (OSError, ValueError, _Lost):
        if forwarded:  # the copy died of the signal this process was sent: so does this one
            signal.signal(forwarded[-1], signal.SIG_DFL)
            os.kill(os.getpid(), forwarded[-1])
        sys.stderr.write(f"ifcoord: the command's process ({pid}) ended without an exit code\n")
        return 1
