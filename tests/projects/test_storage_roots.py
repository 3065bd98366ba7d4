"""The forms where storage URLs are typed show which folders may be used, in boxes wide
enough for the URLs (issue 13, item 8)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _input(html: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', html)
    assert match, name
    return match.group(0)


def test_superusers_see_the_storage_roots_on_the_project_form(
    alice: Any, storage_root: Path, settings: Any
) -> None:
    settings.OSS_ENDPOINT = "https://oss-cn-hangzhou.aliyuncs.com"
    html = _client(alice).get("/admin/projects/project/add/").content.decode()
    assert f"<code>{storage_root.as_uri()}/</code> (local disk (LOCAL_STORAGE_ROOT)" in html
    assert "oss://&lt;bucket&gt;/" in html and "oss-cn-hangzhou" in html
    prefix = _input(html, "output_prefix")
    assert 'size="80"' in prefix and "storage-url" in prefix
    assert "storage-url" in _input(html, "mappings-0-source")
    assert "css/admin-storage.css" in html


def test_other_staff_see_the_prefixes_open_to_them(
    bob: Any, project: Any, storage_root: Path, storage_url: str, settings: Any
) -> None:
    settings.STORAGE_ALLOWED_PREFIXES = [storage_url + "studio/"]
    bob.user_permissions.add(*Permission.objects.filter(content_type__app_label="projects"))
    html = _client(bob).get(f"/admin/projects/project/{project.pk}/change/").content.decode()
    assert f"<code>{storage_url}studio/</code> (open to staff (STORAGE_ALLOWED_PREFIXES))" in html
    assert "LOCAL_STORAGE_ROOT" not in html


def test_the_workflow_form_lists_the_users_projects_folders(alice: Any, project: Any) -> None:
    html = _client(alice).get("/admin/workflows/workflowrun/submit/").content.decode()
    mapping = project.mappings.get()
    assert f"shots: <code>{project.output_prefix}</code>, <code>{mapping.source}</code>" in html
    for name in ("wdl_url", "dependencies_url", "working_dir", "outputs_dir"):
        assert 'size="80"' in _input(html, name)


def test_the_submit_pages_pane_lists_the_mapped_folders_for_members(bob: Any, project: Any) -> None:
    html = _client(bob).get(f"/submit/?project={project.pk}").content.decode()
    assert project.mappings.get().source in html
