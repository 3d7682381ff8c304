"""The dependency graph of a snapshot: its critical path, and renderings as mermaid, dot and text.

Pure: a Snapshot in, strings out. Group dependencies (`P2A`) are already expanded to their members
by `scheduler.resolve_dependencies`, so `P2A -> P2C.1` shows as one edge per P2A.x task.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from ifcoord.core.scheduler import readiness, resolve_dependencies
from ifcoord.models import Snapshot, Task
from ifcoord.views.text import safe

FINISHED = ("done", "cancelled")

# Fill colours per state, shared by the mermaid and dot renderings.
STATE_COLOURS = {
    "open": "#ffffff",
    "ready": "#d4f7d4",
    "claimed": "#cce5ff",
    "in_progress": "#cce5ff",
    "blocked": "#ffd6d6",
    "review": "#ecd9ff",
    "done": "#9be39b",
    "cancelled": "#e0e0e0",
    "missing": "#fff3c4",
}


@dataclass(frozen=True)
class Node:
    id: str
    title: str
    state: str  # a task state, or "missing" for a dependency that is on no board
    ready: bool = False
    owner: str | None = None
    kind: str = "primary"
    phase: str = ""
    progress: int | None = None

    @property
    def shown_state(self) -> str:
        return "ready" if self.ready else self.state


@dataclass
class Graph:
    """Tasks as nodes in board order, edges (dependency, dependant), and the critical path."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    critical: list[str] = field(default_factory=list)

    def on_path(self) -> frozenset[str]:
        """The critical path's tasks, for membership (a chain of 50,000 tasks is one long path:
        asking the list for each node was quadratic)."""
        return frozenset(self.critical)

    def path_edges(self) -> frozenset[tuple[str, str]]:
        """The critical path's steps, (dependency, dependant)."""
        return frozenset(zip(self.critical, self.critical[1:], strict=False))

    def to_json(self) -> dict[str, object]:
        on_path = self.on_path()
        return {
            "nodes": [
                {
                    "id": n.id,
                    "title": n.title,
                    "state": n.state,
                    "ready": n.ready,
                    "owner": n.owner,
                    "kind": n.kind,
                    "phase": n.phase,
                    "critical": n.id in on_path,
                }
                for n in self.nodes.values()
            ],
            "edges": [{"from": a, "to": b} for a, b in self.edges],
            "critical_path": self.critical,
        }


def estimate_hours(estimate: str | None) -> float:
    """Hours in an estimate as boards write it (`2h`, `3-4 hours`, `30m`, `1 day`); 0 if unreadable.

    A range counts at its upper end: the critical path is about what could hold the team up.
    """
    if not estimate:
        return 0.0
    return _estimate_hours(estimate)


@functools.lru_cache(maxsize=1024)
def _estimate_hours(estimate: str) -> float:
    # asked for every unfinished task of the branch by every dashboard; boards repeat a few values
    match = re.search(r"(\d+(?:\.\d+)?)(?:\s*[-–]\s*(\d+(?:\.\d+)?))?\s*([a-zA-Z]*)", estimate)
    if not match:
        return 0.0
    value = float(match.group(2) or match.group(1))
    unit = match.group(3).lower()
    if unit.startswith("m"):
        return value / 60
    if unit.startswith("d"):
        return value * 8
    if unit.startswith("w"):
        return value * 40
    return value


def critical_path(tasks: dict[str, Task], deps: dict[str, list[str]] | None = None) -> list[str]:
    """The chain of unfinished tasks that gates the most work, first task first.

    It is the longest chain of unfinished tasks in which each one depends on the one before:
    most tasks first, then most estimated hours, then the chain that starts earliest on the
    boards. Done and cancelled tasks, and dependencies that are on no board, are not part of it.
    Empty when every task is finished. A dependency cycle (lint reports it) is cut, not followed.

    The path depends only on each task's place, whether it is finished, its estimate and its
    dependencies: most operations (a claim, progress, a heartbeat) change none of these, so the
    last few answers are kept by them (at 2,000 tasks the key costs a third of the walk).
    """
    deps = resolve_dependencies(tasks) if deps is None else deps
    key = tuple((tid, t.state in FINISHED, t.estimate, tuple(deps.get(tid, ()))) for tid, t in tasks.items())
    known = _PATHS.get(key)
    if known is None:
        known = tuple(_critical_path(tasks, deps))
        with _PATHS_LOCK:  # the loop's threads and a command server's share it
            _PATHS[key] = known
            while len(_PATHS) > PATHS_KEPT:
                del _PATHS[next(iter(_PATHS))]
    return list(known)


