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
        # armed: this connection carries a push whose answer we will cut
        state = {"push": False, "rolled": False, "armed": False, "cut": False, "spoke": 0}

        def roll() -> None:
            if not state["rolled"]:
                state["rolled"] = True
                state["armed"] = self._should_cut()

        def upstream() -> None:  # client -> server
            try:
                while data := client.recv(65536):
                    state["spoke"] += 1
                    if data.startswith(b"POST ") and b"git-receive-pack" in data.split(b"\r\n", 1)[0]:
                        state["push"] = True  # smart HTTP: this request carries the pack
                        roll()
                    elif state["spoke"] == 1 and data[4:].startswith(b"git-receive-pack"):
                        state["push"] = True  # git://: the pack follows on this connection
                        try:
                            request = int(data[:4], 16)
                        except ValueError:
                            request = len(data)
                        if len(data) > request:
                            roll()  # a loaded machine can hand over the request and more at once
                    elif state["push"] and state["spoke"] > 1:
                        roll()
                    server.sendall(data)
                if not state["cut"]:
                    server.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=upstream, daemon=True)
        t.start()
        try:
            while data := server.recv(65536):
                if state["armed"]:
                    # The server answers the push: it has the pack. Hang up on the client and let
                    # the server finish its work undisturbed.
                    state["cut"] = True
                    with self.lock:
                        self.cuts += 1
                        if self.outage_after_cut:
                            self.down_until = time.monotonic() + self.outage_after_cut
                    client.shutdown(socket.SHUT_RDWR)
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
