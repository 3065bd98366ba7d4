"""URLs to backends: resolve, join, is_prefix_of, default_storage and the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from renderhub import storage
from renderhub.storage import InvalidKey, StorageError
from renderhub.storage.local import LocalStorage
from renderhub.storage.oss import OSSStorage
from tests.fakes.oss import FakeOSS


@pytest.fixture
def oss_settings(settings: Any) -> Any:
    settings.OSS_ENDPOINT = "http://127.0.0.1:9"
    settings.OSS_ACCESS_KEY_ID = "id"
    settings.OSS_ACCESS_KEY_SECRET = "secret"
    return settings


def root_url(settings: Any) -> str:
    return Path(settings.LOCAL_STORAGE_ROOT).as_uri()


# --- file:// -------------------------------------------------------------------------


def test_a_file_url_resolves_to_the_local_root(settings: Any) -> None:
    backend, key = storage.resolve(root_url(settings) + "/scenes/shot%20a.blend")
    assert isinstance(backend, LocalStorage)
    assert backend.root == Path(settings.LOCAL_STORAGE_ROOT)
    assert key == "scenes/shot a.blend"


@pytest.mark.parametrize(
    ("suffix", "key"),
    [("", ""), ("/", ""), ("/out/", "out/"), ("/out", "out"), ("/a/./b//c", "a/b/c")],
)
def test_file_url_keys(settings: Any, suffix: str, key: str) -> None:
    assert storage.resolve(root_url(settings) + suffix)[1] == key


def test_percent_decoding_and_localhost(settings: Any) -> None:
    url = root_url(settings).replace("file://", "file://localhost") + "/%C3%BC%2523"
    assert storage.resolve(url)[1] == "ü%23"


def test_a_file_url_outside_the_root_is_refused(settings: Any) -> None:
    with pytest.raises(InvalidKey, match="outside the local storage root"):
        storage.resolve("file:///etc/passwd")
    # A sibling whose name merely starts like the root is outside too.
    with pytest.raises(InvalidKey, match="outside the local storage root"):
        storage.resolve(root_url(settings) + "-evil/x")


@pytest.mark.parametrize(
    "suffix", ["/../escape", "/a/%2E%2E/%2E%2E/x", "/a%00b", "/a%5Cb", "/x?y", "/x#y"]
)
def test_file_urls_that_try_to_escape_are_refused(settings: Any, suffix: str) -> None:
    with pytest.raises(InvalidKey):
        storage.resolve(root_url(settings) + suffix)


def test_remote_and_relative_file_urls_are_refused() -> None:
    with pytest.raises(InvalidKey, match="remote host"):
        storage.resolve("file://server/share/x")
    with pytest.raises(InvalidKey):
        storage.resolve("file:relative/x")


def test_a_root_at_slash_accepts_every_path(settings: Any, tmp_path: Path) -> None:
    settings.LOCAL_STORAGE_ROOT = Path("/")
    backend, key = storage.resolve((tmp_path / "f").as_uri())
    assert key == str(tmp_path / "f").lstrip("/")
    assert backend.local_path(key) == tmp_path / "f"


# --- oss:// and other schemes ----------------------------------------------------------


def test_an_oss_url_resolves_to_a_bucket_and_raw_key(oss_settings: Any) -> None:
    backend, key = storage.resolve("oss://renders/jobs/12/frame 0001%20.exr")
    assert isinstance(backend, OSSStorage)
    assert (backend.bucket_name, backend.prefix) == ("renders", "")
    assert backend.endpoint == "http://127.0.0.1:9"
    assert backend.timeout == oss_settings.STORAGE_TIMEOUT
    assert backend.retries == oss_settings.STORAGE_RETRIES
    assert key == "jobs/12/frame 0001%20.exr"  # OSS URLs are not percent-decoded
    assert storage.resolve("oss://renders")[1] == ""
    assert storage.resolve("oss://renders/out/")[1] == "out/"


@pytest.mark.parametrize("name", ["OSS_ENDPOINT", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"])
def test_missing_oss_settings_are_named(oss_settings: Any, name: str) -> None:
    setattr(oss_settings, name, "")
    with pytest.raises(StorageError, match=name):
        storage.resolve("oss://renders/x")


@pytest.mark.parametrize(
    "url", ["oss://Bad_Bucket/x", "oss:///x", "oss://renders/../x", "oss://renders/a\\b"]
)
def test_bad_oss_urls_are_refused(oss_settings: Any, url: str) -> None:
    with pytest.raises(InvalidKey):
        storage.resolve(url)


@pytest.mark.parametrize("url", ["s3://bucket/key", "https://example.com/x", "/abs/path", "", "x"])
def test_other_schemes_are_refused_with_the_accepted_ones_named(url: str) -> None:
    with pytest.raises(InvalidKey, match=r"file:///.*oss://"):
        storage.resolve(url)


# --- caching -------------------------------------------------------------------------


def test_backends_are_cached_per_configuration(oss_settings: Any) -> None:
    first = storage.resolve("oss://renders/a")[0]
    assert storage.resolve("oss://renders/b")[0] is first
    assert storage.resolve("oss://other-bucket/b")[0] is not first
    oss_settings.OSS_ACCESS_KEY_SECRET = "rotated"
    rotated = storage.resolve("oss://renders/a")[0]
    assert rotated is not first
    storage.reset_cache()
    assert storage.resolve("oss://renders/a")[0] is not rotated


def test_the_local_backend_follows_the_root_setting(settings: Any, tmp_path: Path) -> None:
    first = storage.resolve(root_url(settings) + "/x")[0]
    settings.LOCAL_STORAGE_ROOT = tmp_path / "elsewhere"
    moved = storage.resolve((tmp_path / "elsewhere" / "x").as_uri())[0]
    assert isinstance(moved, LocalStorage) and moved.root == tmp_path / "elsewhere"
    assert moved is not first


# --- default_storage -----------------------------------------------------------------


def test_default_storage_on_local_disk(settings: Any) -> None:
    settings.STORAGE_URL = root_url(settings) + "/renderhub/"
    default = storage.default_storage()
    assert isinstance(default, LocalStorage)
    assert default.root == Path(settings.LOCAL_STORAGE_ROOT) / "renderhub"
    settings.STORAGE_URL = root_url(settings)
    assert storage.default_storage().root_url == root_url(settings)  # type: ignore[attr-defined]


def test_default_storage_outside_the_root_is_refused(settings: Any) -> None:
    settings.STORAGE_URL = "file:///somewhere/else/"
    with pytest.raises(InvalidKey, match="outside the local storage root"):
        storage.default_storage()


def test_default_storage_on_oss_folds_in_the_prefix(
    settings: Any, fake_oss: FakeOSS, oss_bucket: str
) -> None:
    settings.OSS_ENDPOINT = fake_oss.endpoint
    settings.OSS_ACCESS_KEY_ID = fake_oss.access_key_id
    settings.OSS_ACCESS_KEY_SECRET = fake_oss.access_key_secret
    settings.STORAGE_URL = f"oss://{oss_bucket}/renderhub/data/"
    default = storage.default_storage()
    assert isinstance(default, OSSStorage) and default.prefix == "renderhub/data/"
    default.write("scenes/a.blend", b"scene")
    assert fake_oss.keys(oss_bucket) == ["renderhub/data/scenes/a.blend"]
    # The same object through a full URL:
    backend, key = storage.resolve(f"oss://{oss_bucket}/renderhub/data/scenes/a.blend")
    assert backend.read(key) == b"scene"


# --- join and is_prefix_of -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "parts", "expected"),
    [
        ("oss://bkt/jobs/", ("12", "out/"), "oss://bkt/jobs/12/out/"),
        ("oss://bkt/jobs", ("12",), "oss://bkt/jobs/12"),
        ("oss://bkt", ("a", "b"), "oss://bkt/a/b"),
        ("oss://bkt/", (), "oss://bkt/"),
        ("oss://bkt/x/", (), "oss://bkt/x/"),
        ("oss://bkt/x/", ("",), "oss://bkt/x/"),
        ("oss://bkt/x", ("a//b/", "./c"), "oss://bkt/x/a/b/c"),
        ("oss://bkt/x", ("frame 1%.exr",), "oss://bkt/x/frame 1%.exr"),
        ("file:///srv/store/", ("a b", "ü/"), "file:///srv/store/a%20b/%C3%BC/"),
        ("file:///srv/store/a%20b", ("c",), "file:///srv/store/a%20b/c"),
    ],
)
def test_join(url: str, parts: tuple[str, ...], expected: str) -> None:
    assert storage.join(url, *parts) == expected


@pytest.mark.parametrize("part", ["../x", "a/../../x", "/etc", "a\x00"])
def test_join_refuses_escaping_parts(part: str) -> None:
    with pytest.raises(InvalidKey):
        storage.join("oss://bkt/jobs/", part)


def test_join_round_trips_through_resolve(settings: Any) -> None:
    url = storage.join(root_url(settings) + "/", "output", "12-shot a", "frame#1.exr")
    backend, key = storage.resolve(url)
    assert key == "output/12-shot a/frame#1.exr"
    backend.write(key, b"x")
    assert (Path(settings.LOCAL_STORAGE_ROOT) / "output" / "12-shot a" / "frame#1.exr").exists()


@pytest.mark.parametrize(
    ("prefix", "url", "expected"),
    [
        ("oss://bkt/jobs/", "oss://bkt/jobs/1/a", True),
        ("oss://bkt/jobs", "oss://bkt/jobs/1/a", True),
        ("oss://bkt/jobs/", "oss://bkt/jobs/", True),
        ("oss://bkt/jobs", "oss://bkt/jobs", True),
        ("oss://bkt/jobs", "oss://bkt/jobs2/a", False),
        ("oss://bkt/", "oss://bkt/anything", True),
        ("oss://bkt/jobs/", "oss://ckt/jobs/1", False),
        ("oss://bkt/jobs/", "file:///jobs/1", False),
        ("file:///srv/a/", "file:///srv/a/b%20c", True),
        ("file:///srv/a", "file:///srv/ab", False),
        ("file:///", "file:///anything", True),
    ],
)
def test_is_prefix_of(prefix: str, url: str, expected: bool) -> None:
    assert storage.is_prefix_of(prefix, url) is expected


def test_is_prefix_of_is_not_fooled_by_dot_segments() -> None:
    assert storage.is_prefix_of("oss://bkt/jobs/", "oss://bkt/jobs/./1")
    with pytest.raises(InvalidKey):
        storage.is_prefix_of("oss://bkt/jobs/", "oss://bkt/jobs/../secrets")


def test_the_public_names_are_exported() -> None:
    for name in ("Entry", "Listing", "NotFound", "TransientError", "normalize_key", "Storage"):
        assert hasattr(storage, name)
