"""Diagnostics over a whole branch: what each file said, plus what only the whole shows
(duplicate IDs across boards, unknown dependencies, dependency cycles). Pure.
"""

from __future__ import annotations

from ifcoord.core import lifecycle
from ifcoord.core.scheduler import resolve_dependencies
from ifcoord.models import Diagnostic, Severity, Snapshot, Task


def lint_snapshot(snapshot: Snapshot) -> list[Diagnostic]:
    diags: list[Diagnostic] = list(snapshot.diagnostics)
    for board in snapshot.boards:
        diags.extend(board.diagnostics)
    diags.extend(duplicate_ids(snapshot))
    tasks = snapshot.tasks()
    deps = resolve_dependencies(tasks)
    diags.extend(unknown_dependencies(tasks, deps))
    diags.extend(cycles(tasks, deps))
    diags.extend(owners_without_status(snapshot, tasks))
    order = {"error": 0, "warning": 1, "note": 2}
    return sorted(diags, key=lambda d: (d.file, d.line, order[d.severity]))




def owners_without_status(snapshot: Snapshot, tasks: dict[str, Task]) -> list[Diagnostic]:
    """Held tasks whose owner has no readable STATUS file: no heartbeat can go stale, so the
    claim is read as a person's and lasts until someone acts (a typo in Owner does the same)."""
    out = []
    for task in tasks.values():
        if not task.owner or task.state not in lifecycle.HELD or task.owner in snapshot.statuses:
            continue
        path = snapshot.status_paths.get(task.owner)
        line = next((f.line for f in task.fields if f.key == "owner"), task.line)
        severity: Severity
        if path:
            severity, message = (
                "warning",
                (
                    f"{task.id} is held by {task.owner}, whose STATUS file {path} cannot be read: "
                    "the claim never goes stale until the file is fixed"
                ),
            )
        else:
            severity, message = (
                "note",
                (
                    f"{task.id} is held by {task.owner}, which has no STATUS file: read as a person's "
                    "claim that never goes stale (if it is a session that is gone, a person may "
                    "take the task with --force)"
                ),
            )
        out.append(Diagnostic(severity=severity, file=task.file, line=line, code="owner-without-status",
                              message=message))  # fmt: skip
    return out


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
    """One diagnostic per group of tasks that wait on each other (a strongly connected
    component), at its first task in board order, showing one cycle through that task.

    Linear in tasks and dependencies: a board whose tasks depend on their own group has a cycle
    through every pair, and reporting each of them made megabytes of output."""
    order = {tid: i for i, tid in enumerate(tasks)}
    adj = {tid: [d for d in deps.get(tid, []) if d in tasks] for tid in tasks}
    out = []
    for component in _components(adj):
        members = set(component)
        head = min(component, key=order.__getitem__)
        cycle = _cycle_through(head, adj, members)
        text = "dependency cycle " + " -> ".join(cycle)
        if len(members) > len(cycle) - 1:
            shown = sorted(members, key=order.__getitem__)
            more = f" (+{len(shown) - 10} more)" if len(shown) > 10 else ""
            text += f"; {len(shown)} tasks wait on each other: {', '.join(shown[:10])}{more}"
        task = tasks[head]
        out.append(
            Diagnostic(
                severity="error",
                file=task.file,
                line=dependency_line(task),
                code="dependency-cycle",
                message=text + "; none of these can ever start",
            )
        )
    return out


def _components(adj: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one task (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in adj:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work[-1]
            edges = adj[node]
            if i < len(edges):
                work[-1] = (node, i + 1)
                nxt = edges[i]
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def _cycle_through(head: str, adj: dict[str, list[str]], members: set[str]) -> list[str]:
    """The shortest cycle from `head` back to itself within one component (breadth first)."""
    parent: dict[str, str] = {}
    queue = [head]
    for node in queue:  # the list grows as it is walked: a queue without deque
        for nxt in adj[node]:
            if nxt not in members:
                continue
            if nxt == head:
                path = [node]
                while path[-1] != head:
                    path.append(parent[path[-1]])
                return [*reversed(path), head]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return [head, head]  # not reached: every member of a component lies on a cycle
