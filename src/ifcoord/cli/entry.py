"""Running one command line: every failure becomes one line on stderr (or a JSON error) and the
documented exit code. `ifcoord.cli.app.run` and the command server's copies (serve/) both come
through `execute`, so a served command behaves exactly as one run in its own process.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ifcoord.cli.common import emit, note, readable_metavars
from ifcoord.errors import IfcoordError
from ifcoord.serve.client import ONE_SHOT, enabled
from ifcoord.views.text import has_control, safe

if TYPE_CHECKING:
    from ifcoord.serve.server import CommandServer  # only loops and `serve` make one

# What the served commands import lazily; a server imports it before its first fork.
WARM = (
    "ifcoord.core.ops", "ifcoord.core.rows", "ifcoord.core.lint", "ifcoord.session.workspace",
    "ifcoord.session.now", "ifcoord.views.terminal", "ifcoord.views.dashboard", "ifcoord.views.graph",
    "ifcoord.views.brief", "ifcoord.git.history", "rich.console", "rich.table", "rich.markup",
)  # fmt: skip


def command_server(ctx: typer.Context, log: Callable[[str], None] | None = None) -> CommandServer | None:
    """A server whose copies run commands through this CLI (None with IFCOORD_SERVER=0)."""
    if not enabled():
        return None
    import importlib

    from ifcoord.serve.server import CommandServer

    for module in WARM:  # imported once here, not once per command
        importlib.import_module(module)
    root = ctx.find_root().command
    return CommandServer(lambda argv: execute(root, argv), log)


def execute(command: Any, argv: list[str]) -> int:
    """Run `argv` through the CLI's root command; returns the exit code."""
    wants_json = "--json" in argv
    bad = next((i for i, arg in enumerate(argv) if has_control(arg)), None)
    if bad is not None:
        # A newline in a note becomes a second line in a board or a commit message, an ESC
        # sequence reaches every reader's terminal, bytes that are not UTF-8 reach no one intact.
        return report(
            wants_json, 2,
            f"argument {bad + 1} ({safe(argv[bad])[:60]}) holds a control character, a line break "
            "or bytes that are not UTF-8",
            "pass one line of plain text",
        )  # fmt: skip
    # A command's objects (parsed boards) live until it exits; Python's default collector
    # thresholds rescan them again and again, which made a 50,000-task board cost 3x more.
    gc.set_threshold(100_000, 50, 100)
    paused = gc.isenabled() and bool(argv) and argv[0] in ONE_SHOT
    if paused:
        # A command that reads a big board builds tens of thousands of models that live until
        # it exits; the cyclic collector would walk them again and again (a third of `next` at
        # 5,000 tasks). Reference counting still frees what it can. Loops keep the collector.
        gc.disable()
    try:
        return _execute(command, argv, wants_json)
    finally:
        if paused:
            # Everything the command allocated sits in the youngest generation: turned back on
            # as it is, the collector's next pass walks all of it (33 ms after `next` at 5,000
            # tasks, paid on the way out). Freezing and unfreezing moves it to the oldest
            # generation unwalked; a later full collection still frees what is garbage there.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _execute(command: Any, argv: list[str], wants_json: bool) -> int:
    try:
        plain_coercion()
        # standalone_mode=False makes click return the code of `typer.Exit` instead of exiting
        readable_metavars(command)
        code = command(args=argv, prog_name="ifcoord", standalone_mode=False)
        return code if isinstance(code, int) and not isinstance(code, bool) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        note("ifcoord: interrupted")
        return 130
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return report(wants_json, int(getattr(exc, "exit_code", 2)), message, "see `ifcoord --help`")
    except IfcoordError as exc:
        return report(wants_json, exc.exit_code, exc.line(), None)
    except KeyboardInterrupt:
        note("ifcoord: interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place unexpected errors become a line
        if "IFCOORD_DEBUG" in os.environ:
            raise
        return report(
            wants_json, 1, f"unexpected error: {type(exc).__name__}: {exc}",
            "rerun with IFCOORD_DEBUG=1 for a traceback and report it",
        )  # fmt: skip


# -- the parameter layer ---------------------------------------------------------------------------

# Typer checks every parameter's value with a pydantic TypeAdapter built on first use: importing
# the adapters and building them costs 150-300 ms per command, more than the command's own work.
# Our parameters are plain str, int, float, bool and Path (the options are still defined once, in
# the command signatures); those get the same conversion and the same error text here, and
# anything else keeps typer's own path.
_PLAIN_ERRORS = {
    int: "Input should be a valid integer, unable to parse string as an integer",
    float: "Input should be a valid number, unable to parse string as a number",
    bool: "Input should be a valid boolean, unable to interpret input",
}
_BOOL_WORDS = {
    **dict.fromkeys(("1", "on", "t", "true", "y", "yes"), True),
    **dict.fromkeys(("0", "off", "f", "false", "n", "no"), False),
}


def plain_coercion() -> None:
    """Give typer's plain parameters (including the help flags it adds while parsing) a
    converter without pydantic. Installed once; if typer's internals change, typer's own path
    stays in place."""
    from typer.core import _TyperParameter

    original = getattr(_TyperParameter, "get_runtime_param", None)
    if original is None or getattr(original, "ifcoord_plain", False):
        return

    def get_runtime_param(self: Any) -> Any:
        if getattr(self, "_runtime_param", None) is None:
            self._runtime_param = _plain_converter(self.type_descriptor)
        return original(self)

    get_runtime_param.ifcoord_plain = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]


def _plain_converter(descriptor: Any) -> Any:
    from typer._coercion import RuntimeParam

    annotation = descriptor.annotation
    info = descriptor.parameter_info
    if annotation not in (str, int, float, bool, Path) or descriptor.choices is not None:
        return None
    if getattr(info, "min", None) is not None or getattr(info, "max", None) is not None:
        return None
    if annotation is Path and (
        info.exists or not info.file_okay or not info.dir_okay or info.writable or info.readable is False
        or info.resolve_path or info.allow_dash or info.path_type is not None
    ):  # fmt: skip
        return None

    class PlainParam(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)):
                return value
            if annotation is Path:
                return Path(value)
            if annotation is str:
                return str(value)
            if annotation is bool:
                word = _BOOL_WORDS.get(str(value).strip().lower())
                if word is None:
                    raise typer.BadParameter(_PLAIN_ERRORS[bool], ctx=ctx, param=param)
                return word
            try:
                return annotation(value.strip() if isinstance(value, str) else value)
            except (TypeError, ValueError):
                raise typer.BadParameter(_PLAIN_ERRORS[annotation], ctx=ctx, param=param) from None

    return PlainParam(parameter_info=info, annotation=annotation)


def report(wants_json: bool, code: int, message: str, hint: str | None) -> int:
    line = f"{message}; {hint}" if hint else message
    if wants_json:
        emit({"error": {"code": code, "message": line}})
    note(f"ifcoord: {line}")
    return code
