"""Own-branch mode, the pure part: what a session *proposes* on its own branch, what the arbiter
has *decided* on the coordination branch, and the view every reader builds from the two
(docs/modes.md section 3).

A session never changes a board. Each operation on a task becomes a proposal in its STATUS file
on its own branch, numbered by the session (`seq`) and stamped with its Lamport clock:

    seq: 4
    clock: 9
    proposals:
      - {seq: 4, clock: 9, op: complete, task: T1, epoch: 1, args: {deliverable: src/x.py}}

The arbiter replays each proposal with the very operation shared mode runs (`core/ops.py`) on
the coordination branch, on the session's behalf, and records in that session's STATUS copy
there how far it has decided (`decided: 4`) and what (`decisions:`). A proposal is *pending*
while its seq is above `decided`. Nothing here reads a clock or this clone's memory: the view
is a function of the branch tips alone, so every reader of the same tips shows the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ifcoord.core.kept import kept_when_small
from ifcoord.core.ops import (
    OpContext,
    OpResult,
    block_task,
    claim_task,
    complete_task,
    progress_task,
    release_task,
    unblock_task,
)
from ifcoord.core.snapshot import read_status
from ifcoord.errors import UsageError
from ifcoord.files.status import parse_status, render_status
from ifcoord.models import SessionStatus

if TYPE_CHECKING:
    from ifcoord.core.snapshot import BranchState

# Keys of a session's STATUS that only the arbiter's decisions set: what a session writes on its
# own branch for them is ignored by every reader (it would be an undecided claim dressed as a fact).
DECIDED_KEYS = (
    "current_task", "epoch", "completed", "progress", "milestone", "decided", "decisions", "claims",
)  # fmt: skip
DECISIONS_KEPT = 50  # per session on the coordination branch; older ones live in its history
PROPOSABLE = ("claim", "reclaim", "progress", "block", "unblock", "complete", "release")


@dataclass(frozen=True)
class Proposal:
    session: str
    seq: int
    clock: int
    op: str
    task: str
    epoch: int | None = None  # the fencing number the session held when it proposed
    args: dict[str, Any] = field(default_factory=dict)

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "clock": self.clock, "op": self.op, "task": self.task}
        if self.epoch is not None:
            out["epoch"] = self.epoch
        if self.args:
            out["args"] = dict(self.args)
        return out

    def label(self) -> str:
        return f"{self.session}#{self.seq} {self.op} {self.task}"


@dataclass(frozen=True)
class Proposed:
    """What a session's operation became in own-branch mode: a proposal, not yet a fact."""

    seq: int
    op: str
    task: str


