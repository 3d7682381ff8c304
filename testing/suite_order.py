"""The order the test suite runs in under pytest-xdist (tests/conftest.py).

pytest-xdist's `worksteal` cuts the list of tests into one consecutive slice per worker (each
`left // workers_left` long) and later moves tests from the tail of a busy worker's slice to an
idle one. A long scenario at the end of a slice starts late and ends alone, one core busy and
the other idle. So the long ones (the longest first) go one to each slice in turn, at its head:
they all start at once and the short tests fill in around them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def long_ones_first(items: Sequence[T], workers: int, seconds: Callable[[T], float | None]) -> list[T]:
    """`items` reordered for `workers` slices: the long ones (`seconds` not None, longest first)
    dealt in turn to the head of each slice, the others after them in their own order. The result
    depends on the items only, so every worker computes the same."""
    if workers < 2:
        return list(items)
    timed = [(s, n, i) for n, i in enumerate(items) if (s := seconds(i)) is not None]
    long = [i for _, _, i in sorted(timed, key=lambda t: (-t[0], t[1]))]
    if not long:
        return list(items)
    chosen = {id(i) for i in long}
    rest = [i for i in items if id(i) not in chosen]
    heads = [long[k::workers] for k in range(workers)]
    ordered: list[T] = []
    left = len(items)
    for k in range(workers):
        size = left // (workers - k)
        part = heads[k][:size]
        fill = min(size - len(part), len(rest))
        part += rest[:fill]
        rest = rest[fill:]
        heads[k] = heads[k][len(part) - fill :]
        ordered += part
        left -= len(part)
    return ordered + [i for head in heads for i in head] + rest
