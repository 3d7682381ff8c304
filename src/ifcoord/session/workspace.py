"""A clone connected to a coordination branch: who this session is, where the branch lives,
what this clone remembers (heartbeat sightings, epochs held), and running operations on it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifcoord.core.leases import LeasePolicy, ObservationStore, observe, stale_sessions
from ifcoord.core.ops import OpContext, OpResult
from ifcoord.core.snapshot import BranchState, build_snapshot
from ifcoord.core.writeback import DashboardRenderer, changed_files
from ifcoord.errors import IfcoordError, UsageError
from ifcoord.files.status import render_status, status_path_for
from ifcoord.git.runner import GitRunner, find_repository
from ifcoord.git.store import BranchStore
from ifcoord.git.transaction import Change, Transactor, TxResult, now
from ifcoord.models import SESSION_NAME_PATTERN, Config, Snapshot
from ifcoord.ownbranch.branches import (
    OwnBranchWriter,
    SessionFile,
    read_session_files,
    session_branches,
    status_dirs,
)
from ifcoord.ownbranch.settle import folded_boards, next_clock
from ifcoord.ownbranch.settle import record as ownbranch_record

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


class WrongMode(Exception):
    """The branch turned out to be in own-branch mode while a shared-mode write was prepared."""


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
        self._mode: str | None = None  # the branch's mode, once read
        self.session_files: dict[str, SessionFile] = {}
        self._writer: OwnBranchWriter | None = None
        self._session_branches: dict[str, str] = {}

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
        """The coordination state at the remote tip (or the last one fetched, fetch=False);
        in own-branch mode with every session branch's STATUS merged in and settled."""
        state = self.transactor.read(fetch)
        self._mode = state.snapshot.config.mode
        if self._mode == "own-branch":
            heads = self.transactor.retrying(self.store.list_heads) if fetch else None
            state = self.merge_session_branches(state, heads)
        self.stale(state.snapshot)  # records heartbeat sightings
        return state

    def poll_state(self) -> BranchState:
        """The loop's cheap look: one ls-remote; objects are fetched only for what moved."""
        if self._mode != "own-branch":
            state = self.transactor.loader.load(self.store.sync())
            self._mode = state.snapshot.config.mode
            if self._mode != "own-branch":
                return state
        heads = self.store.list_heads()
        tip = heads.get(self.branch)
        if tip is not None and tip != self.store.local_tip():
            if self.store.has_object(tip):
                self.store.set_private_ref(tip)
            else:
                self.store.fetch()
        state = self.transactor.loader.load(tip)
        self._mode = state.snapshot.config.mode
        if self._mode != "own-branch":
            return state
        self.flush_own_branch()
        return self.merge_session_branches(state, heads)

    # -- own-branch mode ---------------------------------------------------------------------

    def own_branch(self) -> str:
        """This session's own branch: what `join` recorded, else the branch checked out."""
        if self.clone_config.get("own-branch"):
            return self.clone_config["own-branch"]
        head = self.runner.run("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
        if not head:
            raise UsageError(
                "own-branch mode needs this session's own branch, and HEAD is detached",
                hint="check out your branch or run `ifcoord join NAME --own-branch BRANCH`",
            )
        return head

    def writer(self) -> OwnBranchWriter:
        if self._writer is None:
            # the worktree's own git dir (differs from the common one in a linked worktree)
            work_git_dir = (subprocess_git_dir(self.top) if self.top else None) or self.git_dir
            self._writer = OwnBranchWriter(self.store, self.own_branch(), work_git_dir, self.top)
        return self._writer

    def merge_session_branches(self, state: BranchState, heads: dict[str, str] | None) -> BranchState:
        """Add every session branch's STATUS (fetching only branches that moved), then settle
        the claims: the boards read as the arbiter would fold them."""
        config = state.snapshot.config
        if heads is None:
            branches = self._mirrored_session_branches(config)
        else:
            branches = session_branches(heads, config.session_branches, self.branch)
            moved = [b for b, sha in branches.items() if self.store.read_ref(self.store.mirror_ref(b)) != sha]
            self.store.fetch_branches(moved)
        self._session_branches = branches
        files = read_session_files(self.store, branches, config)
        own = self._local_own_status(config)
        if own is not None:
            files[own.status.session] = own  # our own branch, even before its push landed
        raw = dict(state.raw)
        for sf in files.values():
            old_path = state.snapshot.status_paths.get(sf.status.session)
            if old_path and old_path != sf.path:
                raw.pop(old_path, None)
            raw[sf.path] = sf.data
        merged = build_snapshot(raw, state.commit)
        stale = self.stale(merged)
        folded = folded_boards(merged, raw, stale)
        if folded:
            raw.update(folded)
            merged = build_snapshot(raw, state.commit)
        self.session_files = files
        return BranchState(merged, raw)

    def own_branch_mode(self) -> bool:
        return self._mode == "own-branch"

    def session_branch_tips(self) -> dict[str, str]:
        """The session branches last read (own-branch mode), by branch name."""
        return dict(self._session_branches)

    def _mirrored_session_branches(self, config: Config) -> dict[str, str]:
        prefix = self.store.mirror_ref("")
        out = self.runner.run("for-each-ref", "--format=%(objectname) %(refname)", prefix, check=False)
        found = {}
        for line in out.splitlines():
            sha, _, ref = line.partition(" ")
            branch = ref[len(prefix) :]
            if fnmatch.fnmatchcase(branch, config.session_branches):
                found[branch] = sha
        return found

    def _local_own_status(self, config: Config) -> SessionFile | None:
        if not self._session:
            return None
        try:
            branch = self.own_branch()
        except UsageError:
            return None
        tip = self.store.read_ref(f"refs/heads/{branch}")
        if tip is None:
            return None
        files = read_session_files(self.store, {branch: tip}, config)
        return files.get(self._session)

    def flush_own_branch(self) -> None:
        """Push the own branch when an earlier status commit did not get out (loop, each cycle)."""
        from filelock import FileLock

        if not self._session:
            return
        try:
            writer = self.writer()
            local = writer.tip()
        except UsageError:
            return
        if self.store.read_ref(self.store.mirror_ref(writer.branch)) == local:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.home / "lock")), contextlib.suppress(IfcoordError):
            if self._status_commit_pending(writer.branch, writer.tip()):
                writer.push()

    def _status_commit_pending(self, branch: str, local: str) -> bool:
        remote = self.store.read_ref(self.store.mirror_ref(branch))
        if remote is None:
            return True
        self.runner.run("merge-base", "--is-ancestor", remote, local, check=False)
        return self.runner.last_code == 0 and remote != local

    def apply_own_branch(
        self,
        operation: Callable[[Snapshot, OpContext], OpResult],
        task_id: str | None,
        force: bool,
        epoch: int | None,
    ) -> tuple[OpResult, TxResult]:
        """An operation in own-branch mode: decided on the settled state, written as claim
        entries in this session's STATUS on its own branch, and pushed there."""
        from filelock import FileLock

        session = self.session
        self.home.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.home / "lock")):
            state = self.read()
            snapshot = state.snapshot
            held = epoch if epoch is not None else self.held_epoch(snapshot, task_id)
            ctx = OpContext(session, now(), self.stale(snapshot), held, force)
            result = operation(snapshot, ctx)
            if not result.changed:
                return result, TxResult(False, state.commit, result, 1, 0, state)
            writer = self.writer()
            mine = self.session_files.get(session)
            old_claims = mine.status.claims if mine else []
            clock = next_clock(snapshot.statuses.values())
            claims = ownbranch_record(old_claims, result, clock)
            updates: dict[str, Any] = {"session": session, **result.status_updates, "branch": writer.branch}
            if claims != old_claims:
                updates["claims"] = claims
                updates["clock"] = clock
            if mine is not None:
                path, old = mine.path, mine.data
            else:
                tip = writer.tip()
                path = status_path_for(
                    session, list(self.store.list_tree(tip, status_dirs(snapshot.config))), None
                )
                old = None
            data = render_status(old, updates, list(result.status_remove))
            message = Change({}, result.subject(session), result.trailers(session)).message()
            commit = writer.commit(path, data, message, session)
            writer.push()
            self.remember(result, session)
            return result, TxResult(True, commit, result, 1, 1, state)

    def drop_claim(self, task_id: str) -> None:
        """Own-branch mode: withdraw this session's claim entry for a task it lost."""
        if self._mode != "own-branch":
            return
        from ifcoord.files.board import BoardEdit

        def withdraw(snapshot: Snapshot, ctx: OpContext) -> OpResult:
            return OpResult("drop", task_id, f"{ctx.session} dropped {task_id}",
                            board_edits=[BoardEdit(task_id=task_id, fields={"owner": None})],
                            status_updates={"current_task": None, "last_poll": ctx.now})  # fmt: skip

        self.apply_own_branch(withdraw, task_id, force=True, epoch=None)

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
        if self._mode == "own-branch":
            return self.apply_own_branch(operation, task_id, force, epoch)

        def decide(state: BranchState) -> Change:
            if state.commit is None:  # only `init` creates the branch; a typo must not
                raise UsageError(
                    f"no coordination branch {self.branch} on {self.remote}",
                    hint="create it with `ifcoord init`, or pass the right --branch/--remote",
                )
            snapshot = state.snapshot
            self._mode = snapshot.config.mode
            if self._mode == "own-branch":
                raise WrongMode()  # found out on the first read: no shared-mode write here
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

        try:
            tx = self.transactor.run(decide, fetch_first=fetch_first)
        except WrongMode:
            return self.apply_own_branch(operation, task_id, force, epoch)
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


def subprocess_git_dir(top: Path) -> Path | None:
    """The git dir of the worktree at `top` (where MERGE_HEAD and the index live)."""
    proc = subprocess.run(
        ["git", "rev-parse", "--absolute-git-dir"], cwd=top, capture_output=True, text=True, check=False
    )
    return Path(proc.stdout.strip()) if proc.returncode == 0 else None
