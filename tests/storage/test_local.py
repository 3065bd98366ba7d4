"""What only local disk has: real paths, symlinks, temp files, odd file names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from renderhub.storage import InvalidKey, NotFound, StorageError
from renderhub.storage.local import TMP_PREFIX, LocalStorage


def names(storage: LocalStorage, prefix: str = "", delimiter: str | None = "/") -> list[str]:
    return [e.key for e in storage.list(prefix, delimiter=delimiter).entries]


def test_root_must_be_absolute() -> None:
    with pytest.raises(StorageError):
        LocalStorage(Path("relative/dir"))


def test_a_missing_root_lists_empty_and_is_made_on_first_write(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "not" / "yet")
    assert storage.list().entries == []
    assert list(storage.walk()) == []
    with pytest.raises(NotFound):
        storage.read("x")
    storage.write("x", b"1")
    assert (tmp_path / "not" / "yet" / "x").read_bytes() == b"1"


def test_local_path_and_urls(local_storage: LocalStorage) -> None:
    local_storage.write("a b/c.exr", b"x")
    path = local_storage.local_path("a b/c.exr")
    assert path == local_storage.root / "a b" / "c.exr"
    assert path is not None and path.read_bytes() == b"x"
    assert local_storage.root_url == local_storage.root.as_uri()
    assert local_storage.url_for("a b/c.exr") == local_storage.root.as_uri() + "/a%20b/c.exr"
    # Paths of files yet to be made are fine too (the renderer writes them).
    assert local_storage.local_path("new/file") == local_storage.root / "new" / "file"


def test_writes_leave_no_temp_files_and_respect_the_umask(local_storage: LocalStorage) -> None:
    local_storage.write("d/f", b"data")
    assert [p.name for p in (local_storage.root / "d").iterdir()] == ["f"]
    mode = (local_storage.root / "d" / "f").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_temp_files_of_writes_in_progress_are_not_listed(local_storage: LocalStorage) -> None:
    local_storage.write("out/frame1.exr", b"done")
    (local_storage.root / "out" / f"{TMP_PREFIX}abc123").write_bytes(b"half a frame")
    assert names(local_storage, "out/") == ["out/frame1.exr"]
    assert [e.key for e in local_storage.walk()] == ["out/frame1.exr"]
    # ...and deleting the folder leaves them to their writer.
    assert local_storage.delete_prefix("out/") == 1
    assert (local_storage.root / "out" / f"{TMP_PREFIX}abc123").exists()


def test_a_failed_write_cleans_up_its_temp_file(local_storage: LocalStorage) -> None:
    class Exploding:
        def read(self, size: int = -1) -> bytes:
            raise OSError("source unreadable")

    with pytest.raises(OSError, match="source unreadable"):
        local_storage.write("x/y", Exploding())  # type: ignore[arg-type]
    assert list((local_storage.root / "x").iterdir()) == []


def test_empty_folders_are_invisible_and_pruned(local_storage: LocalStorage) -> None:
    (local_storage.root / "empty" / "deeper").mkdir(parents=True)
    local_storage.write("full/a/b", b"x")
    assert names(local_storage) == ["full/"]
    local_storage.delete("full/a/b")
    assert not (local_storage.root / "full").exists()
    assert local_storage.root.exists()  # the root itself stays


def test_file_and_folder_of_the_same_name_conflict(local_storage: LocalStorage) -> None:
    local_storage.write("a/b", b"x")
    with pytest.raises(StorageError, match="cannot write"):
        local_storage.write("a", b"a file where a folder is")
    local_storage.write("f", b"x")
    with pytest.raises(StorageError, match="cannot write"):
        local_storage.write("f/inside", b"a folder where a file is")
    local_storage.delete("a")  # a folder is not an object: nothing happens
    assert local_storage.read("a/b") == b"x"


def test_symlinks_out_of_the_root_are_refused_and_hidden(
    local_storage: LocalStorage, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"top secret")
    root = local_storage.root
    (root / "link-dir").symlink_to(outside, target_is_directory=True)
    (root / "link-file").symlink_to(outside / "secret")
    local_storage.write("ok", b"fine")

    for key in ("link-dir/secret", "link-file"):
        with pytest.raises(InvalidKey, match="outside"):
            local_storage.read(key)
        with pytest.raises(InvalidKey):
            local_storage.stat(key)
    with pytest.raises(InvalidKey):
        local_storage.write("link-dir/new", b"x")
    with pytest.raises(InvalidKey):
        local_storage.local_path("link-dir/secret")
    assert names(local_storage) == ["ok"]
    assert [e.key for e in local_storage.walk()] == ["ok"]
    assert not (outside / "new").exists()


def test_symlinks_inside_the_root_are_followed(local_storage: LocalStorage) -> None:
    local_storage.write("real/file", b"x")
    (local_storage.root / "alias").symlink_to(local_storage.root / "real")
    assert local_storage.read("alias/file") == b"x"
    assert names(local_storage) == ["alias/", "real/"]


def test_deleting_a_symlink_removes_the_link_not_its_target(local_storage: LocalStorage) -> None:
    local_storage.write("target", b"keep me")
    (local_storage.root / "link").symlink_to(local_storage.root / "target")
    local_storage.delete("link")
    assert not (local_storage.root / "link").is_symlink()
    assert local_storage.read("target") == b"keep me"


def test_symlink_loops_do_not_hang_walk(local_storage: LocalStorage) -> None:
    local_storage.write("a/file", b"x")
    (local_storage.root / "a" / "loop").symlink_to(local_storage.root / "a")
    walked = [e.key for e in local_storage.walk()]
    assert walked[-1] == "a/file" and len(walked) < 50


def test_undecodable_and_control_char_names_are_skipped(local_storage: LocalStorage) -> None:
    # Not UTF-8 on disk; Python sees it with a lone surrogate (surrogateescape).
    (local_storage.root / os.fsdecode(b"bad-\xff-name")).write_bytes(b"x")
    (local_storage.root / "new\nline").write_bytes(b"x")
    (local_storage.root / "back\\slash").write_bytes(b"x")
    local_storage.write("good", b"x")
    assert names(local_storage) == ["good"]
    assert [e.key for e in local_storage.walk()] == ["good"]


def test_delete_prefix_removes_nested_folders(local_storage: LocalStorage) -> None:
    for key in ("job/1/a", "job/1/b/c", "job/1/b/d/e", "job/2/a"):
        local_storage.write(key, b"x")
    assert local_storage.delete_prefix("job/1/") == 3
    assert not (local_storage.root / "job" / "1").exists()
    assert names(local_storage, "job/") == ["job/2/"]
    assert local_storage.delete_prefix("job/2") == 1
    assert not (local_storage.root / "job").exists()


def test_progress_is_reported_per_chunk(local_storage: LocalStorage, tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.write_bytes(b"\0" * (3 * 1024 * 1024 + 5))
    calls: list[tuple[int, int | None]] = []
    local_storage.upload_file(source, "big", lambda done, total: calls.append((done, total)))
    assert [done for done, _ in calls] == [1048576, 2097152, 3145728, 3145733]
    assert {total for _, total in calls} == {3145733}


def test_progress_for_an_empty_file(local_storage: LocalStorage, tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.write_bytes(b"")
    calls: list[tuple[int, int | None]] = []
    local_storage.upload_file(source, "empty", lambda done, total: calls.append((done, total)))
    assert calls == [(0, 0)]


def test_equal_roots_are_equal_storages(tmp_path: Path) -> None:
    assert LocalStorage(tmp_path) == LocalStorage(tmp_path / "." / "")
    assert len({LocalStorage(tmp_path), LocalStorage(tmp_path)}) == 1
    assert repr(LocalStorage(tmp_path)) == f"LocalStorage({str(tmp_path.resolve())!r})"
