"""`ifcoord arbitrate`: the one writer of the coordination branch in own-branch mode.

Sessions propose on their own branches; the arbiter decides. Each round it reads the
coordination branch and every session branch, replays the pending proposals with the operations
shared mode runs (`core/ops.py`), and lands the decisions in one compare-and-swap commit: boards
(owners, epochs, states), each session's STATUS copy (`decided`, `decisions`), the dashboard, and
its own lock record. See docs/modes.md section 3.

Where is a claim decided in own-branch mode? In `decide_round`, below.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ifcoord.core.ops import OpContext, iso
from ifcoord.core.snapshot import BranchState, build_snapshot
from ifcoord.core.writeback import DashboardRenderer, changed_files, dashboard_change
from ifcoord.errors import IfcoordError
from ifcoord.files.status import render_status
from ifcoord.git.transaction import Change, jitter, now
from ifcoord.ownbranch.proposals import (
    DECISIONS_KEPT,
    Proposal,
    decisions_of,
    overlay_sessions,
    pending,
    replay,
)
from ifcoord.session.stopping import StopSignal

if TYPE_CHECKING:
    from collections.abc import Callable

    from ifcoord.session.workspace import Workspace

ARBITER_PATH = "arbiter.yaml"  # the lock record: who decides, since which term, renewed when


@dataclass
class Round:
    """What one round decided: the files to write over the coordination tip, and the verdicts."""

    files: dict[str, bytes | None] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)


def decide_round(
    coord: BranchState,
    own: Mapping[str, tuple[str, bytes]],
    stale: frozenset[str],
    at: datetime,
) -> Round:
    """Decide every pending proposal, in one order, on the decided facts at the coordination tip.

    The order. A proposal is judged only against decisions already on the coordination branch
    or made earlier in this round: never against another session's proposal. Within a round the
    pending proposals are taken by (Lamport clock, session name, seq). The clock is one more than
    any clock its session had seen, so a proposal made after seeing another's is decided after
    it; two proposals made without seeing each other are concurrent, and the lower clock, then
    the session name, goes first: arbitrary but the same for every arbiter given the same tips.
    A session's own proposals keep their seq order (its clock grows with its seq). Once a verdict
    is on the branch it is final: a later round never revisits it, a claim that lost stays lost,
    a done task stays done (claim_task refuses a done task), and a completion by anyone but the
    holder of the current epoch is refused by the same fencing check shared mode uses. Staleness
    (may bob take over alice's task?) is the arbiter's own judgement from its own sightings; that
    is why it is decided once, here, and recorded, instead of by every reader.
    """
    raw = overlay_sessions(coord, own)
    snapshot = build_snapshot(raw, coord.commit)
    queue: list[Proposal] = []
    for status in snapshot.statuses.values():
        queue.extend(pending(status))
    queue.sort(key=lambda p: (p.clock, p.session, p.seq))
    decisions: list[dict[str, Any]] = []
    for proposal in queue:
        snapshot = build_snapshot(raw, coord.commit)
        ctx = OpContext(proposal.session, at, stale, proposal.epoch, False)
        verdict: dict[str, Any] = {"seq": proposal.seq, "clock": proposal.clock, "op": proposal.op,
                                   "task": proposal.task}  # fmt: skip
        try:
            result = replay(snapshot, proposal, ctx)
        except IfcoordError as exc:
            owner = snapshot.tasks().get(proposal.task)
            verdict.update(verdict="refused", code=exc.exit_code, reason=exc.line())
            if owner is not None and owner.owner:
                verdict["owner"] = owner.owner
        else:
            verdict.update(verdict="accepted", epoch=result.epoch, reason=result.reason)
            raw.update(
                {p: d for p, d in changed_files(BranchState(snapshot, raw), result, proposal.session).items()
                 if d is not None}
            )  # fmt: skip
            snapshot = build_snapshot(raw, coord.commit)
        verdict["at"] = iso(at)
        path = snapshot.status_paths[proposal.session]
        kept = (decisions_of(snapshot.statuses.get(proposal.session)) + [verdict])[-DECISIONS_KEPT:]
        raw[path] = render_status(raw[path], {"decided": proposal.seq, "decisions": kept})
        decisions.append({"session": proposal.session, **verdict})
    files: dict[str, bytes | None] = {p: d for p, d in raw.items() if coord.raw.get(p) != d}
    return Round(files, decisions)


# -- the lock: one deciding arbiter at a time -----------------------------------------------------


@dataclass(frozen=True)
class ArbiterRecord:
    holder: str
    term: int
    renewed: str
    lease_seconds: float

    def render(self) -> bytes:
        return (
            f"holder: {self.holder}\nterm: {self.term}\nrenewed: '{self.renewed}'\n"
            f"lease_seconds: {self.lease_seconds:g}\n"
        ).encode()


def parse_record(data: bytes | None) -> ArbiterRecord | None:
    if not data:
        return None
    from ruamel.yaml import YAML

    try:
        doc = YAML(typ="safe").load(data.decode("utf-8"))
        return ArbiterRecord(str(doc["holder"]), int(doc["term"]), str(doc["renewed"]),
                             float(doc.get("lease_seconds", 0)))  # fmt: skip
    except Exception:  # noqa: BLE001 - a broken record holds nothing: the next arbiter rewrites it
        return None


class Sightings:
    """When this clone first saw the current value of another arbiter's record (local clock):
    a lease is judged by how long *we* have watched it unchanged, as client-go's leader election
    does, never by the clock of the machine that wrote it."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock

    def age(self, record: ArbiterRecord) -> float:
        key = f"{record.holder}/{record.term}/{record.renewed}"
        try:
            seen = json.loads(self.path.read_text())
        except (OSError, ValueError):
            seen = {}
        if seen.get("key") != key:
            seen = {"key": key, "at": self.clock()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(seen))
            os.replace(tmp, self.path)
        return self.clock() - float(seen["at"])


def try_acquire_or_renew(
    record: ArbiterRecord | None, me: str, sightings: Sightings, lease_seconds: float, at: datetime
) -> tuple[ArbiterRecord | None, str | None]:
    """(the record to write, or None to leave it; the holder that keeps us out, or None).

    1. No record, or ours: we decide (renewing it).
    2. Another arbiter's, unchanged in our sight for its lease: it is gone, take over (term + 1).
    3. Another arbiter's, still live: we do not decide this round.
    Correctness does not rest on this lock: every decision is a compare-and-swap on the branch
    tip, so two arbiters that both believed they held it would still decide one after the other,
    each on the other's decisions. The lock keeps them from duelling.
    """
    if record is None or record.holder == me:  # 1.
        term = record.term if record else 1
        return ArbiterRecord(me, term, iso(at), lease_seconds), None
    if sightings.age(record) >= record.lease_seconds:  # 2.
        return ArbiterRecord(me, record.term + 1, iso(at), lease_seconds), None
    return None, record.holder  # 3.


# -- the shell -------------------------------------------------------------------------------------


def arbitrate_once(ws: Workspace, lease_seconds: float = 0.0) -> dict[str, Any]:
    """One round; returns what it decided. `lease_seconds` 0 (a CI job, `--once`): the lock is
    left free for whoever runs next."""
    mode = ws.own_branch_mode_object()
    heads = ws.transactor.retrying(ws.store.list_heads)
    me = ws.transactor.author
    sightings = Sightings(ws.home / "arbiter-sightings.json")
    dashboard: DashboardRenderer | None = ws.dashboard

    def decide(coord: BranchState) -> Change:
        record = parse_record(ws.store.read_files(coord.commit, [ARBITER_PATH]).get(ARBITER_PATH)
                              if coord.commit else None)  # fmt: skip
        at = now()
        new_record, held_by = try_acquire_or_renew(record, me, sightings, lease_seconds, at)
        if new_record is None:
            return Change({}, "", payload={"held_by": held_by, "decisions": []})
        own = mode.own_files(coord.snapshot.config, heads)
        merged = build_snapshot(overlay_sessions(coord, own), coord.commit)
        stale = ws.stale(merged)
        round_ = decide_round(coord, own, stale, at)
        files = dict(round_.files)
        if dashboard is not None and coord.snapshot.config.dashboard:
            files.update(dashboard_change(coord.raw, files, dashboard))
        renew_due = record is None or record.holder != me or record.lease_seconds != lease_seconds or (
            lease_seconds > 0 and (at - datetime.fromisoformat(record.renewed.replace("Z", "+00:00"))
                                   ).total_seconds() > lease_seconds / 3
        )  # fmt: skip
        if files or renew_due:
            files[ARBITER_PATH] = new_record.render()
        n = len(round_.decisions)
        return Change(
            files,
            f"ifcoord: arbitrate by {me}" + (f": {n} decision{'s' * (n != 1)}" if n else ""),
            {"Ifcoord-Op": "arbitrate", "Ifcoord-Session": me, "Ifcoord-Term": str(new_record.term)},
            payload={"held_by": None, "decisions": round_.decisions},
        )

    tx = ws.transactor.run(decide)
    payload = tx.payload or {"held_by": None, "decisions": []}
    return {"commit": tx.commit, "changed": tx.landed, **payload}


def arbitrate_forever(
    ws: Workspace, interval: float, report: Callable[[dict[str, Any]], None], stop: StopSignal
) -> None:
    """Rounds every `interval` (with jitter) until stopped; holds the lock for 3 intervals."""
    lease = max(3 * interval, 2.0)
    while not stop.requested:
        try:
            report(arbitrate_once(ws, lease_seconds=lease))
        except IfcoordError as exc:
            report({"error": exc.line()})
        stop.sleep(jitter(interval))
