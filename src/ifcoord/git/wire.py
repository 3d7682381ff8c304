"""git:// without git's 40 ms stalls: the branch's tip, and the push of one commit, spoken directly.

git (2.39 here) writes a pkt-line as two writes, its four-byte length and then its payload, on a
TCP socket without TCP_NODELAY. The second write is small, so Nagle's algorithm holds it until
the server acknowledges the first; the server has nothing to send until it has the whole line, so
it delays that acknowledgement (40 ms on Linux). Every `ls-remote`, fetch and push over git://
pays it at least once. Against a `git daemon` on this machine: `ls-remote` 49 ms (5 ms with the
stall gone), a push of one commit 73 ms (16 ms), while the push holds the machine's turn.

The requests of a turn and of a poll that need no pack from the server are spoken here, in
git's protocol v0 (what git speaks over git:// unless asked for v2), on a socket with
TCP_NODELAY: the refs, for the branch's tip or the list of branches (the advertisement of
`git-upload-pack`, then a flush: what `ls-remote` does) and the push of a commit whose new
objects ifcoord has just written (`git-receive-pack`: the ref's old and new value, which the
server swaps only while the ref still holds the old one, the objects as a pack, and the
server's report). Anything else (a fetch, a
push of other commits, a server or a URL this does not expect) goes through git.

It is used only where git itself would connect straight to the URL: a git:// URL with no
`url.*.insteadOf`, `core.gitProxy`, `protocol.*` or GIT_PROXY_COMMAND that could change how git
reaches it, and not with IFCOORD_GIT_WIRE=0. A request that fails before the push is sent
(refused, a server error, a reply this does not read) is made again by git, which says what went
wrong in its words; once the push is sent, a broken connection leaves its outcome unknown, as
with git, and the caller finds out (git/transaction.py). A server that does not answer within
the time is unreachable for now (git would wait as long), and git is not asked.
"""

from __future__ import annotations

import _socket
import hashlib
import os
import struct
import zlib

from ifcoord.git import objects

DEFAULT_PORT = 9418
ZERO = "0" * 40
FLUSH = b"0000"
KINDS = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
AGENT = b"agent=ifcoord"

Loose = list[tuple[str, bytes]]  # (hex sha, the object's loose form: zlib of "kind size\0data")


class NotSpoken(Exception):
    """The request could not be made here and nothing was changed: let git make it."""


class Unanswered(Exception):
    """The server did not answer within the time, and nothing was changed. git would wait as
    long, so it is not asked: the remote is unreachable for now."""


class Address:
    """Where a git:// URL points: host, port, the path asked for, and the `host=` git sends."""

    __slots__ = ("host", "port", "path", "host_field")

    def __init__(self, host: str, port: int, path: str, host_field: str) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.host_field = host_field


def daemon_address(url: str) -> Address | None:
    """The address of a plain git:// URL; None for anything else (which git then handles)."""
    if not url.startswith("git://") or "%" in url or any(c.isspace() for c in url):
        return None
    hostport, slash, path = url[len("git://") :].partition("/")
    if not slash or not hostport or "@" in hostport or not path:
        return None
    if hostport.startswith("["):  # [::1]:9418
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            return None
        port = after[1:]
    else:
        host, _, port = hostport.partition(":")
    if not host or (port and not port.isdigit()):
        return None
    number = int(port) if port else DEFAULT_PORT
    if not 0 < number < 65536:
        return None
    return Address(host, number, "/" + path, hostport)


def address_for(url: str, config: dict[str, str]) -> Address | None:
    """Where to speak to `url` without git: its address when it is a plain git:// URL that git
    would reach directly (`allowed`); None: git reaches it."""
    return daemon_address(url) if allowed(url, config) else None


def allowed(url: str, config: dict[str, str], environ: dict[str, str] | None = None) -> bool:
    """Whether git would connect straight to `url`, given the clone's git config (keys in git's
    lower case): no rewriting of it (`url.*.insteadOf`, `pushInsteadOf`), no proxy, no policy on
    the git protocol (`protocol.allow`, `protocol.git.allow`), and not turned off."""
    env = os.environ if environ is None else environ
    if env.get("IFCOORD_GIT_WIRE", "1") == "0" or "GIT_PROXY_COMMAND" in env or "GIT_ALLOW_PROTOCOL" in env:
        return False
    for key, value in config.items():
        if key in ("core.gitproxy", "protocol.allow", "protocol.git.allow"):
            return False
        if key.startswith("url.") and key.endswith(("insteadof", "pushinsteadof")) and url.startswith(value):
            return False
    return True


def pkt(data: bytes) -> bytes:
    return b"%04x" % (len(data) + 4) + data


