"""Admin: tokens created with their key shown once, revoke; staff see only their own."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission

from api import services
from api.models import ApiToken

pytestmark = pytest.mark.django_db


def shown_value(response, marker: str) -> str:
    [message] = [str(m) for m in response.context["messages"] if marker in str(m)]
    return re.search(r"<code>([^<]+)</code>", message).group(1)


def test_adding_a_token_shows_its_key_once(client, alice, bob) -> None:
    client.force_login(alice)
    response = client.post(
        "/admin/api/apitoken/add/", {"user": bob.pk, "name": "render script"}, follow=True
    )
    assert response.status_code == 200
    key = shown_value(response, "The key of token")
    token = services.authenticate_key(key)
    assert token is not None and token.user == bob and token.name == "render script"
    page = client.get(f"/admin/api/apitoken/{token.pk}/change/")
    assert key not in page.content.decode()


def test_a_token_for_a_project_its_user_is_not_a_member_of_is_refused(
    client, alice, bob, charlie, project
) -> None:
    client.force_login(alice)  # a superuser: every user and project is offered
    add = {"user": charlie.pk, "name": "ci", "project": project.pk}
    response = client.post("/admin/api/apitoken/add/", add)
    assert response.status_code == 200
    assert "charlie is not a member of project shots." in response.content.decode()
    assert not ApiToken.objects.exists()
    response = client.post("/admin/api/apitoken/add/", {**add, "user": bob.pk}, follow=True)
    token = services.authenticate_key(shown_value(response, "The key of token"))
    assert token is not None and (token.user, token.project) == (bob, project)


def test_the_revoke_action(client, alice, bob) -> None:
    token, key = services.create_token(bob, "old")
    client.force_login(alice)
    client.post(
        "/admin/api/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
        follow=True,
    )
    assert services.authenticate_key(key) is None


def test_staff_see_and_make_only_their_own_tokens(client, alice, bob) -> None:
    services.create_token(alice, "alice's")
    bob.user_permissions.add(*Permission.objects.filter(content_type__app_label="api"))
    client.force_login(bob)
    assert "alice&#x27;s" not in client.get("/admin/api/apitoken/").content.decode()
    response = client.post("/admin/api/apitoken/add/", {"user": alice.pk, "name": "sneaky"})
    assert response.status_code == 200  # the form refuses another user
    assert not ApiToken.objects.filter(name="sneaky").exists()
