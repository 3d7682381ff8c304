"""Lease staleness from observed time, first sightings, and when a heartbeat is due (protocol 4)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ifcoord.core.leases import (
    LeasePolicy,
    Observation,
    ObservationStore,
    heartbeat_age,
    heartbeat_due,
    heartbeat_may_wait,
    observe,
    session_is_stale,
    stale_sessions,
)
from ifcoord.core.lifecycle import owner_is_stale
from ifcoord.core.snapshot import build_snapshot
from ifcoord.models import SessionStatus

POLICY = LeasePolicy(lease_seconds=600, skew_seconds=120)
BEAT = datetime(2025, 11, 12, 14, 30, tzinfo=timezone.utc)
T0 = BEAT.timestamp()


def status(last_poll: datetime | None = BEAT, state: str = "working", session: str = "s1") -> SessionStatus:
    """A status parsed from YAML, as it arrives from the branch."""
    lines = [f"session: {session}", f"status: {state}"]
    if last_poll is not None:
        lines.append("last_poll: " + last_poll.strftime("%Y-%m-%dT%H:%M:%SZ"))
    snap = build_snapshot({f"status/{session}.yaml": ("\n".join(lines) + "\n").encode()})
    return snap.statuses[session]


def stale(st_: SessionStatus | None, obs: Observation | None, now: float) -> bool:
    return session_is_stale(st_, obs, now, POLICY)


# --- never seen before: the written time plus the skew margin -------------------------------


def test_an_unseen_heartbeat_is_live_within_lease_plus_skew() -> None:
    assert not stale(status(), None, T0 + 600 + 120)


def test_an_unseen_heartbeat_is_stale_after_lease_plus_skew() -> None:
    assert stale(status(), None, T0 + 600 + 121)


def test_an_unseen_heartbeat_from_the_future_is_live() -> None:
    assert not stale(status(BEAT + timedelta(days=1)), None, T0)


# --- first sightings ------------------------------------------------------------------------


def test_first_sighting_of_an_hour_old_heartbeat_is_stale_on_the_first_and_later_reads() -> None:
    st_ = status()
    now = T0 + 3600
    first = observe({"s1": st_}, {}, now, POLICY.skew_seconds)
    assert first["s1"].seen_at == T0 + 120  # capped at written time + skew, not "now"
    assert stale(st_, first["s1"], now)
    # the next poll, 30 s later, remembers the sighting and still judges it stale
    again = observe({"s1": st_}, first, now + 30, POLICY.skew_seconds)
    assert again == first
    assert stale(st_, again["s1"], now + 30)
    assert stale_sessions({"s1": st_}, again, now + 30, POLICY) == {"s1"}


def test_first_sighting_of_a_fresh_heartbeat_is_recorded_at_local_time() -> None:
    obs = observe({"s1": status()}, {}, T0 + 5, POLICY.skew_seconds)
    assert obs["s1"] == Observation(BEAT.isoformat(), T0 + 5)


def test_a_new_heartbeat_value_replaces_the_old_sighting() -> None:
    first = observe({"s1": status()}, {}, T0 + 5, POLICY.skew_seconds)
    later = BEAT + timedelta(minutes=2)
    second = observe({"s1": status(later)}, first, T0 + 125, POLICY.skew_seconds)
    assert second["s1"] == Observation(later.isoformat(), T0 + 125)


def test_observe_keeps_sightings_of_sessions_no_longer_on_the_branch() -> None:
    known = {"gone": Observation("2025-01-01T00:00:00+00:00", 1.0)}
    assert observe({"s1": status()}, known, T0, 120)["gone"] == known["gone"]


def test_observe_skips_sessions_that_never_beat() -> None:
    assert observe({"s1": status(None)}, {}, T0, 120) == {}


# --- seen locally: local time decides -------------------------------------------------------


def test_a_heartbeat_seen_locally_is_judged_by_local_time_even_if_its_timestamp_is_far_future() -> None:
    future = status(BEAT + timedelta(days=365))
    obs = observe({"s1": future}, {}, T0, POLICY.skew_seconds)
    assert obs["s1"].seen_at == T0
    assert not stale(future, obs["s1"], T0 + 600)
    assert stale(future, obs["s1"], T0 + 601)  # unchanged for a lease time on this clock


def test_a_heartbeat_seen_locally_is_judged_by_local_time_even_if_its_timestamp_is_far_past() -> None:
    past = status(BEAT - timedelta(days=365))
    seen = Observation(past.last_poll.isoformat(), T0)  # type: ignore[union-attr]
    assert not stale(past, seen, T0 + 600)
    assert stale(past, seen, T0 + 601)


def test_a_sighting_of_a_different_value_is_ignored() -> None:
    other = Observation((BEAT - timedelta(hours=1)).isoformat(), T0 + 3000)
    assert stale(status(), other, T0 + 3600)  # judged from the timestamp of the current value


@settings(max_examples=50, deadline=None)
@given(
    offset=st.integers(min_value=-10 * 86400, max_value=10 * 86400),
    first_seen=st.integers(min_value=0, max_value=3 * 3600),
    later=st.integers(min_value=0, max_value=3 * 3600),
)
def test_once_stale_a_heartbeat_stays_stale_on_later_reads(offset: int, first_seen: int, later: int) -> None:
    st_ = status(BEAT + timedelta(seconds=offset))
    now = T0 + first_seen
    obs = observe({"s1": st_}, {}, now, POLICY.skew_seconds)
    was_stale = stale(st_, obs["s1"], now)
    obs2 = observe({"s1": st_}, obs, now + later, POLICY.skew_seconds)
    if was_stale:
        assert stale(st_, obs2["s1"], now + later)
    # a sighting never makes the lease look older than the unobserved judgement would
    assert obs["s1"].seen_at <= now


# --- who is never / always stale ------------------------------------------------------------


def test_a_session_with_no_status_file_is_a_person_and_never_stale() -> None:
    assert not stale(None, None, T0 + 10**9)
    assert heartbeat_age(None, None, T0) is None


def test_a_status_without_a_heartbeat_is_never_stale() -> None:
    assert not stale(status(None), None, T0 + 10**9)


def test_an_offline_session_is_stale_at_once() -> None:
    st_ = status(state="offline")
    assert stale(st_, Observation(BEAT.isoformat(), T0), T0)
    assert stale(st_, None, T0)


def test_stale_sessions_and_task_leases() -> None:
    statuses = {"s1": status(session="s1"), "s2": status(BEAT + timedelta(hours=1), session="s2")}
    gone = stale_sessions(statuses, {}, T0 + 3600, POLICY)
    assert gone == {"s1"}
    snap = build_snapshot(
        {"boards/PHASE-0.md": b"# B\n\n## T-1: a\n**Owner:** s1\n\n## T-2: b\n**Owner:** s2\n\n## T-3: c\n"}
    )
    tasks = snap.tasks()
    assert owner_is_stale(tasks["T-1"], gone)
    assert not owner_is_stale(tasks["T-2"], gone)
    assert not owner_is_stale(tasks["T-3"], gone)


# --- heartbeat age --------------------------------------------------------------------------


def test_heartbeat_age_prefers_the_local_sighting() -> None:
    st_ = status()
    assert heartbeat_age(st_, Observation(BEAT.isoformat(), T0 + 100), T0 + 160) == 60
    assert heartbeat_age(st_, None, T0 + 160) == 160
    assert heartbeat_age(status(BEAT + timedelta(hours=1)), None, T0) == 0


# --- when to write a heartbeat --------------------------------------------------------------


def test_heartbeat_is_not_due_before_the_interval_without_a_state_change() -> None:
    assert not heartbeat_due(status(), BEAT + timedelta(seconds=119), 120, changes_state=False)


def test_heartbeat_is_due_once_the_interval_has_passed() -> None:
    assert heartbeat_due(status(), BEAT + timedelta(seconds=120), 120, changes_state=False)


def test_heartbeat_is_due_at_once_when_the_state_changes() -> None:
    assert heartbeat_due(status(), BEAT + timedelta(seconds=1), 120, changes_state=True)


def test_a_heartbeat_dated_in_the_future_is_due_so_the_value_keeps_changing() -> None:
    # others judge by when they saw the value change; an hour of silence would lose the lease
    assert heartbeat_due(status(BEAT + timedelta(hours=1)), BEAT, 120, changes_state=False)


@pytest.mark.parametrize(
    ("age", "changes_state", "may_wait"),
    [
        (120, False, True),  # due by time: may give way to others' work
        (239, False, True),
        (240, False, False),  # one interval late: it goes now
        (150, True, False),  # a state change never waits
        (-5, False, False),  # dated in the future: due now, and does not wait
    ],
)
def test_a_heartbeat_due_by_time_may_wait_one_more_interval(
    age: int, changes_state: bool, may_wait: bool
) -> None:
    now = BEAT + timedelta(seconds=age)
    assert heartbeat_may_wait(status(), now, 120, 600, changes_state) is may_wait


def test_a_heartbeat_never_waits_past_half_the_lease() -> None:
    assert heartbeat_may_wait(status(), BEAT + timedelta(seconds=149), 120, 300, False)
    assert not heartbeat_may_wait(status(), BEAT + timedelta(seconds=150), 120, 300, False)
    assert not heartbeat_may_wait(None, BEAT, 120, 600, False)  # never wrote one: write it


@pytest.mark.parametrize("st_", [None, "no last_poll"])
def test_heartbeat_is_due_when_the_session_never_wrote_one(st_) -> None:
    value = status(None) if st_ else None
    assert heartbeat_due(value, BEAT, 120, changes_state=False)


# --- the clone's memory of sightings --------------------------------------------------------


def test_observation_store_round_trips_and_tolerates_a_missing_or_broken_file(tmp_path: Path) -> None:
    store = ObservationStore(tmp_path / "ifcoord" / "observations.json")
    assert store.load() == {}
    data = {"s1": Observation(BEAT.isoformat(), T0)}
    store.save(data)
    assert store.load() == data
    store.path.write_text("{not json")
    assert store.load() == {}
