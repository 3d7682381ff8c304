"""`make demo` waits on the branch, not a wall clock: it gives up only when nothing moves."""

from __future__ import annotations

import time

from ifcoord import demo


def test_the_demo_gives_up_when_the_branch_stops_moving_not_at_a_fixed_time() -> None:
    started = time.monotonic()
    code = demo.main(sessions=0, stall_limit=0.5, time_limit=600)
    assert code == 1  # no session: nothing done, reported as incomplete
    assert time.monotonic() - started < 300

