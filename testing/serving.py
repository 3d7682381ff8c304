"""Starting an `ifcoord serve` for a test run or a benchmark (docs/agents.md, section 6), and
knowing when it listens."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Sequence


def start_server(
    ifcoord: Sequence[str], name: str, *args: str, timeout: float = 60
) -> subprocess.Popen[bytes]:
    """`ifcoord serve ARGS` under IFCOORD_SERVER=`name`, returned once it accepts connections
    (a probe that sends nothing: the server drops it). RuntimeError when it does not start."""
    from ifcoord.serve.address import address

    env = {**os.environ, "IFCOORD_SERVER": name}
    proc = subprocess.Popen(
        [*ifcoord, "serve", *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    saved = os.environ.get("IFCOORD_SERVER")
    os.environ["IFCOORD_SERVER"] = name  # address() reads it
    try:
        where = address()
    finally:
        if saved is None:
            os.environ.pop("IFCOORD_SERVER", None)
        else:
            os.environ["IFCOORD_SERVER"] = saved
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(where)
                return proc
            except OSError:
                pass
        time.sleep(0.05)
    stop_server(proc)
    raise RuntimeError("ifcoord serve did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
