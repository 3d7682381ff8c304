"""Commands for people: `watch`, `graph`, `brief` and `task add`, registered onto the main app.

Same shape as cli.py: arguments in, the functional core (views, graph, brief, boardfile) called,
output printed; failures are IfcoordErrors that `cli.run` turns into one line and an exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ifcoord.cli.common import (
    BranchOpt,
    DirOpt,
    JsonOpt,
    RemoteOpt,
    console,
    emit,
    note,
    op_output,
    read_state,
    workspace,
)
from ifcoord.errors import UsageError

if TYPE_CHECKING:
    from ifcoord.session.workspace import Workspace

GRAPH_FORMATS = ("mermaid", "dot", "text")
OutputOpt = typer.Option(None, "--output", "-o", help="Write the markdown to this file.")
PriorityOpt = typer.Option(
    None, "--priority", metavar="WORD", help="CRITICAL, HIGH, MEDIUM, LOW (or P0..P3), in the board's case."
)
ForOpt = typer.Option(
    None, "--for", metavar="SESSION", help="Reserve it: only this session (or glob, session-4-*) may take it."
)
EstimateOpt = typer.Option(None, "--estimate", metavar="TIME", help="How long it should take, e.g. 2h.")


def register(app: typer.Typer) -> None:
    """Add the human-facing commands to `app`; a second call changes nothing."""
    if any(info.name == "watch" for info in app.registered_commands):
        return
    app.command("watch")(watch)
    app.command("graph")(graph)
    app.command("brief")(brief)
    task_app = typer.Typer(
        help="Change the boards through the same transaction as every operation.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    task_app.command("add")(task_add)
    task_app.command("edit")(task_edit)
    task_app.command("cancel")(task_cancel)
    task_app.command("reopen")(task_reopen)
    app.add_typer(task_app, name="task")


# -- read-only views ------------------------------------------------------------------------------


def watch(
    interval: float = typer.Option(
        1.0, "--interval", metavar="SECONDS", help="Seconds between two looks at the remote tip."
    ),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
) -> None:
    """The sessions, what needs attention and the tasks, redrawn in place as the branch moves.

    Task rows that do not fit the terminal are shown a page at a time, turning every few
    seconds. Ctrl-C quits and leaves the last frame on screen. Not on a terminal (a pipe, a
    file), it prints one plain frame and exits.

    Example: ifcoord watch --remote origin --branch ifcoord
    """
    from ifcoord.views.watch import run_watch

    if interval <= 0:
        raise UsageError(
            f"--interval {interval} is not a positive number of seconds", hint="e.g. --interval 2"
        )
    ws = workspace(None, remote, branch)
    raise typer.Exit(run_watch(ws, console(), interval))


def graph(
    fmt: str = typer.Option("mermaid", "--format", "-f", help="mermaid, dot or text."),
    dir: Path | None = DirOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The dependency graph with each task's state, and the critical path.

    Example: ifcoord graph --format dot | dot -Tsvg > graph.svg   |   ifcoord graph --format text --dir .
    """
    from ifcoord.views.graph import build_graph, render

    if fmt not in GRAPH_FORMATS:
        raise UsageError(f"unknown graph format {fmt!r}", hint="use --format mermaid, dot or text")
    state, stale, _ = read_state(dir, remote, branch)
    g = build_graph(state.snapshot, stale)
    if as_json:
        emit({"commit": state.commit, **g.to_json()})
        return
    typer.echo(render(g, fmt), nl=False)


