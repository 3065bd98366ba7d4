"""Driving the upload endpoints the way static/js/upload.js does."""

from __future__ import annotations

from typing import Any

import requests
from django.test import Client


def start(client: Client, project: Any, folder: str, path: str, size: int) -> Any:
    return client.post(
        f"/projects/{project.pk}/uploads/", {"folder": folder, "path": path, "size": str(size)}
    )


def put(client: Client, project: Any, token: str, offset: int, data: bytes) -> Any:
    return client.put(
        f"/projects/{project.pk}/uploads/{token}/?offset={offset}",
        data,
        content_type="application/octet-stream",
    )


def complete(client: Client, project: Any, token: str) -> Any:
    return client.post(f"/projects/{project.pk}/uploads/{token}/complete/")


def upload(client: Client, project: Any, folder: str, path: str, data: bytes) -> Any:
    """The whole exchange; returns the last response (the completion, or the refusal)."""
    started = start(client, project, folder, path, len(data))
    if started.status_code != 200:
        return started
    answer = started.json()
    assert answer["kind"] == "local"
    token, step = answer["upload"], answer["chunk_size"]
    for offset in range(0, len(data), step):
        response = put(client, project, token, offset, data[offset : offset + step])
        if response.status_code != 200:
            return response
    return complete(client, project, token)


def make_oss_project(image: Any, bob: Any, cloud_oss: Any, bucket: str, settings: Any) -> Any:
    """A project on the fake OSS (session server, a fresh bucket): scenes/ mapped writable."""
    from projects.models import Project, StorageMapping
    from renderhub import storage

    settings.OSS_ENDPOINT = cloud_oss.endpoint
    settings.OSS_ACCESS_KEY_ID = cloud_oss.access_key_id
    settings.OSS_ACCESS_KEY_SECRET = cloud_oss.access_key_secret
    settings.STORAGE_TIMEOUT, settings.STORAGE_RETRIES = 2.0, 1
    storage.reset_cache()
    project = Project.objects.create(
        name="cloudshots", image=image, output_prefix=f"oss://{bucket}/output/"
    )
    StorageMapping.objects.create(
        project=project, source=f"oss://{bucket}/scenes/", destination="/mnt/s/", writable=True
    )
    project.members.add(bob)
    return project


def post_to_bucket(answer: dict[str, Any], data: bytes, **changes: str) -> requests.Response:
    """What upload.js does with a signed form: the fields, then the file, to the bucket."""
    fields = {**answer["fields"], **changes}
    return requests.post(answer["url"], data=fields, files={"file": ("f", data)}, timeout=5)
