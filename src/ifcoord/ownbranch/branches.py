"""Own-branch mode, the git part: read every session's STATUS from its own branch, and commit
this session's STATUS to its own branch (the branch the agent works on) and push it there.

Writing touches exactly one path of the user's repository: the status file, in the branch's
next commit, in the index and in the work tree, so that `git status` stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ifcoord.core.snapshot import read_status
from ifcoord.errors import IfcoordError, RemoteUnreachable, UsageError
from ifcoord.files.config import glob_match, is_status_path
from ifcoord.files.status import session_from_path
from ifcoord.git.retry import backoff
from ifcoord.git.runner import GitFailed, GitRunner
from ifcoord.git.store import BranchStore
from ifcoord.models import Config, SessionStatus

IN_PROGRESS_MARKERS = ("MERGE_HEAD", "rebase-merge", "rebase-apply", "CHERRY_PICK_HEAD", "REVERT_HEAD")


BUSY_SECONDS = 5.0  # how long a push waits out a remote busy with an earlier push of ours


class OwnBranchBusy(IfcoordError):
    """A merge or rebase is under way on the session's branch, or its push was refused;
    the loop tries again next cycle."""

    exit_code = 5


class RemoteBusy(OwnBranchBusy):
    """The remote could not lock the branch: another push of ours is still being taken in."""


@dataclass
class SessionFile:
    branch: str
    path: str
    data: bytes
    status: SessionStatus


def session_branches(heads: dict[str, str], pattern: str, coordination: str) -> dict[str, str]:
    """The session branches among `heads`. The pattern means what every glob of ifcoord.yaml
    means: `*` stays within one `/` segment, `**` spans them (`claude/*` is not `claude/a/b`)."""
    return {b: sha for b, sha in heads.items() if b != coordination and glob_match(pattern, b)}


def status_dirs(config: Config) -> set[str]:
    """The folders the status globs can match in (only those are read on a project branch)."""
    dirs = set()
    for glob in config.status:
        head = glob.rsplit("/", 1)[0] if "/" in glob else ""
        dirs.add(head)
    return dirs


def read_session_files(
    store: BranchStore, branches: dict[str, str], config: Config
) -> dict[str, SessionFile]:
    """Each session's STATUS file from the session branches, by session name.

    A session branch is a whole project branch; only status files whose `branch:` names that
    branch count, so a stale copy of another session's file on it is ignored.
    """
    out: dict[str, SessionFile] = {}
    for branch, sha in sorted(branches.items()):
        if not store.has_object(sha):
            continue
        for path, entry in store.list_tree(sha, status_dirs(config)).items():
            if not is_status_path(config, path) or session_from_path(path) is None:
                continue
            data = store.read_object(entry.sha)
            status = read_status(path, data)[1]  # parsed once per content (read-only)
            if status is None:
                continue
            if status.branch not in (branch, None) or (status.branch is None and len(branches) > 1):
                continue
            known = out.get(status.session)
            if known is None or (status.clock, str(status.last_poll)) > (
                known.status.clock,
                str(known.status.last_poll),
            ):
                out[status.session] = SessionFile(branch, path, data, status)
    return out


class OwnBranchWriter:
    """Commits one file to the session's own branch and pushes that branch."""

    def __init__(self, store: BranchStore, branch: str, work_git_dir: Path, top: Path | None) -> None:
        self.store = store
        self.branch = branch
        self.ref = f"refs/heads/{branch}"
        self.work_git_dir = work_git_dir  # this worktree's git dir (merge state lives there)
        self.top = top

    def checked_out_here(self) -> bool:
        head = self.work_git_dir / "HEAD"
        try:
            return head.read_text().strip() == f"ref: {self.ref}"
        except OSError:
            return False

    def refuse_while_busy(self) -> None:
        if not self.checked_out_here():
            return
        for marker in IN_PROGRESS_MARKERS:
            if (self.work_git_dir / marker).exists():
                raise OwnBranchBusy(
                    f"a {marker.split('_')[0].split('-')[0].lower()} is in progress on {self.branch}",
                    hint="finish it; ifcoord writes the status file next cycle",
                )

    def tip(self) -> str:
        tip = self.store.read_ref(self.ref)
        if tip is None:
            raise UsageError(
                f"own branch {self.branch} does not exist in this clone",
                hint="check it out, or run `ifcoord join NAME --own-branch BRANCH`",
            )
        return tip

    def commit(self, path: str, data: bytes, message: str, author: str) -> str:
        """Commit `path` on the own branch; the rest of the index and work tree stay as they are."""
        self.refuse_while_busy()
        old = self.tip()
        new = self.store.write_commit(old, {path: data}, message, author)
        try:
            self.store.git.run("update-ref", "-m", "ifcoord: status", self.ref, new, old)
        except GitFailed as exc:
            raise OwnBranchBusy(
                f"{self.branch} moved while ifcoord wrote to it", hint="ifcoord retries next cycle"
            ) from exc
        if self.checked_out_here() and self.top is not None:
            blob = self.store.write_blob(data)
            index = GitRunner(self.work_git_dir)  # this worktree's index, not the common dir's
            index.run(
                "--work-tree", str(self.top), "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"
            )
            target = self.top / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            index.run("--work-tree", str(self.top), "update-index", "-q", "--refresh", check=False)
        return new

    def push(self) -> bool:
        """Push the own branch (never forced); OwnBranchBusy when the remote has commits we lack.
        A remote still busy with an earlier push of ours is waited out by the one retry policy."""
        local = self.tip()

        def attempt() -> None:
            try:
                self.store.git.run(
                    "push", "--porcelain", "--no-verify", self.store.push_url, f"{local}:{self.ref}"
                )
            except GitFailed as exc:
                text = exc.stdout + exc.stderr
                if "[rejected]" in text or "fetch first" in text or "non-fast-forward" in text:
                    raise OwnBranchBusy(
                        f"the remote refused the push of {self.branch}: it has commits this clone lacks",
                        hint="pull or rebase the branch; ifcoord pushes the status again next cycle",
                    ) from exc
                if "[remote rejected]" in text:
                    reason = text.split("[remote rejected]", 1)[1].strip().splitlines()[0]
                    busy = "failed to update ref" in reason or "cannot lock" in reason
                    raise (RemoteBusy if busy else OwnBranchBusy)(
                        f"the remote refused the push of {self.branch}: {reason}",
                        hint="ifcoord retries next cycle",
                    ) from exc
                raise RemoteUnreachable(f"could not push {self.branch}: {exc.stderr.strip()}",
                                        hint="ifcoord retries next cycle") from exc  # fmt: skip

        backoff(BUSY_SECONDS, lambda e: isinstance(e, RemoteBusy), reraise=True)(attempt)
        self.store.git.run("update-ref", self.store.mirror_ref(self.branch), local)
        return True
