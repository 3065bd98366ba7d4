"""Network access through the software rights: with network the sandboxed renderer shares
the render machine's network, its 127.0.0.1 services (broker, database) included. A project
lead granted images.add_software / images.change_software, not a superuser, tries to give
a command that, or to swap the command of software a superuser gave it. Refused on the
/software/ pages and in the admin; a superuser still decides."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from images.models import Software
from tests.images.test_editors import rows_post
from tests.images.test_pages import multi

pytestmark = pytest.mark.django_db

SHELL = ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 5432))"]


def _lead(django_user_model: Any, *codenames: str, staff: bool = False) -> Client:
    user = django_user_model.objects.create_user("lead", password="pw-lead-1", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_a_lead_cannot_add_software_with_network(
    django_user_model: Any, blender_software: Software
) -> None:
    client = _lead(django_user_model, "add_software")
    data = rows_post(blender_software.image, SHELL, [], name="probe", network="on")
    response = client.post("/software/new/", multi(data))
    assert response.status_code == 200  # the form again, with the reason
    assert "Only a superuser can give software network access" in response.content.decode()
    assert not Software.objects.filter(name="probe").exists()
    # Without network the same software is the lead's to add (the sandbox has no network).
    data.pop("network")
    assert client.post("/software/new/", multi(data)).status_code == 302
    assert Software.objects.get(name="probe").network is False


@pytest.fixture
def licensed(blender_software: Software) -> Software:
    """Software a superuser gave network access (a licence server)."""
    blender_software.network = True
    blender_software.save()
    return blender_software


def test_a_lead_cannot_swap_the_command_of_networked_software(
    django_user_model: Any, licensed: Software
) -> None:
    client = _lead(django_user_model, "change_software")
    before = list(licensed.command_template)
    data = rows_post(licensed.image, SHELL, [], name=licensed.name, network="on")
    response = client.post(f"/software/{licensed.pk}/", multi(data))
    assert response.status_code == 200
    assert "Only a superuser" in response.content.decode()
    licensed.refresh_from_db()
    assert licensed.command_template == before and licensed.network is True
    # Other fields stay the lead's to change, and turning network off too.
    data = rows_post(licensed.image, before, licensed.parameters, name=licensed.name)
    data["version"] = "4.2 LTS"
    assert client.post(f"/software/{licensed.pk}/", multi(data)).status_code == 302
    licensed.refresh_from_db()
    assert licensed.version == "4.2 LTS" and licensed.network is False


def test_the_admin_refuses_it_too(django_user_model: Any, licensed: Software) -> None:
    client = _lead(django_user_model, "change_software", "view_software", staff=True)
    before = list(licensed.command_template)
    data = rows_post(licensed.image, SHELL, [], name=licensed.name, network="on")
    response = client.post(f"/admin/images/software/{licensed.pk}/change/", multi(data))
    assert response.status_code == 200 and "Only a superuser" in response.content.decode()
    licensed.refresh_from_db()
    assert licensed.command_template == before


def test_a_superuser_decides(client: Client, alice: Any, blender_software: Software) -> None:
    client.force_login(alice)
    data = rows_post(blender_software.image, SHELL, [], name="licensed", network="on")
    assert client.post("/software/new/", multi(data)).status_code == 302
    assert Software.objects.get(name="licensed").network is True
