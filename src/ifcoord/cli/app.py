"""The command line: arguments in, one JSON document or rich output out, errors to exit codes.

Commands are thin: they read the state (from the coordination branch, or a folder with --dir),
call the functional core (scheduler, ops, lint, views) and print. One place, `run`, turns every
failure into one line and the documented exit code.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="ifcoord",
    help=(
        "Coordinate parallel AI coding sessions through a git branch: markdown task boards, "
        "atomic claims, leases with heartbeats.\n\nExit codes: 0 done, 1 unexpected error, "
        "2 usage error, 3 conflict, 4 not ready, 5 remote unreachable, 6 invalid data."
    ),
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from ifcoord import __version__

        typer.echo(f"ifcoord {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", "-V", is_eager=True, callback=_version, help="Print ifcoord's version and exit."
    ),
) -> None:
    # Only here so that `--version` is listed in `ifcoord --help`; `__main__` answers it
    # before the CLI is even imported.
    pass


from ifcoord.cli import ci, people, reads, sessions  # noqa: E402

reads.register(app)
sessions.register(app)
people.register(app)
ci.register(app)
from ifcoord.cli import agent as agent_commands  # noqa: E402

agent_commands.register(app)

# -- the entry point ------------------------------------------------------------------------------


def run(argv: list[str]) -> int:
    """Run the CLI; every failure becomes one line on stderr (or a JSON error) and an exit code."""
    from ifcoord.cli.entry import execute

    return execute(typer.main.get_command(app), argv)