def brief(
    session: str = typer.Argument(..., help="The session the sheet is for, e.g. session-4-sip"),
    output: Path | None = OutputOpt,
    dir: Path | None = DirOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A markdown instruction sheet for one session: its tasks, its filler tasks, the ifcoord loop.

    Example: ifcoord brief session-4-sip --output BRIEF-session-4-sip.md
    """
    from ifcoord.session.workspace import check_session_name
    from ifcoord.views.brief import render_brief, tasks_for

    check_session_name(session)
    state, stale, ws = read_state(dir, remote, branch)
    text = render_brief(state.snapshot, session, stale, ws.remote if ws else None, ws.branch if ws else None)
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror}", hint="pick a writable path") from exc
    if as_json:
        mine = tasks_for(state.snapshot, session, stale)
        emit(
            {
                "session": session,
                "commit": state.commit,
                "primary": [r.task.id for r in mine.primary],
                "filler": [r.task.id for r in mine.filler],
                "reserved": mine.reserved,
                "output": str(output) if output else None,
                "markdown": text,
            }
        )
    elif output is not None:
        note(f"wrote the brief for {session} to {output}")
    else:
        typer.echo(text, nl=False)


# -- changing the boards --------------------------------------------------------------------------


def task_add(
    task_id: str = typer.Argument(..., metavar="ID", help="The new task's ID, e.g. T0.9"),
    title: str = typer.Argument(
        ..., metavar="TITLE", help="Its title, as you would write it (backticks, bold, emoji are kept)."
    ),
    board_file: str | None = typer.Option(
        None, "--board", help="Board path on the branch (default: the board of the last phase)."
    ),
    depends_on: str | None = typer.Option(
        None,
        "--depends-on",
        metavar="IDS",
        help="Comma-separated task IDs (or groups like P2A) it waits for.",
    ),
    priority: str | None = PriorityOpt,
    reserved_for: str | None = ForOpt,
    kind: str = typer.Option("primary", "--kind", metavar="KIND", help="primary or filler."),
    estimate: str | None = EstimateOpt,
    deliverable: str | None = typer.Option(
        None, "--deliverable", metavar="TEXT", help="What it delivers, e.g. a path."
    ),
    by: str | None = typer.Option(
        None, "--by", help="Who adds it, for the commit (default: this clone's session, else human)."
    ),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add a task to a board, written in that board's own style, as one commit on the branch.

    Example: ifcoord task add T0.9 "Audit logging" --depends-on T0.4 --priority HIGH --estimate 2h
    """
    from ifcoord.core.rows import row_for, task_json
    from ifcoord.core.snapshot import BranchState
    from ifcoord.git.transaction import Change

    if kind not in ("primary", "filler"):
        raise UsageError(f"unknown kind {kind!r}", hint="use --kind primary or --kind filler")
    deps = [d for d in (depends_on or "").replace(" ", ",").split(",") if d]
    check_priority(priority)
    fields = {
        "priority": priority,
        "session": reserved_for,
        "depends_on": ", ".join(deps) or None,
        "estimate": estimate,
        "deliverable": deliverable,
    }
    ws = workspace(by, remote, branch)
    actor = ws.describe()["session"] or "human"

    def decide(state: BranchState) -> Change:
        if state.commit is None:
            raise UsageError(f"no branch {ws.branch} on {ws.remote}", hint="create it with `ifcoord init`")
        board = next(
            (
                b
                for b in state.snapshot.boards
                if b.path == pick_board(state.snapshot, board_file, _phase_key)
            ),
            None,
        )
        fields["priority"] = priority_in_board_case(priority, board)
        files, path = add_task_files(state, task_id, title, fields, kind, board_file)
        trailers = {"Ifcoord-Op": "add", "Ifcoord-Task": task_id, "Ifcoord-Session": actor}
        return Change(files, f"ifcoord: add {task_id} by {actor}", trailers, payload=path)

    tx = ws.transactor.run(decide)
    after = ws.transactor.loader.load(tx.commit)
    row = row_for(after.snapshot, task_id)
    known = after.snapshot.tasks()
    unknown = [d for d in deps if d not in known and not any(t.startswith(d + ".") for t in known)]
    if unknown:
        note(
            f"warning: {task_id} depends on {', '.join(unknown)}, which is on no board"
            " (`ifcoord lint` reports it)"
        )
    if as_json:
        emit(
            {
                "task": task_json(row) if row else None,
                "op": "add",
                "board": tx.payload,
                "commit": tx.commit,
                "changed": tx.landed,
                "attempts": tx.attempts,
            }
        )
    else:
        note(f"added {task_id} to {tx.payload} by {actor}")


def add_task_files(
    state: Any,
    task_id: str,
    title: str,
    fields: dict[str, str | None],
    kind: str,
    board_file: str | None,
) -> tuple[dict[str, bytes | None], str]:
    """The new bytes of the board (and the dashboard) with the task added; refuses duplicates."""
    from ifcoord.core.writeback import dashboard_change
    from ifcoord.files.board import BoardEditError, looks_like_task_id, parse_board, render_new_task
    from ifcoord.files.config import phase_sort_key
    from ifcoord.views.dashboard import render_dashboard

    snapshot = state.snapshot
    clash = next((t for t in snapshot.tasks().values() if t.id.casefold() == task_id.casefold()), None)
    if clash is not None:
        raise UsageError(f"task {clash.id} is already on {clash.file}:{clash.line}", hint="pick another ID")
    path = pick_board(snapshot, board_file, phase_sort_key)
    if path in state.blocked:
        raise UsageError(
            f"{path} on the branch is a folder, a symlink or a gitlink, not a board",
            hint="ifcoord never writes over it; pass --board with another path",
        )
    board = next((b for b in snapshot.boards if b.path == path), None)
    text = state.raw[path].decode("utf-8") if path in state.raw else "# Phase 0\n"
    wanted = {k: v for k, v in fields.items() if v}
    status = _status_word(board)
    if status:
        wanted = {"status": status, **wanted}
    same_kind = [t.id for t in board.tasks if t.kind == kind] if board else []
    after_task = same_kind[-1] if same_kind else None
    phases = snapshot.config.phases
    try:
        new_text = render_new_task(text, task_id=task_id, title=title, fields=wanted, after_task=after_task)
        added = next(t for t in parse_board(path, new_text, phases).tasks if t.id == task_id)
        if added.kind != kind:
            # Placed under a heading that says otherwise (a "Filler tasks" section): say it outright.
            wanted["kind"] = kind
            new_text = render_new_task(
                text, task_id=task_id, title=title, fields=wanted, after_task=after_task
            )
    except BoardEditError as exc:
        hint = (
            "task IDs are letters, digits, '.' and '-', with a digit"
            if not looks_like_task_id(task_id)
            else "write the title as one line with some text besides emphasis and emoji"
        )
        raise UsageError(str(exc), hint=hint) from exc
    data = new_text.encode("utf-8")
    files: dict[str, bytes | None] = {path: data}
    if snapshot.config.dashboard:
        files.update(dashboard_change(state.raw, files, render_dashboard, blocked=state.blocked))
    return files, path


DEFAULT_BOARD = "boards/PHASE-0.md"
PRIORITY_WORDS = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "P0", "P1", "P2", "P3")


