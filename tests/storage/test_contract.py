"""The behaviour every backend shares, run against local disk and (fake) OSS alike."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from renderhub.storage import Entry, InvalidKey, NotFound, Storage, StorageError

ODD_KEY = "shots/frame 0001 ü+%#?.exr"


def keys(entries: list[Entry]) -> list[str]:
    return [e.key for e in entries]


def fill(storage: Storage, *names: str) -> None:
    for name in names:
        storage.write(name, name.encode())


# --- read and write ------------------------------------------------------------------


def test_write_then_read_round_trips_bytes(storage: Storage) -> None:
    storage.write("a/b.txt", b"hello")
    assert storage.read("a/b.txt") == b"hello"


def test_write_accepts_a_stream_and_overwrites(storage: Storage) -> None:
    storage.write("x.bin", b"old content")
    storage.write("x.bin", io.BytesIO(b"new"))
    assert storage.read("x.bin") == b"new"


def test_write_accepts_a_one_way_stream(storage: Storage) -> None:
    class OneWay(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    payload = bytes(range(256)) * 100
    storage.write("stream.bin", OneWay(payload))  # type: ignore[arg-type]
    assert storage.read("stream.bin") == payload


def test_empty_object(storage: Storage) -> None:
    storage.write("empty", b"")
    assert storage.read("empty") == b""
    assert storage.stat("empty").size == 0


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, b"0123456789"),
        (0, 0, b"0"),
        (2, 5, b"2345"),
        (7, None, b"789"),
        (None, 3, b"0123"),
        (8, 100, b"89"),  # clipped at the end
        (10, None, b""),  # starts at the end
        (50, 60, b""),  # starts beyond it
    ],
)
def test_ranged_reads_are_inclusive_and_clipped(
    storage: Storage, start: int | None, end: int | None, expected: bytes
) -> None:
    storage.write("digits", b"0123456789")
    assert storage.read("digits", start, end) == expected


@pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4)])
def test_invalid_ranges_are_rejected(storage: Storage, start: int, end: int | None) -> None:
    storage.write("digits", b"0123456789")
    with pytest.raises(ValueError):
        storage.read("digits", start, end)


def test_odd_characters_in_keys_round_trip(storage: Storage) -> None:
    storage.write(ODD_KEY, b"odd")
    assert storage.read(ODD_KEY) == b"odd"
    assert keys(storage.list("shots/").entries) == [ODD_KEY]
    assert storage.stat(ODD_KEY).name == "frame 0001 ü+%#?.exr"


def test_a_failing_source_leaves_the_old_object_intact(storage: Storage) -> None:
    storage.write("scene.blend", b"version 1")

    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise RuntimeError("disk went away")
            return super().read(min(size or 8192, 8192) if size and size > 0 else 8192)

    with pytest.raises(RuntimeError, match="disk went away"):
        storage.write("scene.blend", Broken(b"version 2" * 100_000))
    assert storage.read("scene.blend") == b"version 1"
    assert keys(list(storage.walk())) == ["scene.blend"]


# --- stat and missing objects --------------------------------------------------------


def test_stat_describes_a_file(storage: Storage) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    storage.write("dir/f.exr", b"12345")
    entry = storage.stat("dir/f.exr")
    assert (entry.key, entry.is_dir, entry.size, entry.name) == ("dir/f.exr", False, 5, "f.exr")
    assert entry.modified is not None
    assert before <= entry.modified <= datetime.now(UTC) + timedelta(seconds=5)
    assert entry.etag


def test_missing_objects_raise_not_found(storage: Storage, tmp_path: Path) -> None:
    storage.write("dir/present", b"x")
    for call in (
        lambda: storage.stat("absent"),
        lambda: storage.stat("dir"),  # a folder is not an object
        lambda: storage.read("absent"),
        lambda: storage.download_file("absent", tmp_path / "out"),
    ):
        with pytest.raises(NotFound):
            call()
    assert not (tmp_path / "out").exists()
    assert storage.exists("dir/present")
    assert not storage.exists("absent")
    assert not storage.exists("dir")


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/etc/passwd", "a\\b", "a\x00b", ""])
def test_invalid_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey):
        storage.write(key, b"x")
    with pytest.raises(InvalidKey):
        storage.read(key)


# --- listing -------------------------------------------------------------------------


def test_list_with_delimiter_shows_files_and_folders_in_key_order(storage: Storage) -> None:
    fill(storage, "jobs/b.txt", "jobs/a-b", "jobs/a/x", "jobs/a/y/z", "jobs/c/d", "other")
    listing = storage.list("jobs/")
    assert keys(listing.entries) == ["jobs/a-b", "jobs/a/", "jobs/b.txt", "jobs/c/"]
    assert [e.is_dir for e in listing.entries] == [False, True, False, True]
    assert [e.name for e in listing.entries] == ["a-b", "a", "b.txt", "c"]
    assert listing.next_marker is None
    assert listing.entries[0].size == len(b"jobs/a-b")


def test_a_prefix_names_a_folder_with_or_without_its_slash(storage: Storage) -> None:
    fill(storage, "jobs/1/a", "jobs/10/b")
    assert keys(storage.list("jobs/1").entries) == ["jobs/1/a"]
    assert keys(storage.list("jobs/1/").entries) == ["jobs/1/a"]


def test_list_of_the_root_and_of_missing_prefixes(storage: Storage) -> None:
    fill(storage, "top", "dir/inner")
    assert keys(storage.list().entries) == ["dir/", "top"]
    assert storage.list("nothing/here/").entries == []


def test_list_without_delimiter_is_recursive_and_sorted(storage: Storage) -> None:
    fill(storage, "p/z", "p/a/b/c", "p/a-", "p/a/b0", "p/0")
    listing = storage.list("p/", delimiter=None)
    assert keys(listing.entries) == ["p/0", "p/a-", "p/a/b/c", "p/a/b0", "p/z"]
    assert not any(e.is_dir for e in listing.entries)


@pytest.mark.parametrize("delimiter", [None, "/"])
@pytest.mark.parametrize("limit", [1, 2, 3, 100])
def test_paging_returns_every_entry_once(
    storage: Storage, delimiter: str | None, limit: int
) -> None:
    fill(storage, "r/a/1", "r/a/2", "r/b", "r/c/1", "r/c/2", "r/c/3", "r/d", "r/e/f/g")
    everything = storage.list("r/", delimiter=delimiter, limit=1000).entries
    seen: list[Entry] = []
    marker = None
    for _ in range(20):
        page = storage.list("r/", delimiter=delimiter, marker=marker, limit=limit)
        assert 0 < len(page.entries) <= limit
        seen += page.entries
        if page.next_marker is None:
            break
        assert page.next_marker == page.entries[-1].key  # markers are keys
        marker = page.next_marker
    assert keys(seen) == keys(everything)
    assert len(set(keys(seen))) == len(seen)


def test_limit_must_be_positive(storage: Storage) -> None:
    with pytest.raises(ValueError):
        storage.list(limit=0)


def test_walk_yields_every_file_below_a_prefix(storage: Storage) -> None:
    fill(storage, "w/1", "w/sub/2", "w/sub/deeper/3", "w2/not-me", "x")
    assert keys(list(storage.walk("w"))) == ["w/1", "w/sub/2", "w/sub/deeper/3"]
    assert keys(list(storage.walk())) == ["w/1", "w/sub/2", "w/sub/deeper/3", "w2/not-me", "x"]


def test_walk_pages_through_many_files(
    storage: Storage, seed: Callable[[dict[str, bytes]], None]
) -> None:
    names = [f"many/{i:04d}" for i in range(1100)]  # more than one OSS page
    seed({name: b"x" for name in names})
    assert keys(list(storage.walk("many/"))) == names
    assert storage.delete_prefix("many/") == 1100  # in batches of at most 1000
    assert list(storage.walk()) == []


# --- upload and download -------------------------------------------------------------


def test_upload_and_download_files_with_progress(storage: Storage, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    source = tmp_path / "render.exr"
    source.write_bytes(payload)
    uploaded: list[tuple[int, int | None]] = []
    storage.upload_file(source, "out/render.exr", progress=lambda d, t: uploaded.append((d, t)))
    assert storage.read("out/render.exr") == payload
    assert uploaded[-1] == (len(payload), len(payload))
    assert [d for d, _ in uploaded] == sorted(d for d, _ in uploaded)

    target = tmp_path / "nested" / "dir" / "copy.exr"
    downloaded: list[tuple[int, int | None]] = []
    storage.download_file("out/render.exr", target, lambda d, t: downloaded.append((d, t)))
    assert target.read_bytes() == payload
    assert downloaded[-1][0] == len(payload)
    assert [d for d, _ in downloaded] == sorted(d for d, _ in downloaded)
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.exr"]  # no temp files


def test_download_replaces_an_existing_file(storage: Storage, tmp_path: Path) -> None:
    storage.write("k", b"fresh")
    target = tmp_path / "k"
    target.write_bytes(b"stale and longer")
    storage.download_file("k", target)
    assert target.read_bytes() == b"fresh"


def test_upload_of_a_missing_local_file_fails_cleanly(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        storage.upload_file(tmp_path / "nope", "k")
    assert not storage.exists("k")


# --- delete --------------------------------------------------------------------------


def test_delete_removes_and_tolerates_missing(storage: Storage) -> None:
    fill(storage, "d/only", "keep")
    storage.delete("d/only")
    storage.delete("d/only")
    storage.delete("never/existed")
    assert not storage.exists("d/only")
    assert keys(storage.list().entries) == ["keep"]  # the emptied folder is gone too


def test_delete_prefix_deletes_the_folder_only(storage: Storage) -> None:
    fill(storage, "jobs/1/a", "jobs/1/b/c", "jobs/10/x", "jobs/1-x")
    assert storage.delete_prefix("jobs/1") == 2
    assert keys(list(storage.walk())) == ["jobs/1-x", "jobs/10/x"]
    assert storage.delete_prefix("jobs/1/") == 0


def test_delete_prefix_refuses_the_whole_root(storage: Storage) -> None:
    fill(storage, "a")
    with pytest.raises(InvalidKey):
        storage.delete_prefix("")
    assert storage.exists("a")


# --- URLs ----------------------------------------------------------------------------


def test_url_for_is_under_the_root_url(storage: Storage) -> None:
    assert storage.url_for("a/b").startswith(storage.root_url.rstrip("/") + "/")
    assert storage.url_for("a/b/").endswith("/a/b/")


def test_signed_url_needs_a_positive_lifetime(storage: Storage) -> None:
    storage.write("f", b"x")
    assert storage.signed_url("f", expires=60)
    with pytest.raises(ValueError):
        storage.signed_url("f", expires=0)


def test_storage_errors_are_storage_errors(storage: Storage) -> None:
    assert issubclass(NotFound, StorageError)
    assert issubclass(InvalidKey, StorageError)
