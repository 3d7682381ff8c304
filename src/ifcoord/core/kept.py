"""Results of pure functions of file contents, kept in memory by their arguments while those
contents are small: a loop calls them with the same texts at every tip (docs/protocol.md,
section 2). One size rule for every such cache: a hostile file kept thousands of times must
not hold hundreds of megabytes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class KeptWhenSmall(Generic[T]):
    """`fn` behind an LRU of `maxsize` calls; a call whose bytes arguments come to more than
    `max_bytes` together is computed each time and not kept."""

    def __init__(self, fn: Callable[..., T], maxsize: int, max_bytes: int) -> None:
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._kept = functools.lru_cache(maxsize=maxsize)(fn)
        self.max_bytes = max_bytes

    def __call__(self, *args: Any) -> T:
        if sum(len(a) for a in args if isinstance(a, bytes)) > self.max_bytes:
            return self._fn(*args)
        return self._kept(*args)

    def cache_info(self) -> Any:
        return self._kept.cache_info()

    def cache_clear(self) -> None:
        self._kept.cache_clear()


def kept_when_small(maxsize: int, max_bytes: int) -> Callable[[Callable[..., T]], KeptWhenSmall[T]]:
    def wrap(fn: Callable[..., T]) -> KeptWhenSmall[T]:
        return KeptWhenSmall(fn, maxsize, max_bytes)

    return wrap
