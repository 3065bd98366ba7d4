"""Storage roots are installation detail: the forms show each user only the folders they may
use. Staff see their allowed prefixes, never the machine's storage root; a member sees the
folders of their own projects, never another project's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from projects import services
from projects.models import Project, StorageMapping

pytestmark = pytest.mark.django_db


@pytest.fixture
def ads(image: Any, storage_url: str, charlie: Any) -> Project:
    other = Project.objects.create(
        name="ads", image=image, output_prefix=storage_url + "ads-secret-out/"
    )
    StorageMapping.objects.create(
        project=other, source=storage_url + "ads-secret/", destination="/mnt/ads/"
    )
    other.members.add(charlie)
    return other


def test_staff_do_not_see_the_storage_root(
    bob: Any, project: Any, storage_root: Path, settings: Any
) -> None:
    settings.STORAGE_ALLOWED_PREFIXES = []
    bob.user_permissions.add(*Permission.objects.filter(content_type__app_label="projects"))
    client = Client()
    client.force_login(bob)
    html = client.get(f"/admin/projects/project/{project.pk}/change/").content.decode()
    assert "Allowed:" not in html
    assert services.storage_roots(bob) == []


def test_users_without_staff_rights_are_shown_no_roots(
    django_user_model: Any, settings: Any, storage_url: str
) -> None:
    settings.STORAGE_ALLOWED_PREFIXES = [storage_url + "studio/"]
    artist = django_user_model.objects.create_user("artist", password="pw-artist-1")
    assert services.storage_roots(artist) == []


def test_a_member_sees_only_their_projects_folders_on_the_workflow_form(
    bob: Any, project: Any, ads: Project
) -> None:
    from workflows.forms import SubmitWorkflowForm

    form = SubmitWorkflowForm(user=bob)
    help_text = str(form.fields["working_dir"].help_text)
    assert project.output_prefix in help_text
    assert "ads-secret" not in help_text
