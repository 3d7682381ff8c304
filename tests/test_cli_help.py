"""Every command's `--help`, subcommands included: each option and argument says what it does,
placeholders read as words, and `--version` is listed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from ifcoord.cli.app import app, run


def command_paths() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


def test_the_walk_reaches_subcommands() -> None:
    paths = command_paths()
    assert ("task", "edit") in paths and ("task", "cancel") in paths and ("show",) in paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "ifcoord")
def test_help_describes_every_option_with_readable_placeholders(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([*path, "--help"]) == 0
    text = capsys.readouterr().out
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    for param in command.params:
        if param.name in ("help", "install_completion", "show_completion"):
            continue
        assert (getattr(param, "help", None) or "").strip(), (
            f"{' '.join(path)}: {param.opts} has no help text"
        )
        for opt in param.opts:
            assert opt in text or not opt.startswith("-")
    assert not re.search(r"\{[A-Za-z_]+\}|<[a-z][^>]*>", text), text
    if not path:
        assert "--version" in text


def test_the_error_outside_a_clone_names_only_options_that_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert run(["board"]) == 2
    line = capsys.readouterr().err
    assert "is not inside a git repository" in line
    named = set(re.findall(r"--[a-z][a-z-]*", line))
    board = typer.main.get_command(app).commands["board"]  # type: ignore[attr-defined]
    known = {opt for param in board.params for opt in param.opts}
    assert named and named <= known, (named, line)