def proposals_of(status: SessionStatus | None) -> list[Proposal]:
    if status is None:
        return []
    raw = (status.model_extra or {}).get("proposals") or []
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping) or not item.get("task") or item.get("op") not in PROPOSABLE:
            continue
        try:
            out.append(
                Proposal(
                    session=status.session,
                    seq=int(item["seq"]),
                    clock=int(item.get("clock") or 0),
                    op=str(item["op"]),
                    task=str(item["task"]),
                    epoch=int(item["epoch"]) if item.get("epoch") is not None else None,
                    args=dict(item.get("args") or {}),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # a hand-mangled entry is not a proposal
    return sorted(out, key=lambda p: p.seq)


def decided_seq(status: SessionStatus | None) -> int:
    """How far the arbiter has decided this session's proposals (from the coordination copy)."""
    if status is None:
        return 0
    try:
        return int((status.model_extra or {}).get("decided") or 0)
    except (TypeError, ValueError):
        return 0


def decisions_of(status: SessionStatus | None) -> list[dict[str, Any]]:
    raw = (status.model_extra or {}).get("decisions") if status is not None else None
    return [dict(d) for d in raw if isinstance(d, Mapping)] if isinstance(raw, list) else []


def own_seq(status: SessionStatus | None) -> int:
    try:
        return int((status.model_extra or {}).get("seq") or 0) if status is not None else 0
    except (TypeError, ValueError):
        return 0


def pending(status: SessionStatus | None) -> list[Proposal]:
    """The session's proposals the arbiter has not decided yet (from a merged STATUS)."""
    done = decided_seq(status)
    return [p for p in proposals_of(status) if p.seq > done]


def pending_json(snapshot: Any) -> list[dict[str, Any]]:
    """Every session's pending proposals, for readers: shown as proposals, never as facts."""
    out = []
    for name in sorted(snapshot.statuses):
        for p in pending(snapshot.statuses[name]):
            out.append({"session": name, "seq": p.seq, "op": p.op, "task": p.task, "clock": p.clock})
    return out


def next_clock(statuses: Iterable[SessionStatus]) -> int:
    """One more than the largest clock seen anywhere (Lamport)."""
    seen = [0]
    for status in statuses:
        seen.append(status.clock or 0)
        seen.extend(p.clock for p in proposals_of(status))
    return max(seen) + 1


def proposal_from(result: OpResult, session: str, seq: int, clock: int, epoch: int | None) -> Proposal:
    """The proposal that asks the arbiter to run `result`'s operation again, on decided facts."""
    if result.op not in PROPOSABLE or result.task_id is None:
        raise UsageError(f"{result.op} cannot be proposed in own-branch mode", hint="see docs/modes.md")
    fields: dict[str, Any] = {}
    for edit in result.board_edits:
        fields.update(edit.fields)
    updates = result.status_updates
    args: dict[str, Any] = {}
    if result.op == "progress":
        args["percent"] = int(updates.get("progress") or 0)
        if fields.get("note"):
            args["note"] = fields["note"]
    if result.op in ("progress", "complete"):
        for key in ("tests_passed", "tests_failed"):
            if updates.get(key) is not None:
                args[key] = int(updates[key])
    if result.op == "complete" and fields.get("deliverable"):
        args["deliverable"] = fields["deliverable"]
    if result.op == "block":
        waiting = fields.get("waiting_on")
        args["on"] = [w.strip() for w in waiting.split(",")] if waiting else []
        if fields.get("block_reason"):
            args["reason"] = fields["block_reason"]
    op = "claim" if result.op == "reclaim" else result.op  # the arbiter judges the lease itself
    return Proposal(session, seq, clock, op, result.task_id, None if op == "claim" else epoch, args)


def replay(snapshot: Any, proposal: Proposal, ctx: OpContext) -> OpResult:
    """Run the proposed operation (the same function shared mode runs) on decided facts."""
    a = proposal.args
    if proposal.op == "claim":
        return claim_task(snapshot, proposal.task, ctx)
    if proposal.op == "reclaim":
        return claim_task(snapshot, proposal.task, ctx, op="reclaim")
    if proposal.op == "progress":
        return progress_task(snapshot, proposal.task, int(a.get("percent", 0)), ctx, a.get("note"),
                             a.get("tests_passed"), a.get("tests_failed"))  # fmt: skip
    if proposal.op == "complete":
        return complete_task(snapshot, proposal.task, ctx, a.get("deliverable"),
                             a.get("tests_passed"), a.get("tests_failed"))  # fmt: skip
    if proposal.op == "block":
        return block_task(snapshot, proposal.task, list(a.get("on") or []), ctx, a.get("reason"))
    if proposal.op == "unblock":
        return unblock_task(snapshot, proposal.task, ctx)
    return release_task(snapshot, proposal.task, ctx)


def overlay_sessions(coord: BranchState, own: Mapping[str, tuple[str, bytes]]) -> dict[str, bytes]:
    """The coordination files with every session's own STATUS (path, data) laid over the
    arbiter's copy: what readers show, and what the arbiter copies to the coordination branch."""
    raw = dict(coord.raw)
    for session, (path, data) in sorted(own.items()):
        where = coord.snapshot.status_paths.get(session) or path
        raw[where] = merged_status(coord.raw.get(where), data, path)
    return raw


# A loop polling every few seconds merges the same pairs of files on every cycle (and so does
# the arbiter): a YAML round trip each, most of an own-branch loop's CPU. The result is a function
# of the two contents and the path, so it is kept by them, for as many sessions as a team has;
# pairs over MERGE_KEPT_MAX bytes (never written by ifcoord) are merged each time instead.
MERGES_KEPT = 1024
MERGE_KEPT_MAX = 32 * 1024


@kept_when_small(MERGES_KEPT, MERGE_KEPT_MAX)
def merged_status(decided: bytes | None, own: bytes | None, own_path: str) -> bytes:
    """A session's STATUS as readers show it: the arbiter's copy (decided facts) with what the
    session itself writes on its own branch (heartbeat, state word, proposals) laid over it."""
    if own is None:
        assert decided is not None
        return decided
    status = read_status(own_path, own)[1]  # parsed once per content (read-only)
    if status is None:
        status = parse_status(own_path, own)  # raises what makes it unreadable
    overlay = {k: v for k, v in status.model_dump(exclude_unset=True).items() if k not in DECIDED_KEYS}
    if decided is None:
        return render_status(own, {}, [k for k in DECIDED_KEYS if k in status.model_fields_set
                                        or k in (status.model_extra or {})])  # fmt: skip
    return render_status(decided, overlay)
