"""The one retry policy: jittered exponential backoff under a deadline (docs/protocol.md, section 3).

Every retry of ifcoord (a transaction that lost its compare-and-swap, a remote that did not
answer, a remote busy with another push of the same branch) waits this way. The jitter matters
more than the growth: sessions that lost a race together must not all come back at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenacity import Retrying

FIRST_WAIT = 0.1  # seconds: the first wait is random up to this, then it doubles
LONGEST_WAIT = 3.0


def backoff(
    deadline: float,
    retry_if: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
    reraise: bool = False,
) -> Retrying:
    """A tenacity Retrying that retries the exceptions `retry_if` accepts until `deadline`
    seconds have passed; with `reraise`, the last exception itself comes out at the end."""
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

    return Retrying(
        retry=retry_if_exception(retry_if),
        stop=stop_after_delay(deadline),
        wait=wait_random_exponential(multiplier=FIRST_WAIT, max=LONGEST_WAIT),
        sleep=sleep,
        reraise=reraise,
    )
