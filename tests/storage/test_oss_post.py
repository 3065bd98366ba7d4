"""Signed POST forms (OSS PostObject) against the fake OSS over real HTTP: the form uploads
exactly its key and size until it expires, and the fake checks them as OSS does."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import requests

from renderhub.storage import StorageError
from renderhub.storage.oss import OSSStorage
from renderhub.storage.oss_post import POST_OBJECT_MAX_BYTES, post_form, sign_policy
from tests.fakes.oss import FakeOSS


def send(form: Any, data: bytes, name: str = "file.bin", **changes: str) -> requests.Response:
    fields = {**form.fields, **changes}
    # requests puts the data fields first and the file last, as OSS requires.
    return requests.post(form.url, data=fields, files={"file": (name, data)}, timeout=5)


@pytest.mark.parametrize(
    "key",
    ["scene.blend", "robot/textures/metal 01.png", "Szene/Straße ünï 镜头.blend", "a+b=c&d.blend"],
)
def test_a_form_uploads_its_file_to_its_key(
    oss_storage: OSSStorage, fake_oss: FakeOSS, key: str
) -> None:
    data = b"BLENDER-v304" + bytes(range(256)) * 10
    form = post_form(oss_storage, key, len(data), expires=60)
    assert form.key == "root/" + key
    assert set(form.fields) >= {"key", "policy", "OSSAccessKeyId", "Signature"}
    assert fake_oss.access_key_secret not in json.dumps(form.fields)
    response = send(form, data)
    assert response.status_code == 200, response.text
    assert oss_storage.read(key) == data  # read back through oss2


def test_an_empty_file_can_be_posted(oss_storage: OSSStorage) -> None:
    assert send(post_form(oss_storage, "empty", 0, expires=60), b"").status_code == 200
    assert oss_storage.read("empty") == b""


def test_the_policy_names_bucket_key_size_and_expiry(oss_storage: OSSStorage) -> None:
    form = post_form(oss_storage, "x.blend", 42, expires=600, now=0)
    policy = json.loads(base64.b64decode(form.fields["policy"]))
    assert policy == {
        "expiration": "1970-01-01T00:10:00.000Z",
        "conditions": [
            {"bucket": oss_storage.bucket_name},
            ["eq", "$key", "root/x.blend"],
            ["content-length-range", 42, 42],
        ],
    }


def test_files_over_five_gigabytes_get_no_form(oss_storage: OSSStorage) -> None:
    with pytest.raises(StorageError, match="5 GB"):
        post_form(oss_storage, "huge.bin", POST_OBJECT_MAX_BYTES + 1, expires=60)


def test_an_expired_form_is_refused(oss_storage: OSSStorage, fake_oss: FakeOSS) -> None:
    form = post_form(oss_storage, "late.blend", 3, expires=60)
    fake_oss.clock = lambda: time.time() + 61
    response = send(form, b"abc")
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text and "Policy expired" in response.text
    assert not oss_storage.exists("late.blend")


def test_another_key_is_refused(oss_storage: OSSStorage, fake_oss: FakeOSS) -> None:
    form = post_form(oss_storage, "mine.blend", 3, expires=60)
    for other in ("root/other.blend", "root/mine.blend2", "elsewhere/mine.blend", "mine.blend"):
        response = send(form, b"abc", key=other)
        assert response.status_code == 403, other
        assert "Policy Condition failed" in response.text
    assert fake_oss.keys(oss_storage.bucket_name) == []


@pytest.mark.parametrize(("size", "code"), [(2, "EntityTooSmall"), (4, "EntityTooLarge")])
def test_another_size_is_refused(oss_storage: OSSStorage, size: int, code: str) -> None:
    form = post_form(oss_storage, "x.blend", 3, expires=60)
    response = send(form, b"a" * size)
    assert response.status_code == 400 and f"<Code>{code}</Code>" in response.text
    assert not oss_storage.exists("x.blend")


def test_a_rewritten_policy_does_not_match_its_signature(
    oss_storage: OSSStorage, fake_oss: FakeOSS
) -> None:
    form = post_form(oss_storage, "mine.blend", 3, expires=60)
    wider = {
        "expiration": "2099-01-01T00:00:00.000Z",
        "conditions": [["starts-with", "$key", ""]],  # the whole bucket, for ever
    }
    forged, _ = sign_policy("a guessed secret", wider)
    response = send(form, b"abc", key="root/evil.blend", policy=forged)
    assert response.status_code == 403 and "SignatureDoesNotMatch" in response.text
    _, signature = sign_policy("a guessed secret", wider)
    response = send(form, b"abc", key="root/evil.blend", policy=forged, Signature=signature)
    assert response.status_code == 403
    assert fake_oss.keys(oss_storage.bucket_name) == []


def test_a_form_without_signature_is_anonymous(oss_storage: OSSStorage) -> None:
    response = requests.post(
        post_form(oss_storage, "x", 1, expires=60).url,
        data={"key": "root/x"},
        files={"file": ("x", b"a")},
        timeout=5,
    )
    assert response.status_code == 403 and "AccessDenied" in response.text


def test_browsers_are_let_in_by_the_buckets_cors_rules_only(
    oss_storage: OSSStorage, fake_oss: FakeOSS
) -> None:
    url = post_form(oss_storage, "x", 1, expires=60).url
    ask = {"Origin": "https://render.example.com", "Access-Control-Request-Method": "POST"}
    assert requests.options(url, headers=ask, timeout=5).status_code == 403
    fake_oss.cors_origins = ["https://render.example.com"]
    try:
        answer = requests.options(url, headers=ask, timeout=5)
        assert answer.status_code == 200
        assert answer.headers["Access-Control-Allow-Origin"] == "https://render.example.com"
        other = {**ask, "Origin": "https://evil.example.net"}
        assert requests.options(url, headers=other, timeout=5).status_code == 403
    finally:
        fake_oss.cors_origins = []