PATHS_KEPT = 4
_PATHS_LOCK = threading.Lock()
_PATHS: dict[tuple[tuple[str, bool, str | None, tuple[str, ...]], ...], tuple[str, ...]] = {}


def _critical_path(tasks: dict[str, Task], deps: dict[str, list[str]]) -> list[str]:
    order = {tid: i for i, tid in enumerate(tasks)}
    live = [tid for tid, t in tasks.items() if t.state not in FINISHED]
    waiting_on: dict[str, list[str]] = {
        tid: [d for d in deps.get(tid, []) if d in tasks and tasks[d].state not in FINISHED] for tid in live
    }
    # best[t] = the score of the best chain that ends at t (t last), scored (count, hours,
    # -start position), and the task before t in it. Walked iteratively, and chains are kept as
    # links, not lists: a chain of 1,000 tasks overflowed the stack and 10,000 cost 10^8 copies.
    best: dict[str, tuple[tuple[int, float, int], str | None]] = {}
    visiting: set[str] = set()
    for root in live:
        if root in best:
            continue
        visiting.add(root)
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            tid, i = work[-1]
            edges = waiting_on[tid]
            if i < len(edges):
                work[-1] = (tid, i + 1)
                dep = edges[i]
                if dep not in best and dep not in visiting:  # a dep being visited: a cycle, cut
                    visiting.add(dep)
                    work.append((dep, 0))
                continue
            work.pop()
            visiting.discard(tid)
            own = estimate_hours(tasks[tid].estimate)
            choice: tuple[tuple[int, float, int], str | None] = ((1, own, -order[tid]), None)
            for dep in edges:
                if dep in best:
                    (count, hours, start), _ = best[dep]
                    score = (count + 1, hours + own, start)
                    if score > choice[0]:
                        choice = (score, dep)
            best[tid] = choice
    if not best:
        return []
    last: str | None = max(live, key=lambda tid: best[tid][0])
    chain: list[str] = []
    while last is not None:
        chain.append(last)
        last = best[last][1]
    return chain[::-1]


def build_graph(snapshot: Snapshot, stale: frozenset[str] = frozenset()) -> Graph:
    tasks = snapshot.tasks()
    deps = resolve_dependencies(tasks)
    graph = Graph()
    for task in tasks.values():
        r = readiness(task, tasks, deps, stale)
        graph.nodes[task.id] = Node(
            task.id, task.title, task.state, r.ready, task.owner, task.kind, task.phase, task.progress
        )
    for task in tasks.values():
        for dep in deps.get(task.id, []):
            if dep not in graph.nodes:
                graph.nodes[dep] = Node(dep, "not on any board", "missing")
            graph.edges.append((dep, task.id))
    graph.critical = critical_path(tasks, deps)
    return graph


# -- renderings -------------------------------------------------------------------------------


