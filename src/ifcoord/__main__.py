"""Entry point: `ifcoord` and `python -m ifcoord`. Maps every error to one line and an exit code.

`--version` answers before the CLI framework is imported, so scripts probing for ifcoord pay
only for the interpreter.
"""

from __future__ import annotations

import gc
import os
import sys

from ifcoord import __version__

# Commands that run once and exit (not `poll`, `watch`, `arbitrate`, which run for days).
ONE_SHOT = frozenset(
    ("claim", "reclaim", "progress", "block", "unblock", "complete", "release", "heartbeat", "now",
     "next", "board", "show", "status", "lint", "log", "graph", "brief", "join", "init")
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(f"ifcoord {__version__}")
        return 0
    # ifcoord uses no pydantic plugins; looking them up scans every installed package's
    # metadata on each command, which an agent pays dozens of times a minute.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if args and args[0] in ONE_SHOT:
        # A command that reads a big board builds tens of thousands of models that live until
        # it exits; the cyclic collector would walk them again and again (a third of `next` at
        # 5,000 tasks). Reference counting still frees what it can. Loops keep the collector.
        gc.disable()
    from ifcoord.cli.app import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
