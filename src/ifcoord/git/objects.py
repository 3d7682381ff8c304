"""Git's object database and refs, read and written without GitPython.

Importing GitPython takes about 65 ms and runs `git version`: as much as the whole git work of a
claim (bench/raw_claim.sh). What the store needs is small: one persistent `git cat-file --batch`
for reads (what GitPython runs too), loose objects written in-process, tree entries encoded and
decoded, and refs read from their files.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import zlib
from pathlib import Path
from typing import IO

from ifcoord.git.runner import git_env

TreeItem = tuple[bytes, int, str]  # (binary sha, mode, name), GitPython's order
BATCH = 1000  # object ids per request to `cat-file --batch`: 41 kB, under a pipe's 64 kB


class MissingObject(ValueError):
    """The object is not in the repository."""

    def __init__(self, sha: str, git_dir: Path) -> None:
        super().__init__(f"object {sha} is not in {git_dir}")
        self.sha = sha


class ObjectReader:
    """A persistent `git cat-file --batch` of one repository; safe to share between threads."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                ["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=git_env(),
                # its own process group: Ctrl-C on the loop must not kill the reader mid-answer
                start_new_session=True,
            )  # fmt: skip
        assert self._proc.stdin is not None and self._proc.stdout is not None
        return self._proc.stdin, self._proc.stdout

    def read(self, sha: str) -> bytes:
        return self.read_many([sha])[sha]

    def read_many(self, shas: list[str]) -> dict[str, bytes]:
        """Several objects by id, asked for together: one write and one flush per batch rather
        than a round trip each (a 5,000-task branch's 200 files: 11 ms one by one, 2 ms so)."""
        out: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(shas), BATCH):
                self._read_batch(shas[start : start + BATCH], out)
        return out

    def _read_batch(self, shas: list[str], out: dict[str, bytes]) -> None:
        retried = False  # a reader that died (killed, repository moved) is restarted once
        todo = list(shas)
        while todo:
            stdin, stdout = self._pipes()
            try:
                # The whole request fits the pipe's buffer (BATCH ids), so writing it cannot block
                # on a reader that is itself blocked writing answers we have not read yet.
                stdin.write(b"".join(sha.encode() + b"\n" for sha in todo))
                stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            try:
                missing = self._answers(stdout, todo, out)
            except BaseException:
                # Interrupted mid-batch (Ctrl-C): the rest of its answers are still in the pipe,
                # and the next read would take them for its own. A new reader starts clean.
                self._stop()
                raise
            if missing is not None:
                raise MissingObject(missing, self.git_dir)
            if todo:
                self._stop()
                if retried:
                    raise MissingObject(todo[0], self.git_dir)
                retried = True

    @staticmethod
    def _answers(stdout: IO[bytes], todo: list[str], out: dict[str, bytes]) -> str | None:
        """Read the answers to `todo` in order, into `out`, removing each from `todo` (what is
        left was not answered: the reader died); the first id found missing, if any."""
        missing = None
        while todo:
            try:
                header = stdout.readline()
            except OSError:
                header = b""
            if not header:
                break
            if header.endswith(b" missing\n"):
                sha = todo.pop(0)
                missing = missing or sha  # read the other answers: the pipe stays in step
                continue
            size = int(header.rsplit(b" ", 1)[1])
            data = stdout.read(size)
            if len(data) < size or stdout.read(1) != b"\n":  # the reader died mid-answer
                break
            out[todo.pop(0)] = data
        return missing

    def has(self, sha: str) -> bool:
        try:
            self.read(sha)
        except MissingObject:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._proc is not None:
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


def object_id(kind: bytes, data: bytes) -> str:
    """The id git gives an object (`git hash-object -t KIND`), hex."""
    digest = hashlib.sha1(kind + b" %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def write_loose(objects: Path, kind: bytes, data: bytes) -> bytes:
    """Store one object as a loose object (as `git hash-object -w` would); its binary sha."""
    hexsha = object_id(kind, data)
    if not (objects / hexsha[:2] / hexsha[2:]).exists():
        write_loose_raw(objects, hexsha, compress_object(kind, data))
    return bytes.fromhex(hexsha)


def compress_object(kind: bytes, data: bytes) -> bytes:
    """An object's loose form: its header and content, zlib-compressed."""
    return zlib.compress(kind + b" %d\0" % len(data) + data, 1)


def loose_parts(compressed: bytes) -> tuple[bytes, bytes]:
    """An object's kind and content from its loose form."""
    header, _, data = zlib.decompress(compressed).partition(b"\0")
    return header.split(b" ", 1)[0], data


def write_loose_raw(objects: Path, hexsha: str, compressed: bytes) -> None:
    """Store an object already in its loose form, unless this repository has it loose.

    Written to a temporary file created read-only, then renamed into place, as git does: a
    reader sees the whole object or none. With plain `os` calls (a poll that takes a busy team's
    commits from the handoff writes hundreds of objects: pathlib's objects were half the cost)."""
    folder = f"{objects}/{hexsha[:2]}"
    path = f"{folder}/{hexsha[2:]}"
    if os.path.exists(path):
        return
    tmp = f"{folder}/tmp_obj_ifcoord_{os.getpid()}_{threading.get_ident()}"
    try:
        fd = os.open(tmp, _NEW_OBJECT, 0o444)
    except FileNotFoundError:  # the fan-out folder is new
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, _NEW_OBJECT, 0o444)
    except FileExistsError:  # left by a process of the same id that died mid-write
        os.unlink(tmp)
        fd = os.open(tmp, _NEW_OBJECT, 0o444)
    try:
        view = memoryview(compressed)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)  # another writer of the same object wrote the same bytes


_NEW_OBJECT = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def tree_items(data: bytes) -> list[TreeItem]:
    """The entries of a tree object: `<octal mode> <name>\\0<20-byte sha>` each."""
    items: list[TreeItem] = []
    i, end = 0, len(data)
    while i < end:
        space = data.index(b" ", i)
        nul = data.index(b"\0", space)
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        items.append((data[nul + 1 : nul + 21], int(data[i:space], 8), name))
        i = nul + 21
    return items


def tree_bytes(items: list[TreeItem]) -> bytes:
    """A tree object's content from entries already in git's order."""
    return b"".join(
        b"%o %s\0%s" % (mode, name.encode("utf-8", "surrogateescape"), binsha) for binsha, mode, name in items
    )


def read_ref(git_dir: Path, ref: str) -> str | None:
    """A ref's sha from its loose file or packed-refs, following symbolic refs; None if absent."""
    for _ in range(5):
        try:
            text = (git_dir / ref).read_text().strip()
        except OSError:
            return _packed_ref(git_dir, ref)
        if not text.startswith("ref: "):
            return text if _is_sha(text) else None
        ref = text[5:].strip()
    return None


def _packed_ref(git_dir: Path, ref: str) -> str | None:
    try:
        lines = (git_dir / "packed-refs").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        sha, _, name = line.partition(" ")
        if name == ref and _is_sha(sha):
            return sha
    return None


def _is_sha(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)
