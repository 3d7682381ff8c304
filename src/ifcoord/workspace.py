"""A clone connected to a coordination branch: who this session is, where the branch lives,
what this clone remembers (heartbeat sightings, epochs held), and running operations on it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifcoord.errors import UsageError
from ifcoord.leases import LeasePolicy, ObservationStore, observe, stale_sessions
from ifcoord.models import SESSION_NAME_PATTERN, Snapshot
from ifcoord.ops import OpContext, OpResult
from ifcoord.state import BranchState
from ifcoord.store import BranchStore, GitRunner, find_repository
from ifcoord.transaction import Change, Transactor, TxResult, now
from ifcoord.writeback import DashboardRenderer, changed_files

DEFAULT_REMOTE = "origin"
DEFAULT_BRANCH = "ifcoord"
CONFIG_KEYS = ("session", "remote", "branch", "own-branch")


def check_session_name(name: str) -> str:
    if not re.match(SESSION_NAME_PATTERN, name):
        raise UsageError(
            f"invalid session name {name!r}",
            hint="use lowercase letters, digits, '.', '_' or '-', at most 64 characters",
        )
    return name


@dataclass(frozen=True)
class Target:
    remote: str
    branch: str
    session: str | None


def read_clone_config(runner: GitRunner) -> dict[str, str]:
    """The `ifcoord.*` keys of the clone's git config, in one git call."""
    out = runner.run("config", "--get-regexp", r"^ifcoord\.", check=False)
    values = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        values[key.split(".", 1)[1]] = value
    return values


def resolve_target(
    clone_config: dict[str, str], session: str | None, remote: str | None, branch: str | None
) -> Target:
    """Flags, then IFCOORD_* variables, then what `ifcoord join` stored, then defaults."""

    def pick(flag: str | None, env: str, key: str, default: str | None) -> str | None:
        return flag or os.environ.get(env) or clone_config.get(key) or default

    name = pick(session, "IFCOORD_SESSION", "session", None)
    return Target(
        remote=pick(remote, "IFCOORD_REMOTE", "remote", DEFAULT_REMOTE) or DEFAULT_REMOTE,
        branch=pick(branch, "IFCOORD_BRANCH", "branch", DEFAULT_BRANCH) or DEFAULT_BRANCH,
        session=check_session_name(name) if name else None,
    )


class EpochMemory:
    """The fencing numbers this clone's sessions hold, by session and task (in the git dir)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, dict[str, int]]:
        try:
            data = json.loads(self.path.read_text())
            return {s: {t: int(e) for t, e in held.items()} for s, held in data.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def get(self, session: str, task_id: str) -> int | None:
        return self.load().get(session, {}).get(task_id)

    def set(self, session: str, task_id: str, epoch: int | None) -> None:
        data = self.load()
        held = data.setdefault(session, {})
        if epoch is None:
            held.pop(task_id, None)
        else:
            held[task_id] = epoch
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)


class Workspace:
    """Everything a command needs to read or change the coordination branch from this clone."""

    def __init__(
        self,
        start: Path | None = None,
        session: str | None = None,
        remote: str | None = None,
        branch: str | None = None,
        deadline: float | None = None,
        dashboard: DashboardRenderer | None = None,
    ) -> None:
        self.git_dir, self.top = find_repository(start or Path.cwd())
        self.runner = GitRunner(self.git_dir)
        self.clone_config = read_clone_config(self.runner)
        target = resolve_target(self.clone_config, session, remote, branch)
        self.remote, self.branch, self._session = target.remote, target.branch, target.session
        self.store = BranchStore(self.git_dir, self.remote, self.branch, self.runner)
        self.home = self.git_dir / "ifcoord"
        self.observations = ObservationStore(self.home / "observations.json")
        self.epochs = EpochMemory(self.home / "epochs.json")
        env_deadline = os.environ.get("IFCOORD_DEADLINE")
        self.transactor = Transactor(
            self.store,
            self.home / "lock",
            author=target.session or "ifcoord",
            deadline=deadline or (float(env_deadline) if env_deadline else 60.0),
        )
        self.dashboard = dashboard

    @property
    def session(self) -> str:
        if not self._session:
            raise UsageError(
                "no session name",
                hint="pass --session NAME, set IFCOORD_SESSION, or run `ifcoord join NAME` once",
            )
        return self._session

    # -- reading -----------------------------------------------------------------------------

    def read(self, fetch: bool = True) -> BranchState:
        state = self.transactor.read(fetch)
        self.stale(state.snapshot)  # records heartbeat sightings
        return state

    def stale(self, snapshot: Snapshot) -> frozenset[str]:
        """Sessions whose lease is stale, judged from this clone's own sightings."""
        clock = time.time()
        policy = LeasePolicy(snapshot.config.lease_seconds, snapshot.config.skew_seconds)
        known = self.observations.load()
        sightings = observe(snapshot.statuses, known, clock, policy.skew_seconds)
        if sightings != known:
            self.observations.save(sightings)
        return frozenset(stale_sessions(snapshot.statuses, sightings, clock, policy))

    def held_epoch(self, snapshot: Snapshot, task_id: str | None) -> int | None:
        if task_id is None:
            return None
        remembered = self.epochs.get(self.session, task_id)
        if remembered is not None:
            return remembered
        status = snapshot.statuses.get(self.session)
        if status and status.current_task == task_id and status.epoch is not None:
            return status.epoch
        return None

    # -- changing ----------------------------------------------------------------------------

    def apply(
        self,
        operation: Callable[[Snapshot, OpContext], OpResult],
        task_id: str | None = None,
        force: bool = False,
        epoch: int | None = None,
        fetch_first: bool = True,
    ) -> tuple[OpResult, TxResult]:
        """Run one operation as one transaction; returns the final decision and how it landed."""
        session = self.session

        def decide(state: BranchState) -> Change:
            snapshot = state.snapshot
            ctx = OpContext(
                session=session,
                now=now(),
                stale=self.stale(snapshot),
                held_epoch=epoch if epoch is not None else self.held_epoch(snapshot, task_id),
                force=force,
            )
            result = operation(snapshot, ctx)
            files = changed_files(state, result, session, self.dashboard)
            return Change(files, result.subject(session), result.trailers(session), payload=result)

        tx = self.transactor.run(decide, fetch_first=fetch_first)
        result: OpResult = tx.payload
        self.remember(result, session)
        return result, tx

    def remember(self, result: OpResult, session: str) -> None:
        if result.task_id is None:
            return
        if result.op in ("claim", "reclaim"):
            self.epochs.set(session, result.task_id, result.epoch)
        elif result.op in ("complete", "release"):
            self.epochs.set(session, result.task_id, None)

    def join(self, session: str, remote: str | None, branch: str | None) -> None:
        """Remember, in the clone's git config, who this clone is and which branch it uses."""
        self.runner.run("config", "ifcoord.session", check_session_name(session))
        if remote:
            self.runner.run("config", "ifcoord.remote", remote)
        if branch:
            self.runner.run("config", "ifcoord.branch", branch)

    def describe(self) -> dict[str, Any]:
        return {"remote": self.remote, "branch": self.branch, "session": self._session}
