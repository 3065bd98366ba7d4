"""What only OSS has: retries, multipart, presigned links, prefixes inside a bucket.

Everything here runs real oss2 against tests/fakes/oss.py over HTTP.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import oss2
import pytest
import requests

from renderhub.storage import InvalidKey, NotFound, StorageError, TransientError
from renderhub.storage.oss import OSSStorage
from tests.fakes.oss import FakeOSS

from .conftest import make_oss_storage

KiB = 1024


def test_keys_live_under_the_prefix(oss_storage: OSSStorage, fake_oss: FakeOSS) -> None:
    oss_storage.write("jobs/1/a.exr", b"x")
    fake_oss.put(oss_storage.bucket_name, "elsewhere/b.exr", b"not ours")
    assert fake_oss.keys(oss_storage.bucket_name) == ["elsewhere/b.exr", "root/jobs/1/a.exr"]
    assert [e.key for e in oss_storage.walk()] == ["jobs/1/a.exr"]
    assert oss_storage.root_url == f"oss://{oss_storage.bucket_name}/root/"
    assert (
        oss_storage.url_for("jobs/1/a.exr") == f"oss://{oss_storage.bucket_name}/root/jobs/1/a.exr"
    )
    assert oss_storage.local_path("jobs/1/a.exr") is None


def test_folder_placeholder_objects_are_not_files(
    oss_storage: OSSStorage, fake_oss: FakeOSS
) -> None:
    bucket = oss_storage.bucket_name
    fake_oss.put(bucket, "root/dir/", b"")  # what the OSS console's "new folder" makes
    fake_oss.put(bucket, "root/dir/file", b"x")
    assert [e.key for e in oss_storage.list("", delimiter=None).entries] == ["dir/file"]
    assert [e.key for e in oss_storage.list("dir/").entries] == ["dir/file"]
    assert oss_storage.delete_prefix("dir/") == 1
    assert fake_oss.keys(bucket) == []  # the placeholder went too


def test_the_secret_is_never_shown(fake_oss: FakeOSS, oss_bucket: str, tmp_path: Path) -> None:
    storage = make_oss_storage(fake_oss, oss_bucket, tmp_path)
    assert fake_oss.access_key_secret not in repr(storage)
    assert fake_oss.access_key_secret not in str(vars(storage))
    wrong = make_oss_storage(fake_oss, oss_bucket, tmp_path, access_key_secret="s3cr3t-wrong")
    with pytest.raises(StorageError) as excinfo:
        wrong.read("x")
    assert "s3cr3t-wrong" not in str(excinfo.value)


def test_a_wrong_secret_is_a_permanent_error(
    fake_oss: FakeOSS, oss_bucket: str, tmp_path: Path
) -> None:
    storage = make_oss_storage(fake_oss, oss_bucket, tmp_path, access_key_secret="wrong")
    before = fake_oss.count()
    with pytest.raises(StorageError, match="SignatureDoesNotMatch") as excinfo:
        storage.write("k", b"x")
    assert not isinstance(excinfo.value, TransientError)
    assert fake_oss.count() - before == 1  # not retried
    assert fake_oss.get(oss_bucket, "root/k") is None


def test_a_missing_bucket_is_not_a_missing_key(
    fake_oss: FakeOSS, oss_bucket: str, tmp_path: Path
) -> None:
    storage = make_oss_storage(fake_oss, "no-such-bucket", tmp_path)
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist") as excinfo:
        storage.read("k")
    assert not isinstance(excinfo.value, NotFound)


def test_bad_bucket_names_and_config(fake_oss: FakeOSS) -> None:
    with pytest.raises(InvalidKey):
        OSSStorage("Bad_Bucket", fake_oss.endpoint, "id", "secret")
    with pytest.raises(StorageError, match="endpoint"):
        OSSStorage("good-bucket", "", "id", "secret")
    with pytest.raises(StorageError, match="AccessKey"):
        OSSStorage("good-bucket", fake_oss.endpoint, "id", "")
    with pytest.raises(StorageError, match="endpoint"):
        OSSStorage("good-bucket", "http://not a host", "id", "secret")


# --- retries -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_burst_of_server_errors_is_retried(
    oss_storage: OSSStorage, fake_oss: FakeOSS, status: int
) -> None:
    oss_storage.write("k", b"payload")
    fake_oss.fail_next(2, status=status)
    before = fake_oss.count()
    assert oss_storage.read("k") == b"payload"
    assert fake_oss.count() - before == 3


def test_persistent_server_errors_become_transient_error(
    oss_storage: OSSStorage, fake_oss: FakeOSS
) -> None:
    fake_oss.fail_next(10, status=503)
    before = fake_oss.count()
    with pytest.raises(TransientError, match=r"failed after 3 attempts: HTTP 503") as excinfo:
        oss_storage.write("k", b"x")
    assert "oss://" in str(excinfo.value)
    assert fake_oss.count() - before == 3  # retries=2: three attempts, no more


def test_client_errors_are_not_retried(oss_storage: OSSStorage, fake_oss: FakeOSS) -> None:
    fake_oss.fail_next(5, status=403, code="AccessDenied", message="You have no right")
    before = fake_oss.count()
    with pytest.raises(StorageError, match="403 AccessDenied: You have no right") as excinfo:
        oss_storage.stat("k")
    assert not isinstance(excinfo.value, TransientError | NotFound)
    assert fake_oss.count() - before == 1


def test_not_found_is_not_retried(oss_storage: OSSStorage, fake_oss: FakeOSS) -> None:
    before = fake_oss.count()
    with pytest.raises(NotFound, match="root/missing does not exist"):
        oss_storage.read("missing")
    assert fake_oss.count() - before == 1


def test_a_timeout_is_retried(fake_oss: FakeOSS, oss_bucket: str, tmp_path: Path) -> None:
    storage = make_oss_storage(fake_oss, oss_bucket, tmp_path, timeout=0.3)
    storage.write("k", b"slow")
    fake_oss.delay_next(1, 1.0)
    started = time.monotonic()
    assert storage.read("k") == b"slow"
    assert time.monotonic() - started < 1.0  # gave up on the slow answer, asked again


def test_persistent_timeouts_become_transient_error(
    fake_oss: FakeOSS, oss_bucket: str, tmp_path: Path
) -> None:
    storage = make_oss_storage(fake_oss, oss_bucket, tmp_path, timeout=0.2, retries=1)
    fake_oss.delay_next(2, 0.6)
    with pytest.raises(TransientError, match="network error"):
        storage.stat("k")


def test_an_unreachable_endpoint_is_transient(tmp_path: Path) -> None:
    storage = OSSStorage(
        "some-bucket", "http://127.0.0.1:9", "id", "secret", timeout=0.5, retries=1, backoff=0.001
    )
    with pytest.raises(TransientError, match="after 2 attempts"):
        storage.list()


def test_backoff_grows_and_is_capped(
    oss_storage: OSSStorage, fake_oss: FakeOSS, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("renderhub.storage.oss.time.sleep", sleeps.append)
    storage = make_oss_storage(
        fake_oss, oss_storage.bucket_name, Path("/unused"), retries=4, backoff=1.0, max_backoff=3
    )
    fake_oss.fail_next(10, status=500)
    with pytest.raises(TransientError):
        storage.stat("k")
    assert len(sleeps) == 4
    for attempt, delay in enumerate(sleeps):
        ceiling = min(3, 2**attempt)
        assert ceiling / 2 <= delay <= ceiling  # jittered below an exponential cap


def test_a_retried_stream_write_sends_everything_again(
    oss_storage: OSSStorage, fake_oss: FakeOSS
) -> None:
    import io

    stream = io.BytesIO(b"skip-me:" + b"the payload")
    stream.seek(len(b"skip-me:"))  # writes start where the stream stands
    fake_oss.fail_next(1, status=503, method="PUT")
    oss_storage.write("k", stream)
    assert oss_storage.read("k") == b"the payload"


# --- multipart and resumable transfers ----------------------------------------------


@pytest.fixture
def small_parts(oss_storage: OSSStorage) -> OSSStorage:
    """Multipart from 200 KiB in 100 KiB parts (OSS's minimum), ranged GETs likewise."""
    oss_storage.multipart_threshold = 200 * KiB
    oss_storage.multiget_threshold = 200 * KiB
    oss_storage.part_size = 100 * KiB
    return oss_storage


def test_large_files_go_up_in_parts_and_come_back_whole(
    small_parts: OSSStorage, fake_oss: FakeOSS, tmp_path: Path
) -> None:
    payload = os.urandom(450 * KiB)
    source = tmp_path / "big.exr"
    source.write_bytes(payload)
    progress: list[int] = []
    small_parts.upload_file(source, "big.exr", lambda done, total: progress.append(done))

    bucket = small_parts.bucket_name
    assert fake_oss.count("POST", "uploads", bucket=bucket) == 1
    assert fake_oss.count("PUT", "partNumber", bucket=bucket) == 5
    stored = fake_oss.get(bucket, "root/big.exr")
    assert stored is not None and stored.data == payload
    assert stored.object_type == "Multipart" and stored.etag.endswith("-5")
    assert progress[-1] == len(payload)

    target = tmp_path / "back.exr"
    small_parts.download_file("big.exr", target)
    assert target.read_bytes() == payload
    gets = [
        r for r in fake_oss.requests if r.bucket == bucket and r.method == "GET" and not r.params
    ]
    assert len(gets) == 5  # ranged GETs, each pinned to the object version it started with
    assert all(g.headers["range"].startswith("bytes=") for g in gets)
    assert all(g.headers["if-match"].strip('"') == stored.etag for g in gets)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.exr", "big.exr", "oss-checkpoints"]


def test_small_files_go_up_in_one_put(
    small_parts: OSSStorage, fake_oss: FakeOSS, tmp_path: Path
) -> None:
    source = tmp_path / "small"
    source.write_bytes(b"x" * (100 * KiB))
    small_parts.upload_file(source, "small")
    assert fake_oss.count("POST", "uploads", bucket=small_parts.bucket_name) == 0
    assert small_parts.read("small") == source.read_bytes()


def test_a_failed_multipart_upload_resumes_where_it_stopped(
    small_parts: OSSStorage, fake_oss: FakeOSS, tmp_path: Path
) -> None:
    payload = os.urandom(450 * KiB)
    source = tmp_path / "big.exr"
    source.write_bytes(payload)

    # Parts 1 and 2 get through; then every part upload fails for longer than we retry.
    fake_oss.fail_next(100, status=503, method="PUT", param="partNumber", after=2)
    with pytest.raises(TransientError):
        small_parts.upload_file(source, "big.exr")
    fake_oss.clear_faults()
    assert fake_oss.get(small_parts.bucket_name, "root/big.exr") is None

    bucket = small_parts.bucket_name
    before = fake_oss.count("PUT", "partNumber", bucket=bucket)
    small_parts.upload_file(source, "big.exr")
    assert fake_oss.count("PUT", "partNumber", bucket=bucket) - before == 3  # parts 3-5 only
    assert small_parts.read("big.exr") == payload


def test_a_download_retried_after_a_fault_is_complete(
    small_parts: OSSStorage, fake_oss: FakeOSS, tmp_path: Path
) -> None:
    payload = os.urandom(300 * KiB)
    fake_oss.put(small_parts.bucket_name, "root/big", payload)
    fake_oss.fail_next(1, status=500, method="GET")
    target = tmp_path / "out" / "big"
    small_parts.download_file("big", target)
    assert target.read_bytes() == payload
    assert [p.name for p in target.parent.iterdir()] == ["big"]


# --- presigned links -----------------------------------------------------------------


def test_a_presigned_link_downloads_without_credentials(oss_storage: OSSStorage) -> None:
    oss_storage.write("renders/frame 0001 ü.exr", b"pixels")
    url = oss_storage.signed_url("renders/frame 0001 ü.exr", expires=60)
    assert "Signature=" in url and "OSSAccessKeyId=" in url
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    assert response.content == b"pixels"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "frame%200001%20%C3%BC.exr" in response.headers["Content-Disposition"]


def test_an_expired_presigned_link_is_refused(oss_storage: OSSStorage, fake_oss: FakeOSS) -> None:
    oss_storage.write("f", b"pixels")
    url = oss_storage.signed_url("f", expires=60)
    fake_oss.clock = lambda: time.time() + 61
    response = requests.get(url, timeout=5)
    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content
    assert b"Request has expired" in response.content


def test_a_tampered_presigned_link_is_refused(oss_storage: OSSStorage) -> None:
    oss_storage.write("f", b"pixels")
    oss_storage.write("g", b"other pixels")
    url = oss_storage.signed_url("f", expires=60)
    response = requests.get(url.replace("/root/f?", "/root/g?"), timeout=5)
    assert response.status_code == 403
    assert b"SignatureDoesNotMatch" in response.content


# --- the fake speaks the protocol oss2 expects ---------------------------------------


@pytest.fixture
def raw_bucket(fake_oss: FakeOSS, oss_bucket: str) -> oss2.Bucket:
    auth = oss2.Auth(fake_oss.access_key_id, fake_oss.access_key_secret)
    return oss2.Bucket(auth, fake_oss.endpoint, oss_bucket, connect_timeout=5)


def test_fake_lists_v1_and_v2_with_iterators(raw_bucket: oss2.Bucket) -> None:
    for key in ("jobs/1/a", "jobs/2/b", "jobs/3/c/d", "jobs/x y", "other"):
        raw_bucket.put_object(key, b"x")
    v1 = [o.key for o in oss2.ObjectIterator(raw_bucket, prefix="jobs/", delimiter="/", max_keys=2)]
    v2 = [
        o.key for o in oss2.ObjectIteratorV2(raw_bucket, prefix="jobs/", delimiter="/", max_keys=2)
    ]
    assert v1 == v2 == ["jobs/1/", "jobs/2/", "jobs/3/", "jobs/x y"]
    page = raw_bucket.list_objects(prefix="jobs/", max_keys=2)
    assert page.is_truncated and page.next_marker == "jobs/2/b"
    assert page.object_list[0].type == "Normal" and page.object_list[0].size == 1


def test_fake_honours_ranges_and_preconditions(raw_bucket: oss2.Bucket) -> None:
    put = raw_bucket.put_object("k", b"0123456789")
    result = raw_bucket.get_object("k", byte_range=(2, 4))
    assert result.status == 206 and result.read() == b"234"
    assert result.headers["Content-Range"] == "bytes 2-4/10"
    assert raw_bucket.get_object("k", headers={"If-Match": f'"{put.etag}"'}).read() == b"0123456789"
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        raw_bucket.get_object("k", headers={"If-Match": '"0000"'})
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        raw_bucket.get_object("k", headers={"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    meta = raw_bucket.get_object_meta("k")
    assert meta.content_length == 10 and meta.etag == put.etag
    assert raw_bucket.object_exists("k") and not raw_bucket.object_exists("nope")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        raw_bucket.head_object("nope")  # the error code travels in x-oss-err


def test_fake_checks_crc_and_multipart_bookkeeping(raw_bucket: oss2.Bucket) -> None:
    upload = raw_bucket.init_multipart_upload("mp")
    part = raw_bucket.upload_part("mp", upload.upload_id, 1, b"a" * (100 * KiB))
    assert [p.part_number for p in raw_bucket.list_parts("mp", upload.upload_id).parts] == [1]
    raw_bucket.abort_multipart_upload("mp", upload.upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        raw_bucket.upload_part("mp", upload.upload_id, 2, b"b")
    assert part.crc is not None  # oss2 compared it with its own CRC64
    deleted = raw_bucket.batch_delete_objects(["a b", "c/d"])
    assert deleted.deleted_keys == ["a b", "c/d"]


def test_fake_rejects_requests_without_a_valid_signature(
    fake_oss: FakeOSS, oss_bucket: str
) -> None:
    url = f"{fake_oss.endpoint}/{oss_bucket}/k"
    assert requests.get(url, timeout=5).status_code == 403
    response = requests.get(url, headers={"Authorization": "OSS nobody:abc"}, timeout=5)
    assert b"InvalidAccessKeyId" in response.content
    assert response.headers["x-oss-request-id"]
