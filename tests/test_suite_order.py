"""The suite's own order under pytest-xdist: long scenarios first, one in each worker's slice."""

from __future__ import annotations

from testing.suite_order import long_ones_first


def slices(items: list[str], workers: int) -> list[list[str]]:
    """How pytest-xdist's worksteal first cuts the list: consecutive, `left // workers_left` each."""
    out, left, at = [], len(items), 0
    for k in range(workers):
        size = left // (workers - k)
        out.append(items[at : at + size])
        at, left = at + size, left - size
    return out


def test_each_worker_starts_with_a_long_one_the_longest_first() -> None:
    items = [f"t{n}" for n in range(20)]
    long = {"t3": 20.0, "t17": 70.0, "t18": 55.0, "t9": 15.0, "t10": 15.0, "t11": 12.0}
    ordered = long_ones_first(items, 4, long.get)
    assert sorted(ordered) == sorted(items)  # nothing lost, nothing twice
    heads = [part[0] for part in slices(ordered, 4)]
    assert heads == ["t17", "t18", "t3", "t9"]
    assert slices(ordered, 4)[0][1] == "t10" and slices(ordered, 4)[1][1] == "t11"  # ties: collection order
    short = [i for i in ordered if i not in long]
    assert short == [i for i in items if i not in long]  # the others keep their order


def test_more_long_ones_than_room_and_no_workers_lose_nothing() -> None:
    items = [f"t{n}" for n in range(8)]
    ordered = long_ones_first(items, 4, lambda i: 1.0 if i != "t0" else None)
    assert sorted(ordered) == sorted(items)
    assert long_ones_first(items, 0, lambda i: 1.0) == items
    assert long_ones_first(items, 4, lambda i: None) == items
