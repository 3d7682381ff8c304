"""The two modes as objects: how a clone reads the branch, polls it and applies an operation.

`Workspace` chooses one once, when it first reads the branch's config (`mode_for`), and calls
it; nothing else asks which mode is on. Shared mode: every session commits to the coordination
branch by compare-and-swap. Own-branch mode: a session proposes on its own branch and the
arbiter decides (docs/modes.md section 3).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from ifcoord.core import lifecycle
from ifcoord.core.ops import OpContext, OpResult
from ifcoord.core.snapshot import BranchState, build_snapshot
from ifcoord.core.writeback import changed_files
from ifcoord.errors import IfcoordError, UsageError
from ifcoord.files.config import glob_match
from ifcoord.files.status import render_status, status_path_for
from ifcoord.git.runner import run_git
from ifcoord.git.transaction import Change, TxResult, now
from ifcoord.models import Config, Snapshot
from ifcoord.ownbranch.branches import (
    OwnBranchWriter,
    SessionFile,
    read_session_files,
    session_branches,
    status_dirs,
)
from ifcoord.ownbranch.proposals import (
    Proposal,
    Proposed,
    decided_seq,
    decisions_of,
    next_clock,
    overlay_sessions,
    own_seq,
    pending,
    proposal_from,
    proposals_of,
)

# The Workspace that owns a mode object (typed loosely: workspace.py imports this module).
Workspace = Any

Operation = Callable[[Snapshot, OpContext], OpResult]


class WrongMode(Exception):
    """The branch turned out to be in own-branch mode while a shared-mode write was prepared."""


class Mode(Protocol):
    name: str

    def read(self, state: BranchState, fetch: bool) -> BranchState: ...

    def poll_state(self, synced: BranchState | None) -> BranchState: ...

    def apply(
        self, operation: Operation, task_id: str | None, force: bool, epoch: int | None, fetch_first: bool
    ) -> tuple[OpResult, TxResult]: ...

    def withdraw(self, task_id: str) -> None: ...

    def others_waiting(self) -> bool: ...

    def one_turn(self) -> AbstractContextManager[None]: ...

    def session_branch_tips(self) -> dict[str, str]: ...

    def pending_claims(self, snapshot: Snapshot) -> list[Proposal]: ...

    def decision(self, snapshot: Snapshot, seq: int) -> dict[str, Any] | None: ...


def mode_for(ws: Workspace, config: Config) -> Mode:
    """The one place that looks at `mode:` in the branch's config."""
    return OwnBranchMode(ws) if config.mode == "own-branch" else SharedMode(ws)


class SharedMode:
    """Every operation is one compare-and-swap commit on the coordination branch."""

    name = "shared"

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def read(self, state: BranchState, fetch: bool) -> BranchState:
        return state

    def poll_state(self, synced: BranchState | None) -> BranchState:
        if synced is not None:
            return synced
        return self.ws.transactor.load(self.ws.transactor.sync())[1]

    def apply(
        self, operation: Operation, task_id: str | None, force: bool, epoch: int | None, fetch_first: bool
    ) -> tuple[OpResult, TxResult]:
        ws = self.ws
        session = ws.session

        def decide(state: BranchState) -> Change:
            if state.commit is None:  # only `init` creates the branch; a typo must not
                raise UsageError(
                    f"no coordination branch {ws.branch} on {ws.remote}",
                    hint="create it with `ifcoord init`, or pass the right --branch/--remote",
                )
            snapshot = state.snapshot
            if not isinstance(ws.choose_mode(snapshot.config), SharedMode):
                raise WrongMode()  # found out on the first read: no shared-mode write here
            ctx = OpContext(
                session=session,
                now=now(),
                stale=ws.stale(snapshot),
                held_epoch=epoch if epoch is not None else ws.held_epoch(snapshot, task_id),
                force=force,
            )
            ws.floor.see(snapshot)
            result = ws.floor.lift(operation(snapshot, ctx))
            ws.check_identity(snapshot, result, ctx.stale, force)
            if result.status_updates:
                result.status_updates.setdefault("clone", ws.clone_id)
            files = changed_files(state, result, session, ws.dashboard)
            return Change(files, result.subject(session), result.trailers(session), payload=result)

        tx = ws.transactor.run(decide, fetch_first=fetch_first)
        result: OpResult = tx.payload
        ws.remember(result, session)
        return result, tx

    def withdraw(self, task_id: str) -> None:
        return None  # the board itself says who holds what; nothing of ours to take back

    def others_waiting(self) -> bool:
        """Whether other sessions of this machine hold or wait for a turn at the branch."""
        return self.ws.transactor.queue.busy()

    def one_turn(self) -> AbstractContextManager[None]:
        """The machine's turn at the branch, kept across the operations of the body."""
        return self.ws.transactor.holding()

    def session_branch_tips(self) -> dict[str, str]:
        return {}

    def pending_claims(self, snapshot: Snapshot) -> list[Proposal]:
        return []

    def decision(self, snapshot: Snapshot, seq: int) -> dict[str, Any] | None:
        return None