def _phase_key(config: Any, phase: str) -> Any:
    from ifcoord.files.config import phase_sort_key

    return phase_sort_key(config, phase)


def check_priority(priority: str | None) -> None:
    if priority is not None and priority.strip().upper() not in PRIORITY_WORDS:
        raise UsageError(
            f"unknown priority {priority!r}", hint="use CRITICAL, HIGH, MEDIUM or LOW (or P0, P1, P2, P3)"
        )


def priority_in_board_case(priority: str | None, board: Any) -> str | None:
    """The priority word as this board writes them: lower case where its tasks say `high`."""
    if not priority:
        return None
    written = [
        t.priority.split()[0] for t in (board.tasks if board else []) if t.priority and t.priority.strip()
    ]
    lower = sum(w.islower() for w in written) > sum(w.isupper() for w in written)
    return priority.strip().lower() if lower else priority.strip().upper()


def pick_board(snapshot: Any, board_file: str | None, phase_key: Any) -> str:
    """The board path: as given (exact, under boards/, or by file name), else the last phase's."""
    paths = [b.path for b in snapshot.boards]
    if board_file is None:
        if not snapshot.boards:
            return DEFAULT_BOARD
        last = max(snapshot.boards, key=lambda b: (phase_key(snapshot.config, b.phase), b.path))
        return str(last.path)
    wanted = board_file.strip().removeprefix("./")
    for candidate in (wanted, f"boards/{wanted}"):
        if candidate in paths:
            return candidate
    by_name = [p for p in paths if Path(p).name == Path(wanted).name]
    if len(by_name) == 1:
        return by_name[0]
    raise UsageError(
        f"no board {board_file} on the branch",
        hint="boards are: "
        + (", ".join(paths) or "none")
        + " (add a board with `ifcoord init --board FILE`)",
    )


def _status_word(board: Any) -> str | None:
    """How this board writes an open task's status (`NOT STARTED`, `open`), if it writes one."""
    if board is None:
        return None
    words = [t.status_word for t in board.tasks if t.state == "open" and t.status_word]
    if words:
        return str(words[0])
    if any(t.status_word for t in board.tasks):
        return "NOT STARTED" if board.upper_status_words else "open"
    return None


ByOpt = typer.Option(
    None,
    "--by",
    metavar="NAME",
    help="Who does it, for the commit (default: this clone's session, else human).",
)


def person_workspace(by: str | None, remote: str | None, branch: str | None) -> Workspace:
    """A workspace acting as a person: `--by`, else the clone's session, else `human`."""
    ws = workspace(by, remote, branch)
    return ws if ws.describe()["session"] else workspace("human", remote, branch)


