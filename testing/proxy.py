"""A TCP proxy in front of a git server (git daemon or smart HTTP) that can cut pushes after the
server took them and simulate outages: the faults of a real network, on 127.0.0.1."""

from __future__ import annotations

import random
import socket
import threading
import time


class FaultProxy:
    """Forwards 127.0.0.1:port to a target port.

    - `cut_next()`: the next push is cut just as the server starts answering it (the server has
      the pack and finishes its update; the client sees a reset).
    - `cut_probability`: cut that share of pushes at random (the randomized checker).
    - `outage_after_cut`: after a cut, refuse every connection for that many seconds.
    - `down_until`: refuse connections until that monotonic time.
    """

    def __init__(self, target_port: int, seed: int = 0) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.cut_once = False
        self.cut_probability = 0.0
        self.outage_after_cut = 0.0
        self.down_until = 0.0
        self.cuts = 0
        self.refused = 0
        self.pushes: list[str] = []  # what became of each push, in order (for failure messages)
        self.requests: list[bytes] = []  # the first bytes of every connection, in order (the same)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next(self) -> None:
        with self.lock:
            self.cut_once = True

    def _should_cut(self) -> bool:
        with self.lock:
            if self.cut_once:
                self.cut_once = False
                return True
            return self.cut_probability > 0 and self.rng.random() < self.cut_probability

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                self.refused += 1
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        # push: this connection carries a push; sent: the client has sent it (commands, pack)
        state = {"push": False, "sent": False, "decided": False, "cut": False, "spoke": 0}

        def upstream() -> None:  # client -> server
            try:
                while data := client.recv(65536):
                    state["spoke"] += 1
                    if state["spoke"] == 1:
                        with self.lock:
                            self.requests.append(data[:48])
                    if data.startswith(b"POST ") and b"git-receive-pack" in data.split(b"\r\n", 1)[0]:
                        state["push"] = state["sent"] = True  # smart HTTP: the request carries the pack
                    elif state["spoke"] == 1 and data[4:].startswith(b"git-receive-pack"):
                        state["push"] = True  # git://: the commands and the pack follow
                        try:
                            request = int(data[:4], 16)
                        except ValueError:
                            request = len(data)
                        # a loaded machine can hand over the request and more in one read
                        state["sent"] = len(data) > request
                    elif state["push"] and state["spoke"] > 1:
                        state["sent"] = True
                    server.sendall(data)
                if not state["cut"]:
                    server.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=upstream, daemon=True)
        t.start()
        try:
            while data := server.recv(65536):
                if state["sent"] and not state["decided"]:
                    # The server answers the push, so it has the pack: cut or not is decided now,
                    # not when the client spoke (a push the client gives up on before any answer,
                    # such as a stale lease, never uses up a cut meant for a push the server took).
                    state["decided"] = True
                    cut = self._should_cut()
                    self._record("push cut" if cut else "push answered")
                    if cut:
                        state["cut"] = True
                        with self.lock:
                            self.cuts += 1
                            if self.outage_after_cut:
                                self.down_until = time.monotonic() + self.outage_after_cut
                        # Hang up on the client; let the server finish its work undisturbed.
                        client.shutdown(socket.SHUT_RDWR)
                        while server.recv(65536):
                            pass
                        break
                client.sendall(data)
        except OSError:
            pass
        finally:
            if state["push"] and not state["decided"]:
                self._record("push never answered" if state["sent"] else "push never sent")
            for s in (client, server):
                try:
                    s.close()
                except OSError:
                    pass

    def _record(self, event: str) -> None:
        with self.lock:
            self.pushes.append(event)

    def close(self) -> None:
        self.listener.close()
