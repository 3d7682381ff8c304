"""Where a command server listens, and which servers may answer a given client (stdlib only).

A server answers a client only when both run the same ifcoord: the same interpreter, the same
package folder and the same source files (size and modification time of every module). The
fingerprint is part of the address, so a client of an upgraded or edited ifcoord never reaches
an old server; it finds none and runs the command itself.

On Linux the address is an abstract Unix socket (no file to clean up, no path-length limit);
elsewhere a socket file in a private folder of the temporary directory.
"""

from __future__ import annotations

import os
import sys
import zlib

import ifcoord

PACKAGE = os.path.dirname(os.path.abspath(ifcoord.__file__))
ABSTRACT = sys.platform.startswith("linux")


def fingerprint() -> str:
    """A digest of the interpreter, the package's place and its sources (under 1 ms to compute;
    zlib rather than hashlib, whose import alone costs more: this is not a security boundary,
    the uid check is)."""
    parts = [sys.executable, PACKAGE, ifcoord.__version__]
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                parts.append(f"{folder}/{name}\0{st.st_size}\0{st.st_mtime_ns}")
    data = "\0".join(parts).encode()
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}"


def address(fp: str | None = None) -> str:
    """The socket address of this user's server for this ifcoord. IFCOORD_SERVER names a server
    of its own (a project, or a test) instead of the user's default one."""
    fp = fp or fingerprint()
    name = os.environ.get("IFCOORD_SERVER", "")
    if name not in ("", "1"):
        fp = f"{fp}-{zlib.crc32(name.encode()):08x}"
    if ABSTRACT:
        return f"\0ifcoord-{os.getuid()}-{fp}"
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), f"ifcoord-{os.getuid()}")
    return os.path.join(folder, f"{fp}.sock")
