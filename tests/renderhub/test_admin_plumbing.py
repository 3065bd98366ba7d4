"""Celery's results and beat's raw schedules are for superusers, whatever permissions a
staff group was handed; periodic tasks stay with whoever holds their permissions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"
PLUMBING = {
    "django_celery_results": ["taskresult", "groupresult"],
    "django_celery_beat": [
        "clockedschedule",
        "crontabschedule",
        "intervalschedule",
        "solarschedule",
    ],
}


@pytest.fixture(autouse=True)
def _static(settings: Any) -> None:
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}


def urls() -> list[str]:
    return [f"/admin/{app}/{model}/" for app, models in PLUMBING.items() for model in models]


def test_staff_with_every_permission_do_not_see_the_plumbing(client: Any, bob: Any) -> None:
    bob.user_permissions.set(Permission.objects.filter(content_type__app_label__in=list(PLUMBING)))
    client.force_login(bob)
    index = client.get("/admin/").content.decode()
    for url in urls():
        assert url not in index
        assert client.get(url).status_code == 403
    # Periodic tasks are not plumbing: the permission still shows them.
    assert "/admin/django_celery_beat/periodictask/" in index


def test_superusers_keep_them(client: Any, alice: Any) -> None:
    client.force_login(alice)
    index = client.get("/admin/").content.decode()
    for url in urls():
        assert url in index
        assert client.get(url).status_code == 200
