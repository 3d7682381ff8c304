"""The coordination branch as storage: a private ref, tree reads, plumbing commits, CAS pushes.

Every git call of ifcoord goes through the runner (git/runner.py); objects are read through one
persistent `cat-file --batch` and written straight into the object database (git/objects.py), so a transaction
starts few processes and never touches the user's working tree, index, HEAD or branches. Over a
plain git:// URL, the tip is read and a transaction's commit pushed without git (git/wire.py):
git's own client waits about 40 ms on each request there.
"""

from __future__ import annotations

import enum
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ifcoord.errors import IfcoordError, RemoteUnreachable, UsageError
from ifcoord.git import objects, wire
from ifcoord.git.runner import GitFailed, GitRunner

# objects in their loose form, (hex sha, compressed bytes), from one tip to another
Supply = Callable[[str | None, str], list[tuple[str, bytes]] | None]

PRIVATE_PREFIX = "refs/ifcoord"
WIRE_TIMEOUT = 10.0  # seconds a git:// server may take to list its refs before it is unreachable
IFCOORD_EMAIL_DOMAIN = "@ifcoord.invalid"  # ifcoord's commits, and only they, carry it
MISSING_REF_PATTERNS = ("couldn't find remote ref", "could not find remote ref")
# git's words for a local object store that lacks what a ref promises (a fetch killed part-way).
BROKEN_CLONE_PATTERNS = (
    "unresolved deltas", "missing blob", "missing tree", "missing commit", "bad object",
    "did not send all necessary objects", "is corrupt", "unable to read", "not our ref",
    "fatal: missing", "could not parse",
)  # fmt: skip
# git's words for a remote that will not answer differently if asked again: no such repository,
# no such host, no permission. These fail at once with git's own message; anything else
# (refused or dropped connections, timeouts) is an outage, retried until the deadline.
PERMANENT_PATTERNS = (
    "does not appear to be a git repository", "repository not found", "not found",
    "no such file or directory", "could not resolve host", "could not resolve hostname",
    "name or service not known", "permission denied", "authentication failed",
    "access denied", "no such repository", "not a git repository", "unsupported protocol",
    "protocol error: bad line length", "no such device or address",
)  # fmt: skip


class MissingObject(IfcoordError):
    """An object the coordination branch needs is not in this clone (a fetch killed part-way);
    the transaction layer heals it by forgetting the private ref and fetching again."""

    exit_code = 1


class RemoteMissing(RemoteUnreachable):
    """The remote answered that the repository is not there (or not for us): not retried."""


class PushOutcome(enum.Enum):
    LANDED = "landed"
    REJECTED = "rejected"  # the tip moved: compare-and-swap lost
    UNKNOWN = "unknown"  # transport error: the commit may or may not have landed


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: int
    sha: str


def looks_like_location(remote: str) -> bool:
    """A URL, an scp-like `host:path`, or a path: something git can reach without a name."""
    return "://" in remote or ":" in remote or "/" in remote or Path(remote).exists()


