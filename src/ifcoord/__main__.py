"""Entry point: `ifcoord` and `python -m ifcoord`. Maps every error to one line and an exit code.

`--version` answers before the CLI framework is imported, so scripts probing for ifcoord pay
only for the interpreter. A one-shot command is first offered to this user's command server (a
running `ifcoord poll` or `ifcoord serve`, serve/client.py), which runs it with everything
already imported; without one, this process runs it.
"""

from __future__ import annotations

import sys

from ifcoord import __version__


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(f"ifcoord {__version__}")
        return 0
    if argv is None:  # a real process, not a test calling main() in-process
        from ifcoord.serve.client import ONE_SHOT, served

        code = served(args)
        if code is not None:
            return code
        if args and args[0] in ONE_SHOT:
            return finish(local(args))  # loops and servers end the usual way
    return local(args)


def finish(code: int) -> int:
    """End this process as soon as its one-shot command is done: exit handlers run and output is
    flushed, but the objects are not torn down one by one. After a command that read 5,000
    tasks, the interpreter's final collection and freeing of every model took 300 ms, as long as
    the command itself (the command server's copies end the same way). A stream that cannot be
    flushed (a closed pipe) is left to the interpreter, which reports it as it always does."""
    import atexit
    import os

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return code
    os._exit(code)


def local(args: list[str]) -> int:
    """Run the command in this process."""
    import os

    # ifcoord uses no pydantic plugins; looking them up scans every installed package's
    # metadata on each command, which an agent pays dozens of times a minute.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from ifcoord.cli.app import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
