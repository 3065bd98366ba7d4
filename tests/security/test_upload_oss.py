"""Attacks on browser uploads to OSS: a signed POST form is good for one key, one size and a
short time, and only members uploading into a writable mapping get one. Each is refused by
RenderHub or by the (fake) OSS checking the policy and signature as OSS does."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from projects.models import Project
from renderhub.storage.oss_post import sign_policy
from tests.projects.upload_helpers import make_oss_project, post_to_bucket, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def oss_project(image: Any, bob: Any, cloud_oss: Any, bucket: str, settings: Any) -> Any:
    return make_oss_project(image, bob, cloud_oss, bucket, settings)


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def form(oss_project: Project, bob: Any) -> dict[str, Any]:
    """bob's signed form for scenes/mine.blend, 3 bytes."""
    source = oss_project.mappings.get().source
    answer: dict[str, Any] = start(_client(bob), oss_project, source, "mine.blend", 3).json()
    return answer


def test_a_non_member_gets_no_form(oss_project: Project, charlie: Any, cloud_oss: Any) -> None:
    source = oss_project.mappings.get().source
    assert start(_client(charlie), oss_project, source, "evil.blend", 3).status_code == 404


def test_a_read_only_mapping_gets_no_form(oss_project: Project, bob: Any) -> None:
    oss_project.mappings.update(writable=False)
    source = oss_project.mappings.get().source
    response = start(_client(bob), oss_project, source, "x.blend", 3)
    assert response.status_code == 403 and "read-only" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "../output/evil.blend",
        "/evil.blend",
        "a/../../evil.blend",
        "${filename}",  # OSS would put the form's file name there, after signing
        "a/${FileName}.blend",
    ],
)
def test_paths_out_of_the_mapping_get_no_form(oss_project: Project, bob: Any, path: str) -> None:
    source = oss_project.mappings.get().source
    assert start(_client(bob), oss_project, source, path, 3).status_code == 400


def test_the_form_does_not_write_another_key(
    form: dict[str, Any], cloud_oss: Any, bucket: str
) -> None:
    for key in ("output/evil.blend", "scenes/other.blend", "scenes/mine.blend/x", "mine.blend"):
        response = post_to_bucket(form, b"abc", key=key)
        assert response.status_code == 403, key
        assert "Policy Condition failed" in response.text
    assert cloud_oss.keys(bucket) == []


def test_the_form_does_not_write_another_size(
    form: dict[str, Any], cloud_oss: Any, bucket: str
) -> None:
    assert post_to_bucket(form, b"a" * 4096).status_code == 400
    assert cloud_oss.keys(bucket) == []


def test_an_expired_form_is_refused(form: dict[str, Any], cloud_oss: Any, bucket: str) -> None:
    cloud_oss.clock = lambda: time.time() + 3601
    try:
        response = post_to_bucket(form, b"abc")
    finally:
        cloud_oss.clock = time.time
    assert response.status_code == 403 and "Policy expired" in response.text
    assert cloud_oss.keys(bucket) == []


def test_a_forged_policy_is_refused(form: dict[str, Any], cloud_oss: Any, bucket: str) -> None:
    """The policy widened to the whole bucket: the signature no longer matches, and one made
    without the AccessKey secret does not either."""
    wider = {
        "expiration": "2099-01-01T00:00:00.000Z",
        "conditions": [{"bucket": bucket}, ["starts-with", "$key", ""]],
    }
    policy, signature = sign_policy("not-the-secret", wider)
    assert post_to_bucket(form, b"abc", key="output/evil", policy=policy).status_code == 403
    response = post_to_bucket(form, b"abc", key="output/evil", policy=policy, Signature=signature)
    assert response.status_code == 403 and "SignatureDoesNotMatch" in response.text
    assert cloud_oss.keys(bucket) == []


def test_the_form_does_not_reach_another_bucket(
    form: dict[str, Any], cloud_oss: Any, bucket: str
) -> None:
    other = bucket[:-1] + ("x" if bucket[-1] != "x" else "y")
    cloud_oss.create_bucket(other)
    answer = {**form, "url": form["url"].replace(f"/{bucket}/", f"/{other}/")}
    response = post_to_bucket(answer, b"abc")
    assert response.status_code == 403 and "Policy Condition failed" in response.text
    assert cloud_oss.keys(other) == []


def test_the_form_holds_no_secret(form: dict[str, Any], cloud_oss: Any) -> None:
    assert cloud_oss.access_key_secret not in str(form)
