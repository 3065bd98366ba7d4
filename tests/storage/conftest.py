"""Storage fixtures: a local root per test, one fake OSS server per session.

``storage`` runs a test against both backends: write the behaviour once, and
local disk and OSS (real oss2 against the fake server) must agree on it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from renderhub.storage.local import LocalStorage
from renderhub.storage.oss import OSSStorage
from tests.fakes.oss import FakeOSS


@pytest.fixture
def local_storage(settings: Any) -> LocalStorage:
    """LocalStorage on this test's LOCAL_STORAGE_ROOT (a tmp dir, see tests/conftest.py)."""
    return LocalStorage(Path(settings.LOCAL_STORAGE_ROOT))


@pytest.fixture(scope="session")
def fake_oss() -> Iterator[FakeOSS]:
    with FakeOSS() as server:
        yield server


@pytest.fixture
def oss_bucket(fake_oss: FakeOSS) -> Iterator[str]:
    """A fresh bucket; faults left over by the test are dropped afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    fake_oss.create_bucket(name)
    yield name
    fake_oss.clear_faults()
    fake_oss.clock = time.time
    errors, fake_oss.internal_errors[:] = list(fake_oss.internal_errors), []
    assert not errors, f"the fake OSS server itself failed: {errors}"


def make_oss_storage(fake: FakeOSS, bucket: str, tmp_path: Path, **kwargs: Any) -> OSSStorage:
    options: dict[str, Any] = {
        "access_key_id": fake.access_key_id,
        "access_key_secret": fake.access_key_secret,
        "prefix": "root/",
        "timeout": 2,
        "retries": 2,
        "backoff": 0.001,  # keep retry tests fast
        "max_backoff": 0.01,
        "checkpoint_dir": tmp_path / "oss-checkpoints",
    }
    options.update(kwargs)
    return OSSStorage(bucket, fake.endpoint, **options)


@pytest.fixture
def oss_storage(fake_oss: FakeOSS, oss_bucket: str, tmp_path: Path) -> OSSStorage:
    """OSSStorage on a fresh fake bucket, keys under the prefix ``root/``."""
    return make_oss_storage(fake_oss, oss_bucket, tmp_path)


@pytest.fixture(params=["local", "oss"])
def storage(request: pytest.FixtureRequest) -> LocalStorage | OSSStorage:
    return request.getfixturevalue(f"{request.param}_storage")


@pytest.fixture
def seed(
    storage: LocalStorage | OSSStorage, request: pytest.FixtureRequest
) -> Callable[[dict[str, bytes]], None]:
    """Store many objects fast, behind the backend's back (files on disk, or straight
    into the fake server), for tests about listing rather than writing."""

    def seed_objects(objects: dict[str, bytes]) -> None:
        if isinstance(storage, LocalStorage):
            for key, data in objects.items():
                path = storage.root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        else:
            fake: FakeOSS = request.getfixturevalue("fake_oss")
            for key, data in objects.items():
                fake.put(storage.bucket_name, storage.prefix + key, data)

    return seed_objects
