"""Git objects without GitPython: every read and write agrees with git's own commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git

from ifcoord.git import objects
from ifcoord.git.runner import find_repository


@pytest.fixture
def git_dir(clone: Path) -> Path:
    return find_repository(clone)[0]


def test_a_loose_object_has_the_id_and_content_git_gives_it(clone: Path, git_dir: Path) -> None:
    data = "héllo\n".encode() * 1000
    binsha = objects.write_loose(git_dir / "objects", b"blob", data)
    (clone / "x.txt").write_bytes(data)
    assert binsha.hex() == git("hash-object", "x.txt", cwd=clone)
    assert git("cat-file", "-t", binsha.hex(), cwd=clone) == "blob"
    assert objects.write_loose(git_dir / "objects", b"blob", data) == binsha  # idempotent
    git("fsck", "--no-dangling", cwd=clone)


def test_an_object_is_written_read_only_whole_and_over_a_temporary_file_a_dead_writer_left(
    clone: Path, git_dir: Path
) -> None:
    import os
    import threading

    data = b"left behind\n"
    sha = objects.object_id(b"blob", data)
    folder = git_dir / "objects" / sha[:2]
    folder.mkdir(exist_ok=True)
    stale = folder / f"tmp_obj_ifcoord_{os.getpid()}_{threading.get_ident()}"
    stale.write_bytes(b"half an obj")  # a process of the same id died mid-write
    stale.chmod(0o444)
    objects.write_loose_raw(git_dir / "objects", sha, objects.compress_object(b"blob", data))
    assert git("cat-file", "blob", sha, cwd=clone) == "left behind"
    assert (folder / sha[2:]).stat().st_mode & 0o777 == 0o444  # as git leaves its own
    assert not stale.exists()
    git("fsck", "--no-dangling", cwd=clone)


def test_trees_encode_and_decode_like_git(clone: Path, git_dir: Path) -> None:
    blob = objects.write_loose(git_dir / "objects", b"blob", b"a\n")
    sub = objects.write_loose(git_dir / "objects", b"tree", objects.tree_bytes([(blob, 0o100644, "f")]))
    items = [(blob, 0o100644, "a.md"), (sub, 0o40000, "dir"), (blob, 0o100755, "ünï")]
    tree = objects.write_loose(git_dir / "objects", b"tree", objects.tree_bytes(items))
    listing = git("ls-tree", tree.hex(), cwd=clone)
    assert f"040000 tree {sub.hex()}\tdir" in listing
    assert "100755 blob" in listing
    reader = objects.ObjectReader(git_dir)
    try:
        assert objects.tree_items(reader.read(tree.hex())) == items
    finally:
        reader.close()


def test_the_reader_reads_packed_objects_raises_on_missing_ones_and_survives_a_kill(
    clone: Path, git_dir: Path
) -> None:
    head = git("rev-parse", "HEAD", cwd=clone)
    git("gc", "-q", cwd=clone)  # everything into a pack
    reader = objects.ObjectReader(git_dir)
    try:
        assert reader.read(head).startswith(b"tree ")
        assert not reader.has("0" * 40)
        with pytest.raises(objects.MissingObject):
            reader.read("1" * 40)
        assert reader._proc is not None
        reader._proc.kill()
        reader._proc.wait()
        assert reader.read(head).startswith(b"tree ")
    finally:
        reader.close()


def test_many_objects_are_read_in_batches_and_a_missing_one_leaves_the_reader_in_step(
    clone: Path, git_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objects, "BATCH", 7)  # several batches, the last one short
    blobs = {objects.write_loose(git_dir / "objects", b"blob", b"%d\n" % i * i).hex(): b"%d\n" % i * i
             for i in range(30)}  # fmt: skip
    shas = list(blobs)
    reader = objects.ObjectReader(git_dir)
    try:
        assert reader.read_many(shas) == blobs
        # a missing object amid others: named, and the answers after it are read off the pipe
        with pytest.raises(objects.MissingObject) as missing:
            reader.read_many([shas[0], "2" * 40, shas[1], "3" * 40, shas[2]])
        assert missing.value.sha == "2" * 40
        assert reader.read_many(shas[3:5]) == {s: blobs[s] for s in shas[3:5]}
        # a reader killed between batches is restarted; the request is asked again whole
        assert reader._proc is not None
        reader._proc.kill()
        reader._proc.wait()
        assert reader.read_many(shas) == blobs
    finally:
        reader.close()


def test_a_read_interrupted_mid_batch_leaves_no_answer_behind_for_the_next(
    clone: Path, git_dir: Path
) -> None:
    """Ctrl-C while a batch's answers are read: the rest are still in the pipe, and the next
    read must not take them for its own."""
    blobs = {
        objects.write_loose(git_dir / "objects", b"blob", b"%d\n" % i).hex(): b"%d\n" % i for i in range(5)
    }
    shas = list(blobs)
    reader = objects.ObjectReader(git_dir)

    class Interrupting:
        def __init__(self, inner: object) -> None:
            self.inner, self.lines = inner, 0

        def readline(self) -> bytes:
            self.lines += 1
            if self.lines == 2:
                raise KeyboardInterrupt
            return self.inner.readline()  # type: ignore[attr-defined,no-any-return]

        def read(self, n: int) -> bytes:
            return self.inner.read(n)  # type: ignore[attr-defined,no-any-return]

        def close(self) -> None:
            self.inner.close()  # type: ignore[attr-defined]

    try:
        reader.read(shas[0])
        assert reader._proc is not None
        reader._proc.stdout = Interrupting(reader._proc.stdout)  # type: ignore[assignment]
        with pytest.raises(KeyboardInterrupt):
            reader.read_many(shas)
        assert reader.read_many(shas[3:]) == {s: blobs[s] for s in shas[3:]}
    finally:
        reader.close()


def test_refs_are_read_loose_packed_and_symbolic(clone: Path, git_dir: Path) -> None:
    head = git("rev-parse", "HEAD", cwd=clone)
    git("update-ref", "refs/ifcoord/x/ifcoord", head, cwd=clone)
    assert objects.read_ref(git_dir, "refs/ifcoord/x/ifcoord") == head
    assert objects.read_ref(git_dir, "HEAD") == head
    git("pack-refs", "--all", cwd=clone)
    assert not (git_dir / "refs/ifcoord/x/ifcoord").exists()
    assert objects.read_ref(git_dir, "refs/ifcoord/x/ifcoord") == head
    assert objects.read_ref(git_dir, "refs/ifcoord/x/absent") is None
