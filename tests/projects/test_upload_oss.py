"""Uploads into OSS from the storage browser: the server signs a POST form for one key and
size, the browser sends the file straight to the bucket (here: the fake OSS, real HTTP)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.test import Client

from .upload_helpers import make_oss_project, post_to_bucket, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def oss_project(image: Any, bob: Any, cloud_oss: Any, bucket: str, settings: Any) -> Any:
    return make_oss_project(image, bob, cloud_oss, bucket, settings)


@pytest.fixture
def as_bob(client: Client, bob: Any) -> Client:
    client.force_login(bob)
    return client


@pytest.mark.parametrize(
    "path", ["shot.blend", "robot/textures/metal 01.png", "Szene/ü 镜头.blend"]
)
def test_a_file_goes_straight_to_the_bucket_and_shows_in_the_browser(
    as_bob: Client, oss_project: Any, cloud_oss: Any, bucket: str, path: str
) -> None:
    source = oss_project.mappings.get().source
    data = b"BLENDER-v304" + bytes(range(200))
    response = start(as_bob, oss_project, source, path, len(data))
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["kind"] == "oss" and answer["file"] == source + path
    assert answer["url"] == f"{cloud_oss.endpoint}/{bucket}/"
    assert cloud_oss.keys(bucket) == []  # nothing went through RenderHub
    assert post_to_bucket(answer, data).status_code == 200
    assert cloud_oss.get(bucket, "scenes/" + path).data == data  # type: ignore[union-attr]
    folder = source + path.rpartition("/")[0] + "/" if "/" in path else source
    pane = as_bob.get(
        f"/projects/{oss_project.pk}/browse/", {"path": folder}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert path.rpartition("/")[2] in pane


def test_the_form_is_for_that_key_and_size_for_a_limited_time(
    as_bob: Client, oss_project: Any, settings: Any
) -> None:
    settings.UPLOAD_POLICY_SECONDS = 120
    source = oss_project.mappings.get().source
    answer = start(as_bob, oss_project, source, "x.blend", 7).json()
    policy = json.loads(base64.b64decode(answer["fields"]["policy"]))
    assert ["eq", "$key", "scenes/x.blend"] in policy["conditions"]
    assert ["content-length-range", 7, 7] in policy["conditions"]


def test_over_five_gigabytes_the_browser_is_sent_to_the_cli(
    as_bob: Client, oss_project: Any
) -> None:
    source = oss_project.mappings.get().source
    response = start(as_bob, oss_project, source, "huge.exr", 5 * 1024**3 + 1)
    assert response.status_code == 413
    assert "manage.py upload" in response.json()["error"]
