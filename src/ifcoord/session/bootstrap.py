"""`ifcoord init`: create the coordination branch on the remote, importing boards as they are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ifcoord.core.snapshot import BranchState
from ifcoord.core.writeback import dashboard_change
from ifcoord.errors import UsageError
from ifcoord.files.config import CONFIG_PATH, parse_config, render_default_config
from ifcoord.git.transaction import Change

if TYPE_CHECKING:
    from ifcoord.session.workspace import Workspace

STATUS_KEEP = "status/.gitkeep"


def board_target(file: Path) -> str:
    return f"boards/{file.name}"


def read_board_files(board_files: list[Path]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for file in board_files:
        if not file.is_file():
            raise UsageError(f"board file {file} does not exist", hint="pass the path of a markdown board")
        target = board_target(file)
        if target in out:
            raise UsageError(f"two boards named {file.name}", hint="rename one of them")
        out[target] = file.read_bytes()
    return out


def read_config_file(config_file: Path | None) -> bytes:
    """The config to start the branch with; checked now, so a bad one is refused before any push."""
    if config_file is None:
        return render_default_config().encode()
    if not config_file.is_file():
        raise UsageError(f"config file {config_file} does not exist", hint="pass the path of an ifcoord.yaml")
    data = config_file.read_bytes()
    parse_config(data, str(config_file))
    return data


def init_changes(state: BranchState, boards: dict[str, bytes], config: bytes) -> dict[str, bytes | None]:
    """What init must add: everything on a new branch, only missing boards on an existing one."""
    if state.commit is None:
        return {CONFIG_PATH: config, STATUS_KEEP: b"", **boards}
    return {path: data for path, data in boards.items() if path not in state.raw}


def init_branch(ws: Workspace, board_files: list[Path], config_file: Path | None = None) -> dict[str, Any]:
    boards = read_board_files(board_files)
    config = read_config_file(config_file)

    def decide(state: BranchState) -> Change:
        files = init_changes(state, boards, config)
        settings = parse_config(config) if state.commit is None else state.snapshot.config
        if files and ws.dashboard is not None and settings.dashboard:
            # The dashboard is there from the first commit, not only after the first operation.
            files.update(dashboard_change(state.raw, files, ws.dashboard))
        verb = "create" if state.commit is None else "import"
        return Change(
            files,
            f"ifcoord: init {ws.branch}" if verb == "create" else f"ifcoord: import {len(files)} boards",
            {"Ifcoord-Op": "init"},
            payload=verb,
        )

    tx = ws.transactor.run(decide)
    if not tx.landed:
        message = f"{ws.branch} on {ws.remote} is already set up; nothing changed"
    elif tx.payload == "create":
        message = f"created {ws.branch} on {ws.remote} with {len(boards)} boards"
    else:
        message = f"imported new boards into {ws.branch} on {ws.remote}"
    return {
        "branch": ws.branch,
        "remote": ws.remote,
        "commit": tx.commit,
        "changed": tx.landed,
        "message": message,
    }
