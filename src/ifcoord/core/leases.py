"""Leases: when a session's hold on its tasks has gone stale, and what this machine has observed.

A heartbeat is a session's `last_poll`. Staleness is judged from the local clock at the moment
this clone first saw the current heartbeat value (no trust in other machines' clocks), and only
when that was never observed, from the written timestamp plus a clock-skew margin.

The clock rule (docs/protocol.md, section 5): a heartbeat counts from the local moment it is
first seen, unless its written time is more than MAX_CLOCK_SKEW from the local clock. So a live
session that heartbeats on time never loses its lease to an observer, or because of an owner,
whose clock is off by up to MAX_CLOCK_SKEW (one hour); the price is that a heartbeat first met
when already up to an hour old is given one lease from that moment. A heartbeat value older
than one already seen (the branch was rewound) is no evidence at all: staleness is judged from
the newest heartbeat seen, never from one that went backwards.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ifcoord.models import SessionStatus

MAX_CLOCK_SKEW = 3600.0  # seconds: how far off a clock may be without costing a live lease


def _written(value: str) -> float:
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def _covers(observation: Observation | None, status: SessionStatus) -> bool:
    """The observation is of this heartbeat, or of a newer one (the branch went back since)."""
    if observation is None or status.last_poll is None:
        return False
    return _written(observation.heartbeat) >= status.last_poll.timestamp()


@dataclass(frozen=True)
class Observation:
    heartbeat: str  # the last_poll value as written (ISO-8601)
    seen_at: float  # local unix time at which this clone first saw that value


@dataclass(frozen=True)
class LeasePolicy:
    lease_seconds: float = 600.0
    skew_seconds: float = 120.0


def heartbeat_age(status: SessionStatus | None, observation: Observation | None, now: float) -> float | None:
    """Seconds since the session's heartbeat, by the best evidence; None when it never beat."""
    if status is None or status.last_poll is None:
        return None
    if observation is not None and _covers(observation, status):
        return max(0.0, now - observation.seen_at)
    return max(0.0, now - status.last_poll.timestamp())


def session_is_stale(
    status: SessionStatus | None,
    observation: Observation | None,
    now: float,
    policy: LeasePolicy,
) -> bool:
    """A session with no status file is a person, not a lease: never stale.

    An offline session (it said goodbye) is stale at once: its tasks are free to reclaim.
    """
    if status is None or status.last_poll is None:
        return False
    if status.status == "offline":
        return True
    if observation is not None and _covers(observation, status):
        return now - observation.seen_at > policy.lease_seconds
    return now - status.last_poll.timestamp() > policy.lease_seconds + policy.skew_seconds


def stale_sessions(
    statuses: dict[str, SessionStatus],
    observations: dict[str, Observation],
    now: float,
    policy: LeasePolicy,
) -> set[str]:
    return {
        name
        for name, status in statuses.items()
        if session_is_stale(status, observations.get(name), now, policy)
    }


def observe(
    statuses: dict[str, SessionStatus],
    known: dict[str, Observation],
    now: float,
    skew_seconds: float = 120.0,
) -> dict[str, Observation]:
    """Record the first local sighting of every heartbeat value; keeps older sightings.

    A first sighting counts as no later than the written time plus the skew margin, so a clone
    that meets an hour-old heartbeat for the first time judges it stale on every read, not just
    on the first one.
    """
    out = dict(known)
    for name, status in statuses.items():
        if status.last_poll is None:
            continue
        value = status.last_poll.isoformat()
        if name in out and _covers(out[name], status):
            continue  # the same heartbeat, or one older than seen (a rewind): no new sighting
        if name not in out or out[name].heartbeat != value:
            out[name] = Observation(value, min(now, status.last_poll.timestamp() + skew_seconds))
    return out


def heartbeat_due(
    status: SessionStatus | None, now: datetime, every_seconds: float, changes_state: bool
) -> bool:
    """Write a heartbeat only when the state changes or the last one is `every_seconds` old."""
    if changes_state or status is None or status.last_poll is None:
        return True
    age = (now - status.last_poll).total_seconds()
    # A heartbeat dated in the future (this clock went back, or another clock wrote it) is due
    # now: waiting for the clock to catch up would leave the value unchanged past the lease time.
    return age >= every_seconds or age < 0


def heartbeat_may_wait(
    status: SessionStatus | None,
    now: datetime,
    every_seconds: float,
    lease_seconds: float,
    changes_state: bool,
) -> bool:
    """A heartbeat due only by time may give way to other work at the branch (the machine's
    queue busy) until it is one more interval late, and never past half the lease: a state
    change never waits."""
    if changes_state or status is None or status.last_poll is None:
        return False
    age = (now - status.last_poll).total_seconds()
    return 0 <= age < min(2 * every_seconds, lease_seconds / 2)


class ObservationStore:
    """The clone's memory of when it first saw each heartbeat (kept in the git dir)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Observation]:
        try:
            raw = json.loads(self.path.read_text())
            return {k: Observation(v["heartbeat"], float(v["seen_at"])) for k, v in raw.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def save(self, observations: dict[str, Observation]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({k: {"heartbeat": o.heartbeat, "seen_at": o.seen_at} for k, o in observations.items()})
        )
        os.replace(tmp, self.path)  # atomic: a killed process leaves the old file or the new one