class OwnBranchMode:
    """Sessions propose on their own branch; the arbiter's decisions on the coordination branch
    are the facts. Readers show those facts plus each session's pending proposals."""

    name = "own-branch"

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._writer: OwnBranchWriter | None = None
        self.session_files: dict[str, SessionFile] = {}
        self._branches: dict[str, str] = {}

    # -- where this session writes -----------------------------------------------------------

    def own_branch(self) -> str:
        """This session's own branch: what `join` recorded, else the branch checked out."""
        ws = self.ws
        if ws.clone_config.get("own-branch"):
            return ws.clone_config["own-branch"]
        head = ws.runner.run("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
        if not head:
            raise UsageError(
                "own-branch mode needs this session's own branch, and HEAD is detached",
                hint="check out your branch or run `ifcoord join NAME --own-branch BRANCH`",
            )
        return head

    def writer(self) -> OwnBranchWriter:
        if self._writer is None:
            ws = self.ws
            # the worktree's own git dir (differs from the common one in a linked worktree)
            work_git_dir = (worktree_git_dir(ws.top) if ws.top else None) or ws.git_dir
            self._writer = OwnBranchWriter(ws.store, self.own_branch(), work_git_dir, ws.top)
        return self._writer

    # -- reading -----------------------------------------------------------------------------

    def read(self, state: BranchState, fetch: bool) -> BranchState:
        heads = self.ws.transactor.retrying(self.ws.store.list_heads) if fetch else None
        return self.merge(state, heads)

    def poll_state(self, synced: BranchState | None) -> BranchState:
        """One ls-remote; objects are fetched only for the branches that moved."""
        ws = self.ws
        heads = ws.store.list_heads()
        tip = heads.get(ws.branch)
        if tip is not None and tip != ws.store.local_tip():
            if ws.store.has_object(tip):
                ws.store.set_private_ref(tip)
            else:
                ws.store.fetch()
        state = ws.transactor.loader.load(tip)
        self.flush()
        return self.merge(state, heads)

    def own_files(self, config: Config, heads: dict[str, str] | None) -> dict[str, tuple[str, bytes]]:
        """Every session's own STATUS at its branch's remote tip (fetching only what moved)."""
        ws = self.ws
        if heads is None:
            branches = self._mirrored(config)
        else:
            branches = session_branches(heads, config.session_branches, ws.branch)
            moved = [b for b, sha in branches.items() if ws.store.read_ref(ws.store.mirror_ref(b)) != sha]
            ws.store.fetch_branches(moved)
        self._branches = branches
        self.session_files = read_session_files(ws.store, branches, config)
        return {name: (sf.path, sf.data) for name, sf in self.session_files.items()}

    def merge(self, state: BranchState, heads: dict[str, str] | None) -> BranchState:
        """Decided facts (the coordination branch) with each session's own STATUS laid over its
        copy there: a function of the remote tips only, the same for every reader."""
        raw = overlay_sessions(state, self.own_files(state.snapshot.config, heads))
        merged = BranchState(build_snapshot(raw, state.commit), raw)
        self._learn_epochs(merged.snapshot)
        return merged

    def _learn_epochs(self, snapshot: Snapshot) -> None:
        """Remember the epoch of each task the arbiter gave this session: the fencing number its
        later proposals carry, so a completion after a takeover is refused as "lease lost"."""
        session = self.ws._session
        if not session:
            return
        for task in snapshot.tasks().values():
            if task.owner == session and task.state not in lifecycle.FINISHED and task.epoch:
                if self.ws.epochs.get(session, task.id) != task.epoch:
                    self.ws.epochs.set(session, task.id, task.epoch)

    def _mirrored(self, config: Config) -> dict[str, str]:
        ws = self.ws
        prefix = ws.store.mirror_ref("")
        out = ws.runner.run("for-each-ref", "--format=%(objectname) %(refname)", prefix, check=False)
        found = {}
        for line in out.splitlines():
            sha, _, ref = line.partition(" ")
            branch = ref[len(prefix) :]
            if glob_match(config.session_branches, branch):
                found[branch] = sha
        return found

    def session_branch_tips(self) -> dict[str, str]:
        return dict(self._branches)

    def pending_claims(self, snapshot: Snapshot) -> list[Proposal]:
        mine = snapshot.statuses.get(self.ws.session)
        return [p for p in pending(mine) if p.op in ("claim", "reclaim")]

    def decision(self, snapshot: Snapshot, seq: int) -> dict[str, Any] | None:
        """The arbiter's verdict on this session's proposal `seq`, once it is on the branch."""
        mine = snapshot.statuses.get(self.ws.session)
        if decided_seq(mine) < seq:
            return None
        found = [d for d in decisions_of(mine) if d.get("seq") == seq]
        return found[-1] if found else {"seq": seq, "verdict": "unknown"}

    # -- writing -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Push the own branch when an earlier status commit did not get out (loop, each cycle)."""
        ws = self.ws
        if not ws._session:
            return
        try:
            writer = self.writer()
            local = writer.tip()
        except UsageError:
            return
        if ws.store.read_ref(ws.store.mirror_ref(writer.branch)) == local:
            return
        with ws.transactor.clone_lock(), contextlib.suppress(IfcoordError):
            if self._unpushed(writer.branch, writer.tip()):
                writer.push()

    def _unpushed(self, branch: str, local: str) -> bool:
        ws = self.ws
        remote = ws.store.read_ref(ws.store.mirror_ref(branch))
        if remote is None:
            return True
        ws.runner.run("merge-base", "--is-ancestor", remote, local, check=False)
        return ws.runner.last_code == 0 and remote != local

    def _local_file(self, config: Config) -> SessionFile | None:
        """This session's STATUS at its own branch's local tip (its proposals, pushed or not)."""
        writer = self.writer()
        return read_session_files(self.ws.store, {writer.branch: writer.tip()}, config).get(self.ws.session)

    def apply(
        self, operation: Operation, task_id: str | None, force: bool, epoch: int | None, fetch_first: bool
    ) -> tuple[OpResult, TxResult]:
        """Check the operation against the decided facts (a refusal there is final: exit 3 for
        "lease lost"), then write it as a proposal in this session's STATUS on its own branch
        and push that branch. The task changes hands only when the arbiter decides."""
        ws = self.ws
        session = ws.session
        with ws.transactor.clone_lock():  # the clone's one lock (reentrant: a hold may have it)
            writer = self.writer()
            writer.refuse_while_busy()
            state = ws.read()
            snapshot = state.snapshot
            held = epoch if epoch is not None else ws.held_epoch(snapshot, task_id)
            ctx = OpContext(session, now(), ws.stale(snapshot), held, force)
            result = operation(snapshot, ctx)
            if not result.changed:
                return result, TxResult(False, state.commit, result, 1, 0, state)
            local = self._local_file(snapshot.config)
            updates: dict[str, Any] = {"session": session, "branch": writer.branch}
            trailers = result.trailers(session)
            proposed: Proposed | None = None
            if result.task_id is not None and result.board_edits:
                decided = decided_seq(snapshot.statuses.get(session))
                seq = max(own_seq(local.status if local else None), decided) + 1
                statuses = list(snapshot.statuses.values()) + ([local.status] if local else [])
                clock = next_clock(statuses)
                proposal = proposal_from(result, session, seq, clock, held)
                keep = [p for p in proposals_of(local.status if local else None) if p.seq > decided]
                updates.update(seq=seq, clock=clock, proposals=[p.to_yaml() for p in [*keep, proposal]],
                               last_poll=ctx.now)  # fmt: skip
                proposed = Proposed(seq, proposal.op, proposal.task)
                trailers["Ifcoord-Proposal"] = str(seq)
                trailers.pop("Ifcoord-Epoch", None)  # only the arbiter's decision gives an epoch
                result.reason = f"proposed: {result.reason} (waiting for the arbiter)"
                result.epoch = held if proposal.op != "claim" else None  # epochs come from decisions
            else:
                updates.update(result.status_updates)
            path = local.path if local else status_path_for(
                session, list(ws.store.list_tree(writer.tip(), status_dirs(snapshot.config))), None
            )  # fmt: skip
            data = render_status(local.data if local else None, updates, list(result.status_remove))
            message = Change({}, result.subject(session), trailers).message()
            commit = writer.commit(path, data, message, session)
            writer.push()
            if result.op in ("complete", "release"):
                ws.remember(result, session)
            return result, TxResult(True, commit, proposed or result, 1, 1, state)

    def others_waiting(self) -> bool:
        return False  # this session writes its own branch: nobody else waits for it

    def one_turn(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # its own branch: there is no turn to keep

    def withdraw(self, task_id: str) -> None:
        """Take back this session's pending proposals for a task it lost."""
        ws = self.ws
        with ws.transactor.clone_lock():
            state = ws.read(fetch=False)
            local = self._local_file(state.snapshot.config)
            if local is None:
                return
            mine = proposals_of(local.status)
            keep = [p for p in mine if p.task != task_id]
            if len(keep) == len(mine):
                return
            data = render_status(local.data, {"proposals": [p.to_yaml() for p in keep]})
            writer = self.writer()
            writer.commit(local.path, data, f"ifcoord: withdraw {task_id} by {ws.session}\n", ws.session)
            writer.push()


def worktree_git_dir(top: Path) -> Path | None:
    """The git dir of the worktree at `top` (where MERGE_HEAD and the index live)."""
    proc = run_git(["rev-parse", "--absolute-git-dir"], cwd=top)
    return Path(proc.stdout.decode().strip()) if proc.returncode == 0 else None
