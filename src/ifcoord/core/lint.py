"""Diagnostics over a whole branch: what each file said, plus what only the whole shows
(duplicate IDs across boards, unknown dependencies, dependency cycles). Pure.
"""

from __future__ import annotations

from ifcoord.core.scheduler import resolve_dependencies
from ifcoord.models import Diagnostic, Snapshot, Task


def lint_snapshot(snapshot: Snapshot) -> list[Diagnostic]:
    diags: list[Diagnostic] = list(snapshot.diagnostics)
    for board in snapshot.boards:
        diags.extend(board.diagnostics)
    diags.extend(duplicate_ids(snapshot))
    tasks = snapshot.tasks()
    deps = resolve_dependencies(tasks)
    diags.extend(unknown_dependencies(tasks, deps))
    diags.extend(cycles(tasks, deps))
    order = {"error": 0, "warning": 1, "note": 2}
    return sorted(diags, key=lambda d: (d.file, d.line, order[d.severity]))


def duplicate_ids(snapshot: Snapshot) -> list[Diagnostic]:
    first: dict[str, Task] = {}
    out = []
    for board in snapshot.boards:
        for task in board.tasks:
            if task.id in first:
                other = first[task.id]
                out.append(
                    Diagnostic(
                        severity="error",
                        file=task.file,
                        line=task.line,
                        code="duplicate-id",
                        message=f"task ID {task.id} is also used at {other.file}:{other.line}; "
                        "give one of them a new ID",
                    )
                )
            else:
                first[task.id] = task
    return out


def unknown_dependencies(tasks: dict[str, Task], deps: dict[str, list[str]]) -> list[Diagnostic]:
    out = []
    for task_id, ds in deps.items():
        missing = [d for d in ds if d not in tasks]
        if missing:
            task = tasks[task_id]
            out.append(
                Diagnostic(
                    severity="warning",
                    file=task.file,
                    line=dependency_line(task),
                    code="unknown-dependency",
                    message=f"{task_id} depends on {', '.join(missing)}, which no board defines; "
                    "it stays blocked until that task exists and is done",
                )
            )
    return out


def dependency_line(task: Task) -> int:
    return next((f.line for f in task.fields if f.key == "depends_on"), task.line)


def cycles(tasks: dict[str, Task], deps: dict[str, list[str]]) -> list[Diagnostic]:
    """One diagnostic per dependency cycle, at the cycle's first task in board order."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(tasks, white)
    found: list[list[str]] = []

    def visit(start: str) -> None:
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                color[node] = grey
                path.append(node)
            edges = [d for d in deps.get(node, []) if d in tasks]
            if i < len(edges):
                stack.append((node, i + 1))
                nxt = edges[i]
                if color[nxt] == grey:
                    found.append(path[path.index(nxt) :] + [nxt])
                elif color[nxt] == white:
                    stack.append((nxt, 0))
            else:
                color[node] = black
                path.pop()

    for task_id in tasks:
        if color[task_id] == white:
            visit(task_id)
    out = []
    for cycle in found:
        head = tasks[cycle[0]]
        out.append(
            Diagnostic(
                severity="error",
                file=head.file,
                line=dependency_line(head),
                code="dependency-cycle",
                message="dependency cycle " + " -> ".join(cycle) + "; none of these can ever start",
            )
        )
    return out
