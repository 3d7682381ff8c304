"""A clone connected to a coordination branch: who this session is, where the branch lives,
what this clone remembers (heartbeat sightings, epochs held), and running operations on it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifcoord.core.leases import MAX_CLOCK_SKEW, LeasePolicy, ObservationStore, observe, stale_sessions
from ifcoord.core.ops import OpContext, OpResult
from ifcoord.core.snapshot import BranchState, SnapshotLoader
from ifcoord.core.writeback import DashboardRenderer
from ifcoord.errors import ConflictError, IfcoordError, RemoteUnreachable, UsageError
from ifcoord.git.runner import GitRunner, find_repository
from ifcoord.git.store import BranchStore
from ifcoord.git.transaction import Transactor, TxResult, clock
from ifcoord.models import SESSION_NAME_PATTERN, Config, Snapshot
from ifcoord.session.modes import Mode, OwnBranchMode, SharedMode, WrongMode, mode_for

DEFAULT_REMOTE = "origin"
DEFAULT_BRANCH = "ifcoord"


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


class EpochFloor:
    """The highest epoch this clone ever saw for each task, kept beside the clone (in the git
    dir): a branch moved back by a person brings old epochs back, and a claim made here after
    that must not reuse a fencing number an older holder may still carry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: dict[str, int] | None = None

    def load(self) -> dict[str, int]:
        if self._cache is None:
            try:
                raw = json.loads(self.path.read_text())
                self._cache = {str(t): int(e) for t, e in raw.items()}
            except (OSError, ValueError, AttributeError, TypeError):
                self._cache = {}
        return self._cache

    def see(self, snapshot: Snapshot) -> None:
        floors = self.load()
        higher = {t.id: t.epoch for t in snapshot.tasks().values() if t.epoch > floors.get(t.id, 0)}
        if higher:
            floors.update(higher)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(floors))
            os.replace(tmp, self.path)

    def lift(self, result: OpResult) -> OpResult:
        """A claim's new epoch, raised above every epoch this clone saw for the task."""
        if result.op not in ("claim", "reclaim") or not result.changed or result.epoch is None:
            return result
        floor = self.load().get(result.task_id or "", 0)
        if result.epoch > floor:
            return result
        epoch = floor + 1
        result.epoch = epoch
        for edit in result.board_edits:
            if edit.task_id == result.task_id and "epoch" in edit.fields:
                edit.fields["epoch"] = str(epoch)
        if "epoch" in result.status_updates:
            result.status_updates["epoch"] = epoch
        return result


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
        self.floor = EpochFloor(self.home / "epoch-floor.json")
        self._clone_id: str | None = None
        env_deadline = os.environ.get("IFCOORD_DEADLINE")
        self.transactor = Transactor(
            self.store,
            self.home / "lock",
            author=target.session or "ifcoord",
            deadline=deadline or (float(env_deadline) if env_deadline else 60.0),
        )
        self.dashboard = dashboard
        self._mode: Mode | None = None  # chosen when the branch's config is first read
        self._last_seen: str | None = None  # the tip the loop saw last (rewind detection)
        self.rewind: dict[str, Any] | None = None  # set by poll_state when the branch went back

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

    def read(self, fetch: bool = True, retry: bool = True) -> BranchState:
        """The coordination state at the remote tip (or the last one fetched, fetch=False), as
        this mode shows it (own-branch: decided facts with every session's proposals).
        retry=False: one try at the remote (RemoteUnreachable at once)."""
        if fetch and not retry:
            _, state = self.transactor.load(self.transactor.fetch())
        else:
            state = self.transactor.read(fetch)
        state = self.choose_mode(state.snapshot.config).read(state, fetch)
        self.stale(state.snapshot)  # records heartbeat sightings
        self.floor.see(state.snapshot)
        return state

    def read_for_view(self) -> tuple[BranchState, str | None]:
        """What a read-only view shows: the remote tip, or, when the remote does not answer
        right away, the state last fetched into this clone with a note saying how old it is."""
        from ifcoord.git.store import RemoteMissing

        try:
            # one try: a person looking at the board does not wait a minute for it
            return self.read(retry=False), None
        except RemoteMissing:
            raise
        except RemoteUnreachable as exc:
            local = self.store.local_tip()
            if local is None:
                return self.read(), None  # nothing fetched before: wait for the remote as usual
            state = self.read(fetch=False)
            fetched = self.store.fetched_at()
            age = describe_age(clock() - fetched) if fetched is not None else "at an unknown time"
            return state, (
                f"remote {self.remote} is unreachable ({exc.message}); showing {self.branch} as "
                f"fetched {age} (commit {local[:10]})"
            )

    def poll_state(self) -> BranchState:
        """The loop's cheap look: one ls-remote; objects are fetched only for what moved.
        `self.rewind` says whether the branch went back since the last look (shared mode)."""
        self.rewind = None
        before = self._last_seen or self.store.local_tip()
        if self._mode is None:
            _, synced = self.transactor.load(self.transactor.sync())
            state = self.choose_mode(synced.snapshot.config).poll_state(synced)
        else:
            state = self._mode.poll_state(None)
        if isinstance(self._mode, SharedMode):
            self.rewind = self.detect_rewind(before, state)
            self._last_seen = state.commit
        return state

    def detect_rewind(self, before: str | None, state: BranchState) -> dict[str, Any] | None:
        """When the new tip does not descend from the one seen before (a person moved the
        branch back): the two commits and this session's tasks whose state changed."""
        after = state.commit
        if before is None or after is None or before == after:
            return None
        if not self.store.has_object(before) or self.store.is_ancestor(before, after):
            return None
        try:
            old = SnapshotLoader(self.store).load(before).snapshot.tasks()
        except IfcoordError:
            old = {}
        new = state.snapshot.tasks()
        mine = self._session
        changed = {}
        for tid in sorted(set(old) | set(new)):
            was, now_ = old.get(tid), new.get(tid)
            if mine not in {getattr(was, "owner", None), getattr(now_, "owner", None)}:
                continue
            a = (was.state, was.owner, was.epoch) if was else None
            b = (now_.state, now_.owner, now_.epoch) if now_ else None
            if a != b:
                changed[tid] = {
                    "was": {"state": a[0], "owner": a[1], "epoch": a[2]} if a else None,
                    "now": {"state": b[0], "owner": b[1], "epoch": b[2]} if b else None,
                }
        return {"from": before, "to": after, "tasks": changed}

    def clock_warnings(self, snapshot: Snapshot) -> list[str]:
        """Sessions whose heartbeat is dated ahead of this clock: one of the two clocks is off."""
        margin = max(snapshot.config.skew_seconds, 60.0)
        local = clock()
        out = []
        for name, status in sorted(snapshot.statuses.items()):
            if status.last_poll is None:
                continue
            ahead = status.last_poll.timestamp() - local
            if ahead > margin:
                out.append(
                    f"{name}'s heartbeat is dated {ahead:.0f} s ahead of this clock: one of the two "
                    "clocks is off (leases tolerate up to an hour; fix the clock with NTP)"
                )
        return out

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
        local = clock()
        policy = LeasePolicy(snapshot.config.lease_seconds, snapshot.config.skew_seconds)
        known = self.observations.load()
        # The clock rule (core/leases.py): a heartbeat within an hour of this clock counts from
        # the moment it is seen, so no clock off by up to an hour costs a live session its lease.
        sightings = observe(snapshot.statuses, known, local, max(policy.skew_seconds, MAX_CLOCK_SKEW))
        if sightings != known:
            self.observations.save(sightings)
        return frozenset(stale_sessions(snapshot.statuses, sightings, local, policy))

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

    def one_turn(self) -> AbstractContextManager[None]:
        """Run the operations of the body one after the other without letting another session
        of this machine in between (`complete --next`: the claim follows the completion at once
        instead of queueing again). Each is still its own commit. Shared mode keeps the
        machine's turn at the branch from the first to the last; own-branch mode has no turn to
        keep. The mode is the one this clone last read, else shared (as `apply` assumes)."""
        if self._mode is None and self.store.local_tip() is not None:
            self.read(fetch=False)
        return (self._mode or SharedMode(self)).one_turn()

    @property
    def clone_id(self) -> str:
        """This clone's identity (random, kept in the git dir): which clone a session runs in."""
        if self._clone_id is None:
            path = self.home / "clone-id"
            try:
                self._clone_id = path.read_text().strip() or None
            except OSError:
                self._clone_id = None
            if self._clone_id is None:
                import uuid

                self._clone_id = uuid.uuid4().hex[:12]
                self.home.mkdir(parents=True, exist_ok=True)
                path.write_text(self._clone_id + "\n")
        return self._clone_id

    def check_identity(
        self, snapshot: Snapshot, result: OpResult, stale: frozenset[str], force: bool
    ) -> None:
        """One session name, one clone: a claim by a session that is live in another clone is
        refused (two agents under one name would both work its tasks); --force is for a person
        who moved the session to another machine."""
        if result.op not in ("claim", "reclaim") or not result.changed or force:
            return
        session = self.session
        status = snapshot.statuses.get(session)
        if status is None or session in stale or status.status == "offline":
            return
        other = (status.model_extra or {}).get("clone")
        if other and str(other) != self.clone_id:
            since = f" (last heartbeat {status.last_poll.isoformat()})" if status.last_poll else ""
            raise ConflictError(
                f"{session} is live in another clone{since}; two processes must not share a session name",
                hint="use another --session name, stop the other one, or pass --force if you moved machines",
            )

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


def describe_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"