def ref_slug(remote: str) -> str:
    """A ref-safe name for a remote name or URL, stable across runs."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", remote).strip("._-")
    # cut, then strip again: a ref component may not start with "." (a long ssh URL's tail did)
    slug = re.sub(r"\.{2,}", "_", slug[-80:]).strip("._-")
    if slug.endswith(".lock"):
        slug += "_"
    return slug or "remote"


class BranchStore:
    """One coordination branch on one remote, mirrored into a private ref of a local repo."""

    def __init__(
        self,
        git_dir: Path,
        remote: str,
        branch: str,
        runner: GitRunner | None = None,
        remote_config: dict[str, str] | None = None,
    ) -> None:
        self.git_dir = git_dir
        self.remote = remote
        self.branch = branch
        self.git = runner or GitRunner(git_dir)
        self.private_ref = f"{PRIVATE_PREFIX}/{ref_slug(remote)}/{branch}"
        self._reader: objects.ObjectReader | None = None
        # the last commit written and its objects, in their loose form (what a handoff carries)
        self.last_written: tuple[str, list[tuple[str, bytes]]] | None = None
        # Talk to URLs, not remote names: with a name, git also moves the user's
        # refs/remotes/<name>/* tracking refs, and those are the user's, not ours.
        config = remote_config if remote_config is not None else self._remote_config()
        self.fetch_url = config.get(f"remote.{remote}.url", remote)
        self.push_url = config.get(f"remote.{remote}.pushurl", self.fetch_url)
        self.known_remote = f"remote.{remote}.url" in config or looks_like_location(remote)
        # a git:// remote that git would reach directly is spoken to without git (git/wire.py)
        self.fetch_wire = wire.address_for(self.fetch_url, config)
        self.push_wire = wire.address_for(self.push_url, config)
        # touched at every fetch that succeeded: how old the state is when the remote is down
        self.fetch_stamp = git_dir / "ifcoord" / "fetched" / f"{ref_slug(remote)}--{ref_slug(branch)}"

    def mark_fetched(self) -> None:
        try:
            self.fetch_stamp.parent.mkdir(parents=True, exist_ok=True)
            self.fetch_stamp.touch()
        except OSError:
            pass  # only the age shown when offline depends on it

    def fetched_at(self) -> float | None:
        try:
            return self.fetch_stamp.stat().st_mtime
        except OSError:
            return None

    def _remote_config(self) -> dict[str, str]:
        """The remotes, and what could change how git reaches them (rewritten URLs, a proxy,
        protocol rules), from the clone's git config in one call."""
        out = self.git.run(
            "config", "--get-regexp", r"^(remote|url|protocol)\.|^core\.gitproxy$", check=False
        )
        return dict(line.partition(" ")[::2] for line in out.splitlines())

    # -- objects -----------------------------------------------------------------------------

    @property
    def reader(self) -> objects.ObjectReader:
        if self._reader is None:
            self._reader = objects.ObjectReader(self.git_dir)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def read_object(self, sha: str) -> bytes:
        """One object's bytes (the reader restarts a `cat-file` that died under it). A missing
        object is MissingObject, never mistaken for an absent branch."""
        return self.read_objects([sha])[sha]

    def read_objects(self, shas: Iterable[str]) -> dict[str, bytes]:
        """Several objects' bytes, asked for together (one request, not a round trip each)."""
        try:
            return self.reader.read_many(list(dict.fromkeys(shas)))
        except objects.MissingObject as exc:
            raise MissingObject(
                f"object {exc.sha} is missing from this clone",
                hint="run the command again: ifcoord fetches the branch afresh",
            ) from exc

    def list_tree(self, commit: str, dirs: Iterable[str] | None = None) -> dict[str, TreeEntry]:
        """Files of a commit's tree by path: all of them, or only the top level and the given
        folders (a session's project branch: its status files, without walking the project)."""
        only = None if dirs is None else {d.strip("/") for d in dirs}
        out: dict[str, TreeEntry] = {}
        stack = [("", self.tree_of(commit))]
        while stack:
            prefix, sha = stack.pop()
            for binsha, mode, name in objects.tree_items(self.read_object(sha)):
                path = f"{prefix}{name}"
                if stat.S_ISDIR(mode):
                    if only is None or any(
                        d == path or d.startswith(path + "/") or path.startswith(d + "/") for d in only
                    ):
                        stack.append((f"{path}/", binsha.hex()))
                else:
                    out[path] = TreeEntry(path, mode, binsha.hex())
        return out

    def read_files(self, commit: str, wanted: Iterable[str] | None = None) -> dict[str, bytes]:
        entries = self.list_tree(commit)
        paths = entries.keys() if wanted is None else [p for p in wanted if p in entries]
        blobs = self.read_objects(entries[p].sha for p in paths)
        return {p: blobs[entries[p].sha] for p in paths}

    def _store(self, kind: bytes, data: bytes, written: list[tuple[str, bytes]] | None = None) -> bytes:
        """Write one object as a loose object, in-process (not a `git hash-object` per object);
        `written` collects it in its loose form."""
        if written is None:
            return objects.write_loose(self.git_dir / "objects", kind, data)
        hexsha = objects.object_id(kind, data)
        compressed = objects.compress_object(kind, data)
        objects.write_loose_raw(self.git_dir / "objects", hexsha, compressed)
        written.append((hexsha, compressed))
        return bytes.fromhex(hexsha)

    def adopt(self, tip: str, loose: list[tuple[str, bytes]]) -> None:
        """Take `tip` as the branch's tip, as a fetch would, from objects in their loose form that
        another clone of this machine wrote and pushed (git/handoff.py): with the ones this clone
        has, they make the tip whole."""
        folder = self.git_dir / "objects"
        for hexsha, compressed in loose:
            objects.write_loose_raw(folder, hexsha, compressed)
        self.set_private_ref(tip)
        self.mark_fetched()

    def write_blob(self, data: bytes) -> str:
        return self._store(b"blob", data).hex()

    def tree_of(self, commit: str) -> str:
        header = self.read_object(commit).split(b"\n", 1)[0]
        return header.split(b" ", 1)[1].decode()

    def _tree_entries(self, tree_sha: str | None) -> dict[str, tuple[int, bytes]]:
        if tree_sha is None:
            return {}
        return {name: (mode, binsha) for binsha, mode, name in objects.tree_items(self.read_object(tree_sha))}

    def _updated_tree(
        self, tree_sha: str | None, changes: Mapping[str, bytes | None], written: list[tuple[str, bytes]]
    ) -> bytes | None:
        """A new tree: `tree_sha` with `changes` applied, rewriting only the subtrees they touch
        (a project branch with thousands of files costs a handful of object reads)."""
        entries = self._tree_entries(tree_sha)
        nested: dict[str, dict[str, bytes | None]] = {}
        for path, data in changes.items():
            head, sep, rest = path.partition("/")
            if sep:
                nested.setdefault(head, {})[rest] = data
            elif data is None:
                entries.pop(head, None)
            else:
                mode = entries.get(head, (0o100644, b""))[0]
                mode = mode if not stat.S_ISDIR(mode) else 0o100644
                entries[head] = (mode, self._store(b"blob", data, written))
        for name, sub in nested.items():
            mode, binsha = entries.get(name, (0o040000, b""))
            child = binsha.hex() if binsha and stat.S_ISDIR(mode) else None
            new = self._updated_tree(child, sub, written)
            if new is None:
                entries.pop(name, None)
            else:
                entries[name] = (0o040000, new)
        if not entries and tree_sha is not None:
            return None
        # git sorts tree entries by name, with directories compared as if they ended in "/".
        ordered = sorted(
            ((binsha, mode, name) for name, (mode, binsha) in entries.items()),
            key=lambda e: e[2] + "/" if stat.S_ISDIR(e[1]) else e[2],
        )
        return self._store(b"tree", objects.tree_bytes(ordered), written)

    def write_commit(
        self,
        parent: str | None,
        changes: Mapping[str, bytes | None],
        message: str,
        author: str,
        when: datetime | None = None,
    ) -> str:
        """A commit of `parent`'s tree with `changes` applied (None deletes a path); no work tree."""
        written: list[tuple[str, bytes]] = []  # every object of the commit its parent lacks
        root = self._updated_tree(self.tree_of(parent) if parent else None, changes, written)
        if root is None:  # every file deleted: git's empty tree
            root = self._store(b"tree", b"", written)
        when = when or datetime.now(timezone.utc)
        stamp = f"{int(when.timestamp())} +0000"
        ident = f"{author} <{author}{IFCOORD_EMAIL_DOMAIN}> {stamp}"
        lines = [f"tree {root.hex()}"]
        if parent is not None:
            lines.append(f"parent {parent}")
        lines += [f"author {ident}", f"committer {ident}", "", message.rstrip("\n"), ""]
        commit = self._store(b"commit", "\n".join(lines).encode(), written).hex()
        self.last_written = (commit, written)
        return commit

    # -- the remote --------------------------------------------------------------------------

    def local_tip(self) -> str | None:
        """The private ref, read in-process (loose or packed) rather than by a git process."""
        return self.read_ref(self.private_ref)

    def read_ref(self, ref: str) -> str | None:
        """A ref's value from the ref files alone (loose or packed): no object lookup, so a
        dead `cat-file` or a missing object can never make a branch look absent."""
        return objects.read_ref(self.git_dir, ref)

    def list_heads(self) -> dict[str, str]:
        """Every branch on the remote with its tip, from one `ls-remote` round trip."""
        refs = self._wire_refs()
        if refs is not None:
            return {r[len("refs/heads/") :]: sha for r, sha in refs.items() if r.startswith("refs/heads/")}
        try:
            out = self.git.run("ls-remote", "--heads", self.fetch_url)
        except GitFailed as exc:
            raise self._unreachable(exc) from exc
        heads = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.startswith("refs/heads/"):
                heads[ref[len("refs/heads/") :]] = sha
        return heads

    def mirror_ref(self, branch: str) -> str:
        """The private ref that mirrors another branch of the same remote (a session's)."""
        return f"{PRIVATE_PREFIX}/{ref_slug(self.remote)}/sessions/{branch}"

    def fetch_branches(self, branches: Iterable[str]) -> None:
        """Mirror several branches into their private refs with one fetch."""
        specs = [f"+refs/heads/{b}:{self.mirror_ref(b)}" for b in branches]
        if not specs:
            return
        try:
            self.git.run(
                "fetch", "-q", "--no-tags", "--no-write-fetch-head", "--no-auto-gc",
                "--no-recurse-submodules", self.fetch_url, *specs,
            )  # fmt: skip
        except GitFailed as exc:
            raise self._unreachable(exc) from exc

    def remote_tip(self) -> str | None:
        """The branch's tip on the remote, from one `ls-remote` round trip."""
        refs = self._wire_refs()
        if refs is not None:
            return refs.get(f"refs/heads/{self.branch}")
        try:
            out = self.git.run("ls-remote", "--heads", self.fetch_url, f"refs/heads/{self.branch}")
        except GitFailed as exc:
            raise self._unreachable(exc) from exc
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{self.branch}":
                return sha
        return None

    def fetch(self, supply: Supply | None = None) -> str | None:
        """Bring the branch into the private ref; its tip, or None when the branch is absent.

        git moves the ref only after the pack is complete and connected, so a fetch killed
        part-way leaves the ref where it was. A clone already broken (a ref on a commit whose
        objects are missing: git then fails with "unresolved deltas") heals here: the private
        ref is dropped, so that nothing broken is offered to the server, and fetched afresh.

        Over git://, the tip is asked for first without git (git/wire.py): when it is still the
        private ref's, there is nothing to fetch, and git's fetch (with its wait) is not run.
        A private ref whose objects are missing is found when the state is read, and healed
        there (Transactor.load). When the tip moved, `supply(local, tip)` (as for `sync`) may
        hand over the objects of the commits in between, which sessions of this machine pushed
        (git/handoff.py): then git's fetch is not run either."""
        refs = self._wire_refs()
        tip = refs.get(f"refs/heads/{self.branch}") if refs is not None else None
        if tip is not None and self._take_without_git(tip, supply):
            return tip
        return self._git_fetch()

    def _take_without_git(self, tip: str, supply: Supply | None) -> bool:
        """Move the private ref to the remote's `tip`, just read, when that needs no fetch: it is
        already there, this clone has it whole (another process of the clone pushed it), or
        `supply` hands over its objects; False: git must fetch it."""
        local = self.local_tip()
        if tip == local:
            self.mark_fetched()
            return True
        # A fetch killed mid-unpack leaves a commit without its blobs: move only onto a whole one.
        if self.has_object(tip) and self.is_connected(tip, local):
            self.set_private_ref(tip)
            self.mark_fetched()
            return True
        loose = supply(local, tip) if supply is not None else None
        if loose is not None:
            try:
                self.adopt(tip, loose)
                return True
            except (OSError, IfcoordError):
                pass  # fetched instead
        return False

    def _git_fetch(self) -> str | None:
        """git's fetch of the branch into the private ref (BranchStore.fetch, past its shortcuts)."""
        for attempt in (1, 2):
            try:
                self.git.run(
                    "fetch", "-q", "--no-tags", "--no-write-fetch-head", "--no-auto-gc",
                    "--no-recurse-submodules", self.fetch_url,
                    f"+refs/heads/{self.branch}:{self.private_ref}",
                )  # fmt: skip
            except GitFailed as exc:
                if any(p in exc.stderr for p in MISSING_REF_PATTERNS):
                    self._forget()
                    return None
                if attempt == 1 and any(p in exc.stderr.lower() for p in BROKEN_CLONE_PATTERNS):
                    self.heal()
                    continue
                raise self._unreachable(exc) from exc
            break
        self.mark_fetched()
        return self.local_tip()

    def heal(self) -> None:
        """Forget every private ref of this remote: the next fetch starts from what is whole."""
        out = self.git.run(
            "for-each-ref", "--format=%(refname)", f"{PRIVATE_PREFIX}/{ref_slug(self.remote)}/", check=False
        )
        for ref in out.split():
            self.git.run("update-ref", "-d", ref, check=False)

    def is_connected(self, tip: str, base: str | None = None) -> bool:
        """Whether every object reachable from `tip` (and not from `base`) is in this clone."""
        args = ["rev-list", "--quiet", "--objects", tip]
        if base is not None and self.has_object(base):
            args += ["--not", base]
        self.git.run(*args, check=False)
        return self.git.last_code == 0

    def sync(self, supply: Supply | None = None) -> str | None:
        """Fetch only when the remote tip moved: the cheap check the loop runs each cycle.
        `supply(local, tip)`, when given, may hand over the objects the commits after `local`
        up to the remote's new `tip` brought, in their loose form (git/handoff.py); None from
        it: fetch them."""
        tip = self.remote_tip()
        if tip is None:
            self._forget()
            return None
        if self._take_without_git(tip, supply):
            return tip
        return self._git_fetch()  # the tip is known: not asked for again

    def tidy(self) -> None:
        """`git gc --auto`: what git runs after its own commands (ifcoord's fetches skip it),
        and does nothing until the clone holds enough loose objects or packs to be worth
        packing; it then works in the background, whatever `gc.autoDetach` says (a loop must
        not stop for it). Never fails a caller."""
        try:
            self.git.run("-c", "gc.autoDetach=true", "gc", "--auto", "--quiet", check=False, timeout=30)
        except GitFailed:
            pass  # only slower reads of a clone left unpacked

    def has_object(self, sha: str) -> bool:
        return self.reader.has(sha)

    def is_ancestor(self, commit: str, tip: str) -> bool:
        self.git.run("merge-base", "--is-ancestor", commit, tip, check=False)
        return self.git.last_code == 0

    def set_private_ref(self, sha: str) -> None:
        """Point the private ref at `sha`. `git update-ref` waits out another process's lock on
        it (the loop syncs while a command in the same clone pushes)."""
        self.git.run("update-ref", self.private_ref, sha)

    def _forget(self) -> None:
        self.git.run("update-ref", "-d", self.private_ref, check=False)

    def push(self, commit: str, expected: str | None, timeout: float = 60.0) -> PushOutcome:
        """Compare-and-swap the remote branch from `expected` (None: must not exist) to `commit`."""
        loose = self._own_objects(commit, expected)
        if self.push_wire is not None and loose is not None:
            try:
                report = wire.push(
                    self.push_wire, f"refs/heads/{self.branch}", expected, commit, loose, timeout
                )
            except wire.NotSpoken:
                pass  # nothing changed on the server: git pushes
            except wire.Unanswered as exc:
                raise self._unanswered(timeout) from exc
            else:
                if report.outcome == wire.REJECTED:
                    self._refused_by_hook(report.reason)
                outcome = PushOutcome(report.outcome)
                if outcome is PushOutcome.LANDED:
                    self.set_private_ref(commit)
                return outcome
        lease = f"--force-with-lease=refs/heads/{self.branch}:{expected or ''}"
        try:
            out = self.git.run(
                "push", "--porcelain", "--no-verify", lease, self.push_url,
                f"{commit}:refs/heads/{self.branch}", timeout=timeout,
            )  # fmt: skip
        except GitFailed as exc:
            if (
                "[rejected]" in exc.stdout
                or "stale info" in exc.stdout
                or "fetch first" in (exc.stdout + exc.stderr)
            ):
                return PushOutcome.REJECTED
            if "[remote rejected]" in exc.stdout:
                reason = exc.stdout.split("[remote rejected]", 1)[1].strip().splitlines()[0]
                self._refused_by_hook(reason)
                # "failed to update ref", "cannot lock ref": another push won the race.
                return PushOutcome.REJECTED
            return PushOutcome.UNKNOWN
        if f"refs/heads/{self.branch}" in out:
            self.set_private_ref(commit)
            return PushOutcome.LANDED
        return PushOutcome.UNKNOWN

    def _wire_refs(self) -> dict[str, str] | None:
        """The remote's refs read without git over git:// (git/wire.py); None: git is to ask
        (not a git:// URL git reaches directly, or an answer wire.py does not read, which git
        then reports in its words)."""
        if self.fetch_wire is None:
            return None
        try:
            return wire.remote_refs(self.fetch_wire, WIRE_TIMEOUT)
        except wire.NotSpoken:
            return None
        except wire.Unanswered as exc:
            raise self._unanswered() from exc

    def _unanswered(self, seconds: float | None = None) -> RemoteUnreachable:
        waited = WIRE_TIMEOUT if seconds is None else seconds
        return RemoteUnreachable(
            f"remote {self.remote} is unreachable: it did not answer within {waited:g}s",
            hint="check the network or the remote's URL; nothing was changed",
        )

    def _refused_by_hook(self, reason: str) -> None:
        """A server hook said no: retrying will not change its mind."""
        if "hook declined" in reason:
            raise UsageError(
                f"the remote refused the push to {self.branch}: {reason}",
                hint="check that this session may push that branch (or use own-branch mode)",
            )

    def _own_objects(self, commit: str, expected: str | None) -> list[tuple[str, bytes]] | None:
        """The objects `commit` brings over `expected`, when this store just wrote it on that
        parent (write_commit keeps them); None: let git work out what to send."""
        if self.last_written is None or self.last_written[0] != commit:
            return None
        loose = self.last_written[1]
        kind, body = objects.loose_parts(loose[-1][1])  # the commit is written last
        parents = [
            line[7:].decode()
            for line in body.split(b"\n\n", 1)[0].split(b"\n")
            if line.startswith(b"parent ")
        ]
        return loose if kind == b"commit" and parents == ([expected] if expected else []) else None

    def _unreachable(self, exc: GitFailed) -> IfcoordError:
        if not self.known_remote:
            # Not a network problem: no remote of that name, and not a URL or a path.
            return UsageError(
                f"this clone has no remote named {self.remote!r}",
                hint="pass --remote NAME-OR-URL, set IFCOORD_REMOTE, or `ifcoord join NAME --remote ...`",
            )
        reason = git_reason(exc)
        if any(p in exc.stderr.lower() for p in PERMANENT_PATTERNS):
            return RemoteMissing(
                f"remote {self.remote} ({self.fetch_url}) cannot be used: {reason}",
                hint="check the remote's URL and your access to it; nothing was changed",
            )
        return RemoteUnreachable(
            f"remote {self.remote} is unreachable: {reason}",
            hint="check the network or the remote's URL; nothing was changed",
        )

    # -- history -----------------------------------------------------------------------------

    def history(
        self, *tips: str, max_count: int | None = None, grep: str | None = None
    ) -> list[tuple[str, int, str, bool]]:
        """(sha, unix time, full message, made by ifcoord) of commits reachable from the tips,
        newest first; `grep`: only commits whose message has a line matching that regular
        expression. "Made by ifcoord": author and committer are the same `@ifcoord.invalid`
        identity that write_commit gives (a person's commit, or an amended one, is not)."""
        # Each record starts with NUL, fields are NUL-separated: git refuses NUL in commit
        # messages, while any other byte (0x1e included) may appear in one.
        args = ["log", "--format=%x00%H%x00%ct%x00%ae%x00%ce%x00%B"]
        if max_count:
            args.append(f"--max-count={max_count}")
        if grep:
            args += ["--regexp-ignore-case", f"--grep={grep}"]
        out = self.git.run(*args, *tips, "--")
        fields = out.split("\x00")[1:]
        rows = []
        for i in range(0, len(fields) - 4, 5):
            sha, ts, author, committer, body = fields[i : i + 5]
            if not re.fullmatch(r"[0-9a-f]{40,64}", sha) or not ts.isdigit():
                continue
            made = author == committer and author.endswith(IFCOORD_EMAIL_DOMAIN)
            rows.append((sha, int(ts), body.rstrip("\n"), made))
        return rows


def git_reason(exc: GitFailed) -> str:
    """git's own explanation: its `fatal:`/`error:` lines (not the advice that follows them)."""
    lines = [line.strip() for line in exc.stderr.strip().splitlines() if line.strip()]
    picked = [
        line.split(":", 1)[1].strip() if line.lower().startswith(("fatal:", "error:")) else line
        for line in lines
        if line.lower().startswith(("fatal:", "error:", "ssh:", "remote:"))
    ]
    if picked:
        return "; ".join(dict.fromkeys(picked))
    return lines[0] if lines else f"exit {exc.code}"
