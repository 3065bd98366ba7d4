"""Driving the upload endpoints the way static/js/upload.js does."""

from __future__ import annotations

from typing import Any

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
