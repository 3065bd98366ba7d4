"""manage.py api_token create|list|revoke --user NAME."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from api import services
from api.models import ApiToken

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("api_token", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_prints_a_working_key_once(bob, project) -> None:
    key = run("create", "--user", "bob", "--name", "ci", "--days", "30").strip()
    token = services.authenticate_key(key)
    assert token is not None and token.user == bob and token.name == "ci"
    assert token.expires_at is not None
    listing = run("list", "--user", "bob")
    assert token.prefix in listing and "active" in listing and key not in listing


def test_create_limited_to_a_project(bob, project) -> None:
    key = run("create", "--user", "bob", "--project", "shots").strip()
    assert services.authenticate_key(key).project == project


def test_create_refuses_a_project_the_user_cannot_see(charlie, project) -> None:
    with pytest.raises(CommandError, match="no project named 'shots'"):
        run("create", "--user", "charlie", "--project", "shots")
    with pytest.raises(CommandError, match="no user named"):
        run("create", "--user", "nobody")


def test_revoke_by_prefix_or_id(bob) -> None:
    first, first_key = services.create_token(bob, "one")
    second, _ = services.create_token(bob, "two")
    assert "Revoked" in run("revoke", "--user", "bob", first.prefix + "…")
    assert services.authenticate_key(first_key) is None
    assert "Revoked" in run("revoke", "--user", "bob", str(second.pk))
    assert "already revoked" in run("revoke", "--user", "bob", str(second.pk))
    assert "revoked" in run("list", "--user", "bob")
    with pytest.raises(CommandError, match="has no token"):
        run("revoke", "--user", "bob", "rh_nothing")
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 0
