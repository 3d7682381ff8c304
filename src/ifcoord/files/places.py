"""Where ifcoord keeps what the clones of one user on one machine share: the queues at each
branch (git/queue.py, with their handoffs) and the parse cache (core/parsecache.py)."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_home() -> Path:
    """`~/.cache/ifcoord`, or `$XDG_CACHE_HOME/ifcoord`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ifcoord"
