"""The fault proxy of the chaos checker (testing/proxy.py) tells a smart-HTTP push by its request
line, however the client's bytes are split into reads."""

from __future__ import annotations

from testing.proxy import PushRequests

PUSH = b"POST /remote.git/git-receive-pack HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\n0000"
FETCH = b"POST /remote.git/git-upload-pack HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\n0000"
ADVERTISE = b"GET /remote.git/info/refs?service=git-receive-pack HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def seen(*reads: bytes) -> list[bool]:
    spotter = PushRequests()
    return [spotter.feed(r) for r in reads]


def test_a_push_request_line_split_anywhere_across_reads_is_seen_once_it_ends() -> None:
    line_end = PUSH.index(b"\r\n") + 2
    for cut in range(1, len(PUSH)):
        first, second = seen(PUSH[:cut], PUSH[cut:])
        assert first == (cut >= line_end), cut  # not before the line is whole
        assert second, cut


def test_a_push_after_other_requests_on_a_kept_alive_connection_is_seen_mid_read() -> None:
    assert seen(ADVERTISE, FETCH) == [False, False]  # the advertisement and a fetch are no push
    assert seen(ADVERTISE + FETCH[:10], FETCH[10:] + PUSH[:20], PUSH[20:]) == [False, False, True]
    assert seen(FETCH + PUSH) == [True]  # after the previous request's body, in the same read