def task_edit(
    task_id: str = typer.Argument(..., metavar="ID", help="The task to change, e.g. T0.9"),
    title: str | None = typer.Option(
        None, "--title", metavar="TITLE", help="A new title; only the title part of the heading changes."
    ),
    depends_on: str | None = typer.Option(
        None, "--depends-on", metavar="IDS", help='Comma-separated IDs it waits for; "" removes the line.'
    ),
    priority: str | None = PriorityOpt,
    reserved_for: str | None = typer.Option(
        None,
        "--for",
        metavar="SESSION",
        help='Reserve it for this session (or glob); "" lets anyone take it.',
    ),
    estimate: str | None = typer.Option(
        None, "--estimate", metavar="TIME", help='How long it should take, e.g. 2h; "" removes the line.'
    ),
    by: str | None = ByOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Change a task's title, dependencies, priority, reservation or estimate, as one commit.

    Only the lines for the given options change, in the board's own dialect.
    Example: ifcoord task edit T0.9 --title "Audit `logging`" --depends-on T0.4,T0.5 --priority HIGH
    """
    from ifcoord.core.ops import find_task
    from ifcoord.core.rows import row_for, task_json
    from ifcoord.core.snapshot import BranchState
    from ifcoord.core.writeback import dashboard_change
    from ifcoord.files.board import BoardEdit, BoardEditError, apply_edits
    from ifcoord.git.transaction import Change
    from ifcoord.views.dashboard import render_dashboard

    check_priority(priority or None)
    given = {"depends_on": depends_on, "priority": priority, "session": reserved_for, "estimate": estimate}
    if title is None and all(v is None for v in given.values()):
        raise UsageError(
            f"nothing to change on {task_id}",
            hint="pass --title, --depends-on, --priority, --for or --estimate",
        )
    ws = person_workspace(by, remote, branch)
    actor = ws.describe()["session"] or "human"

    def decide(state: BranchState) -> Change:
        if state.commit is None:
            raise UsageError(f"no branch {ws.branch} on {ws.remote}", hint="create it with `ifcoord init`")
        task = find_task(state.snapshot, task_id)
        board = state.snapshot.board_of(task.id)
        fields: dict[str, str | None] = {}
        for key, value in given.items():
            if value is None:
                continue
            if key == "depends_on":
                value = ", ".join(d for d in value.replace(" ", ",").split(",") if d)
            if key == "priority":
                value = priority_in_board_case(value, board) or ""
            fields[key] = value.strip() or None
        edit = BoardEdit(task_id=task.id, fields=fields, title=title)
        try:
            text = apply_edits(task.file, state.raw[task.file].decode("utf-8"), [edit])
        except BoardEditError as exc:
            raise UsageError(str(exc), hint="edit the board by hand, or pick another value") from exc
        files: dict[str, bytes | None] = {task.file: text.encode("utf-8")}
        if state.snapshot.config.dashboard:
            files.update(dashboard_change(state.raw, files, render_dashboard))
        trailers = {"Ifcoord-Op": "edit", "Ifcoord-Task": task.id, "Ifcoord-Session": actor}
        return Change(files, f"ifcoord: edit {task.id} by {actor}", trailers, payload=task.id)

    tx = ws.transactor.run(decide)
    after = ws.transactor.loader.load(tx.commit)
    row = row_for(after.snapshot, tx.payload)
    if as_json:
        emit(
            {"task": task_json(row) if row else None, "op": "edit", "commit": tx.commit, "changed": tx.landed}
        )
    else:
        note(f"edited {tx.payload} by {actor}")


def task_cancel(
    task_id: str = typer.Argument(..., metavar="ID", help="The task to drop."),
    reason: str = typer.Option(..., "--reason", help="Why it is dropped; written on the board."),
    by: str | None = ByOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Cancel a task that is not finished (a person's decision, recorded as forced).

    Example: ifcoord task cancel T0.9 --reason "superseded by T1.2"
    """
    from ifcoord.core.ops import cancel_task

    ws = person_workspace(by, remote, branch)
    result, tx = ws.apply(lambda s, c: cancel_task(s, task_id, c, reason), task_id=task_id, force=True)
    op_output(result, tx, ws, as_json)


def task_reopen(
    task_id: str = typer.Argument(..., metavar="ID", help="The done or cancelled task to reopen."),
    by: str | None = ByOpt,
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Reopen finished work: open again, owner cleared (a person's decision, recorded as forced).

    Example: ifcoord task reopen T0.3
    """
    from ifcoord.core.ops import reopen_task

    ws = person_workspace(by, remote, branch)
    result, tx = ws.apply(lambda s, c: reopen_task(s, task_id, c), task_id=task_id, force=True)
    op_output(result, tx, ws, as_json)
