"""A TCP proxy in front of a git server (git daemon or smart HTTP) that can cut pushes after the
server took them and simulate outages: the faults of a real network, on 127.0.0.1."""

from __future__ import annotations

import random
import re
import socket
import threading
import time


class FaultProxy:
    """Forwards 127.0.0.1:port to a target port.

    - `cut_next()`: the next push is cut just as the server starts answering it (the server has
      the pack and finishes its update; the client sees a reset).
    - `cut_probability`: cut that share of pushes at random (the randomized checker).
    - `drop_next()`: lose the next push on its way (the server never gets it).
    - `outage_after_cut`: after a cut or a drop, refuse every connection for that many seconds.
    - `down_until`: refuse connections until that monotonic time.
    """

    def __init__(self, target_port: int, seed: int = 0) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.cut_once = False
        self.drop_once = False
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

    def drop_next(self) -> None:
        """Lose the next push on its way: the client has sent it, the server never gets it."""
        with self.lock:
            self.drop_once = True

    def _should_drop(self) -> bool:
        with self.lock:
            dropped, self.drop_once = self.drop_once, False
            return dropped

    def _outage(self) -> None:
        with self.lock:
            if self.outage_after_cut:
                self.down_until = time.monotonic() + self.outage_after_cut

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
        # push: this connection carries a push; sent: the client has sent it (commands, pack);
        # known: what the connection carries is known (its request may come in several reads:
        # git can write a pkt-line's length and its payload apart)
        state = {"push": False, "sent": False, "decided": False, "cut": False, "known": False, "http": False}
        head = bytearray()
        posts = PushRequests()

        def upstream() -> None:  # client -> server
            try:
                while data := client.recv(65536):
                    if not state["known"]:
                        head.extend(data)
                        kind = classify(bytes(head))
                        if kind is not None:
                            state["known"] = True
                            state["http"] = kind == "http"
                            with self.lock:
                                self.requests.append(bytes(head[:48]))
                            if kind == "git push":
                                state["push"] = True  # git://: the commands and the pack follow
                                state["sent"] = len(head) > int(head[:4], 16)
                    elif state["push"] and not state["http"]:
                        state["sent"] = True
                    if state["http"] and posts.feed(data):
                        # smart HTTP, on any request of a kept-alive connection: it carries the pack
                        state["push"] = state["sent"] = True
                    if state["sent"] and not state["decided"] and self._should_drop():
                        state["decided"] = True  # the push never reaches the server
                        self._record("push dropped")
                        self._outage()
                        for s in (client, server):
                            s.shutdown(socket.SHUT_RDWR)
                        return
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
                        self._outage()
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


class PushRequests:
    """Spots a smart-HTTP push (a `POST .../git-receive-pack` request line) in the bytes a client
    sends, fed as they come: a request line may be split across reads, and on a kept-alive
    connection it may start anywhere in one (after the end of the previous request's body)."""

    WINDOW = 1024  # bytes kept from earlier reads: longer than any request line git sends

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, data: bytes) -> bool:
        """Whether a push request line has ended within the bytes seen so far (this read included)."""
        window = self.tail + data
        self.tail = window[-self.WINDOW :]
        return _PUSH_REQUEST.search(window) is not None


# A request follows the previous one's body directly (no line break between): the request line
# is told by its own shape, wherever it starts.
_PUSH_REQUEST = re.compile(rb"POST [^\r\n ]*/git-receive-pack HTTP/1\.[01]\r\n")


def classify(head: bytes) -> str | None:
    """What a connection carries, from its first bytes: "http" (smart HTTP: its pushes are
    told by each request line), "git push" or "other"; None while too few have come to tell."""
    if head[:1].isalpha():  # smart HTTP: a request line
        return "http"
    if len(head) < 4:
        return None
    try:
        length = int(head[:4], 16)
    except ValueError:
        return "other"
    service = b"git-receive-pack"
    if len(head) < min(length, 4 + len(service)):
        return None
    return "git push" if head[4:].startswith(service) else "other"