def node_ids(ids: Iterable[str]) -> dict[str, str]:
    """Mermaid-safe node names: a `.` in a node name is syntax to mermaid, so P2A.1 is `P2A_1`."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for tid in ids:
        name = re.sub(r"[^A-Za-z0-9_]", "_", tid)
        base, n = name, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        out[tid] = name
    return out


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _label(node: Node) -> str:
    if node.state == "missing":
        return f"{node.id}: not on any board"
    extra = node.shown_state.replace("_", " ")
    if node.owner and node.state not in FINISHED:
        extra += f", {node.owner}"
    return f"{node.id}: {node.title} ({extra})"


def render_mermaid(graph: Graph, direction: str = "LR") -> str:
    """A mermaid flowchart: a node per task coloured by state, critical path outlined in red."""
    names = node_ids(graph.nodes)
    steps = graph.path_edges()
    lines = [f"flowchart {direction}"]
    for node in graph.nodes.values():
        lines.append(f'  {names[node.id]}["{_mermaid_text(_label(node))}"]')
    for a, b in graph.edges:
        arrow = "==>" if (a, b) in steps else "-->"
        lines.append(f"  {names[a]} {arrow} {names[b]}")
    by_class: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        by_class.setdefault(node.shown_state, []).append(names[node.id])
    for cls in STATE_COLOURS:
        if cls in by_class:
            stroke = ",stroke-dasharray:4 3" if cls == "missing" else ""
            lines.append(f"  classDef {cls} fill:{STATE_COLOURS[cls]},stroke:#555{stroke}")
    lines.append("  classDef critical stroke:#d00,stroke-width:3px")
    for cls in STATE_COLOURS:
        if cls in by_class:
            lines.append(f"  class {','.join(by_class[cls])} {cls}")
    if graph.critical:
        lines.append(f"  class {','.join(names[t] for t in graph.critical)} critical")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render_dot(graph: Graph) -> str:
    """Graphviz dot: `ifcoord graph --format dot | dot -Tsvg > graph.svg`."""
    lines = [
        "digraph ifcoord {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    on_path, steps = graph.on_path(), graph.path_edges()
    for node in graph.nodes.values():
        attrs = [f'label="{_dot_text(_label(node))}"', f'fillcolor="{STATE_COLOURS[node.shown_state]}"']
        if node.id in on_path:
            attrs += ['color="#dd0000"', "penwidth=3"]
        if node.state == "missing":
            attrs.append('style="rounded,filled,dashed"')
        lines.append(f'  "{_dot_text(node.id)}" [{", ".join(attrs)}];')
    for a, b in graph.edges:
        extra = ' [color="#dd0000", penwidth=3]' if (a, b) in steps else ""
        lines.append(f'  "{_dot_text(a)}" -> "{_dot_text(b)}"{extra};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def levels(graph: Graph) -> list[list[str]]:
    """Nodes by depth: level 0 waits on nothing, level n on something at level n-1."""
    parents: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        parents[b].append(a)
    # iteratively: a dependency chain a thousand long overflowed the stack; a cycle is cut
    depth: dict[str, int] = {}
    visiting: set[str] = set()
    for root in graph.nodes:
        if root in depth:
            continue
        visiting.add(root)
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            n, i = work[-1]
            if i < len(parents[n]):
                work[-1] = (n, i + 1)
                p = parents[n][i]
                if p not in depth and p not in visiting:
                    visiting.add(p)
                    work.append((p, 0))
                continue
            work.pop()
            visiting.discard(n)
            depth[n] = max((depth[p] + 1 for p in parents[n] if p in depth), default=0)
    out: list[list[str]] = []
    for n in graph.nodes:
        d = depth[n]
        while len(out) <= d:
            out.append([])
        out[d].append(n)
    return out


def render_text(graph: Graph) -> str:
    """Plain text for a terminal or a log: tasks by dependency level, each with what it waits on."""
    parents: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        parents[b].append(a)
    width = max((len(n) for n in graph.nodes), default=4)
    missing = [n.id for n in graph.nodes.values() if n.state == "missing"]
    absent, on_path = set(missing), graph.on_path()
    lines = [f"{len(graph.nodes) - len(missing)} tasks, {len(graph.edges)} dependencies"]
    lines.append("critical path: " + (" -> ".join(graph.critical) if graph.critical else "none (all done)"))
    for depth, ids in enumerate(levels(graph)):
        ids = [tid for tid in ids if tid not in absent]
        if not ids:
            continue
        lines += ["", f"level {depth}"]
        for tid in ids:
            node = graph.nodes[tid]
            mark = "*" if tid in on_path else " "
            state = node.shown_state.replace("_", " ")
            if node.owner and node.state not in FINISHED:
                state += f", {node.owner}"
            waits = ""
            if parents[tid]:
                waits = "  <- " + ", ".join(
                    f"{p} ({graph.nodes[p].state.replace('_', ' ')})" for p in parents[tid]
                )
            lines.append(f" {mark} {tid:<{width}}  [{state}]  {node.title}{waits}")
    if missing:
        lines += ["", "not on any board (unmet): " + ", ".join(missing)]
    lines += ["", "* on the critical path"]
    return "\n".join(lines) + "\n"


def render(graph: Graph, fmt: str) -> str:
    """The graph in `fmt`, with control characters of board text shown as escapes."""
    if fmt == "mermaid":
        return safe(render_mermaid(graph), lines=True)
    if fmt == "dot":
        return safe(render_dot(graph), lines=True)
    if fmt == "text":
        return safe(render_text(graph), lines=True)
    raise ValueError(f"unknown graph format {fmt!r}")