class Connection:
    """One request to a git daemon: a TCP socket with TCP_NODELAY, and pkt-lines read off it."""

    def __init__(self, address: Address, service: str, timeout: float) -> None:
        self.sock = _connect(address.host, address.port, timeout)
        self.buffer = b""
        request = f"{service} {address.path}\0host={address.host_field}\0".encode()
        self.sock.sendall(pkt(request))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def read_line(self) -> bytes | None:
        """The next pkt-line's payload; None for a flush."""
        head = self._exactly(4)
        try:
            size = int(head, 16)
        except ValueError:
            raise ConnectionError(f"not a pkt-line length: {head!r}") from None
        if size == 0:
            return None
        if size < 4:
            raise ConnectionError(f"a pkt-line length of {size}")
        return self._exactly(size - 4)

    def advertisement(self, none_is_empty: bool = False) -> tuple[dict[str, str], set[str]]:
        """The refs the server advertises (name -> sha) and its capabilities. An upload-pack of a
        repository without refs may advertise nothing at all (`none_is_empty`)."""
        refs: dict[str, str] = {}
        capabilities: set[str] = set()
        first = True
        while (line := self.read_line()) is not None:
            if first and line.startswith(b"ERR "):
                raise NotSpoken(line[4:].decode("utf-8", "replace").strip())
            line = line.rstrip(b"\n")
            if first:
                line, _, caps = line.partition(b"\0")
                capabilities = set(caps.decode("utf-8", "replace").split())
                first = False
            sha, _, name = line.decode("utf-8", "replace").partition(" ")
            if len(sha) != 40 or not name:
                raise NotSpoken(f"an advertisement line this does not read: {line[:80]!r}")
            if name != "capabilities^{}":
                refs[name] = sha
        if first and not none_is_empty:
            raise NotSpoken("the server advertised nothing")
        if any(c.startswith("object-format=") and c != "object-format=sha1" for c in capabilities):
            raise NotSpoken("a repository whose objects are not named by SHA-1")
        return refs, capabilities


def _connect(host: str, port: int, timeout: float) -> _socket.socket:
    last: OSError | None = None
    for family, kind, proto, _, where in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(where)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        return sock
    raise last or OSError(f"no address for {host}")


def _opened(
    address: Address, service: str, timeout: float, none_is_empty: bool = False
) -> tuple[Connection, dict[str, str], set[str]]:
    """A connection to `service` with the server's advertisement read: (connection, refs,
    capabilities). Unanswered when the server said nothing in time, NotSpoken for any other
    failure; nothing was sent but the request either way."""
    conn: Connection | None = None
    try:
        conn = Connection(address, service, timeout)
        refs, capabilities = conn.advertisement(none_is_empty)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, TimeoutError):
            raise Unanswered(str(exc)) from exc
        if isinstance(exc, OSError):  # ConnectionError too
            raise NotSpoken(str(exc)) from exc
        raise
    return conn, refs, capabilities


def remote_refs(address: Address, timeout: float) -> dict[str, str]:
    """Every ref the server advertises, name -> sha, as `git ls-remote` lists them. NotSpoken
    when they could not be read here (git then asks)."""
    conn, refs, _ = _opened(address, "git-upload-pack", timeout, none_is_empty=True)
    with conn:
        try:
            conn.sock.sendall(FLUSH)  # no wants: the server ends the conversation
        except OSError:
            pass  # the refs are read; how the conversation ends does not change them
    return refs


def pack(loose: Loose) -> bytes:
    """A pack (version 2, no deltas) of objects given in their loose form."""
    seen: set[str] = set()
    parts: list[bytes] = []
    for hexsha, compressed in loose:
        if hexsha in seen:
            continue
        seen.add(hexsha)
        name, data = objects.loose_parts(compressed)
        kind = KINDS[name]
        size = len(data)
        byte = (kind << 4) | (size & 0x0F)
        size >>= 4
        head = bytearray()
        while size:
            head.append(byte | 0x80)
            byte = size & 0x7F
            size >>= 7
        head.append(byte)
        parts.append(bytes(head))
        parts.append(zlib.compress(data, 1))
    body = b"PACK" + struct.pack(">II", 2, len(seen)) + b"".join(parts)
    return body + hashlib.sha1(body).digest()


LANDED, REJECTED, UNKNOWN = "landed", "rejected", "unknown"  # the values of store.PushOutcome


class Report:
    """What the server said of a push that was sent: LANDED, REJECTED (with its reason), or
    UNKNOWN (the connection broke before it said)."""

    __slots__ = ("outcome", "reason")

    def __init__(self, outcome: str, reason: str = "") -> None:
        self.outcome = outcome
        self.reason = reason


def push(
    address: Address, ref: str, expected: str | None, commit: str, loose: Loose, timeout: float
) -> Report:
    """Swap `ref` on the server from `expected` (None: it must not exist) to `commit`, sending
    `loose` (every object of `commit` that `expected` lacks) as the pack. NotSpoken when nothing
    was sent and git should push instead (or when the server unpacked but refused the objects, so
    that git sends what it thinks is missing)."""
    conn, refs, capabilities = _opened(address, "git-receive-pack", timeout)
    with conn:
        if "report-status" not in capabilities:
            raise NotSpoken("the server does not report a push's status")
        if refs.get(ref) != expected:
            # What --force-with-lease refuses before sending anything: the tip moved.
            return Report(REJECTED, "stale info")
        command = f"{expected or ZERO} {commit} {ref}\0report-status {AGENT.decode()}".encode()
        try:
            conn.sock.sendall(pkt(command) + FLUSH + pack(loose))
            lines: list[str] = []
            while (said := conn.read_line()) is not None:
                lines.append(said.decode("utf-8", "replace").rstrip("\n"))
        except OSError:  # a timeout, a reset, a closed connection: it may have landed
            return Report(UNKNOWN)
    if not lines or not lines[0].startswith("unpack "):
        return Report(UNKNOWN)
    for report in lines[1:]:
        status, _, rest = report.partition(" ")
        name, _, reason = rest.partition(" ")
        if name != ref:
            continue
        if status == "ok":
            return Report(LANDED)
        if lines[0] != "unpack ok" or "missing necessary objects" in reason:
            raise NotSpoken(f"the server refused the objects: {lines[0]}; {reason}")
        return Report(REJECTED, reason)
    return Report(UNKNOWN)
