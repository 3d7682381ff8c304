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

from ifcoord.core.leases import LeasePolicy, ObservationStore, observe, stale_sessions
from ifcoord.core.ops import OpContext, OpResult
from ifcoord.core.snapshot import BranchState
from ifcoord.core.writeback import DashboardRenderer
from ifcoord.errors import UsageError
from ifcoord.git.runner import GitRunner, find_repository
from ifcoord.git.store import BranchStore
from ifcoord.git.transaction import Transactor, TxResult
from ifcoord.models import SESSION_NAME_PATTERN, Config, Snapshot
from ifcoord.session.modes import Mode, OwnBranchMode, SharedMode, WrongMode, mode_for

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
        self._mode: Mode | None = None  # chosen when the branch's config is first read

    @property
    def session(self) -> str:
        if not self._session:
            raise UsageError(
                "no session name",
                hint="pass --session NAME, set IFCOORD_SESSION, or run `ifcoord join NAME` once",
            )
        return self._session

    # -- the mode, chosen once ----------------------------------------------------------------

    def choose_mode(self, config: Config) -> Mode:
        """The branch's mode object, chosen when its config is first read, then kept."""
        if self._mode is None:
            self._mode = mode_for(self, config)
        return self._mode

    @property
    def mode(self) -> Mode:
        """The mode object (reads the branch once when it is not known yet)."""
        if self._mode is None:
            self.read()
        assert self._mode is not None
        return self._mode

    # -- reading -----------------------------------------------------------------------------

    def read(self, fetch: bool = True) -> BranchState:
        """The coordination state at the remote tip (or the last one fetched, fetch=False), as
        this mode shows it (own-branch: decided facts with every session's proposals)."""
        state = self.transactor.read(fetch)
        state = self.choose_mode(state.snapshot.config).read(state, fetch)
        self.stale(state.snapshot)  # records heartbeat sightings
        return state

    def poll_state(self) -> BranchState:
        """The loop's cheap look: one ls-remote; objects are fetched only for what moved."""
        if self._mode is None:
            synced = self.transactor.loader.load(self.store.sync())
            return self.choose_mode(synced.snapshot.config).poll_state(synced)
        return self._mode.poll_state(None)

    def own_branch_mode(self) -> bool:
        return isinstance(self._mode, OwnBranchMode)

    def own_branch_mode_object(self) -> OwnBranchMode:
        """The own-branch mode object (the arbiter's reader); UsageError in shared mode."""
        mode = self.mode
        if not isinstance(mode, OwnBranchMode):
            raise UsageError(
                f"{self.branch} is in shared mode: sessions write it directly, there is nothing to arbitrate",
                hint="set `mode: own-branch` in its ifcoord.yaml to use an arbiter",
            )
        return mode

    def session_branch_tips(self) -> dict[str, str]:
        """The session branches last read (own-branch mode), by branch name."""
        return self._mode.session_branch_tips() if self._mode else {}

    def drop_claim(self, task_id: str) -> None:
        """Withdraw what this session still asks for a task it lost (own-branch proposals)."""
        if self._mode is not None:
            self._mode.withdraw(task_id)

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
        """Run one operation as this mode runs it; returns the decision and how it landed
        (own-branch: `tx.payload` is the `Proposed` record when it became a proposal)."""
        mode = self._mode or SharedMode(self)  # until the config is read, try the common case
        try:
            return mode.apply(operation, task_id, force, epoch, fetch_first)
        except WrongMode:
            assert self._mode is not None
            return self._mode.apply(operation, task_id, force, epoch, fetch_first)

    def remember(self, result: OpResult, session: str) -> None:
        if result.task_id is None:
            return
        if result.op in ("claim", "reclaim"):
            self.epochs.set(session, result.task_id, result.epoch)
        elif result.op in ("complete", "release"):
            self.epochs.set(session, result.task_id, None)

    def join(
        self, session: str, remote: str | None, branch: str | None, own_branch: str | None = None
    ) -> None:
        """Remember, in the clone's git config, who this clone is and which branch it uses,
        and its own branch (for own-branch mode: given, else the branch checked out)."""
        self.runner.run("config", "ifcoord.session", check_session_name(session))
        own = own_branch or self.runner.run("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
        if own:
            self.runner.run("config", "ifcoord.own-branch", own)
        if remote:
            self.runner.run("config", "ifcoord.remote", remote)
        if branch:
            self.runner.run("config", "ifcoord.branch", branch)

    def describe(self) -> dict[str, Any]:
        return {"remote": self.remote, "branch": self.branch, "session": self._session}
