"""Finding 11 of issue 11: System status was open to any staff user.

It shows the installation's paths, storage and BatchCompute key ids and every cluster's
nodes. A staff user who is not a superuser (even one holding every model permission)
asks for it and is refused with a reason; the admin index does not link it for them.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from clusters.models import ClusterNode

pytestmark = pytest.mark.django_db

STATUS_URL = "/admin/status/"


@pytest.fixture
def node(cluster: Any) -> ClusterNode:
    return ClusterNode.objects.create(
        cluster=cluster, name="render@secret-box", ip_address="10.1.2.3", last_seen=timezone.now()
    )


def test_staff_who_are_not_superusers_are_refused(
    client: Any, bob: Any, node: ClusterNode, settings: Any
) -> None:
    bob.user_permissions.add(*Permission.objects.all())  # every right but superuser
    client.force_login(bob)
    response = client.get(STATUS_URL)
    assert response.status_code == 403
    text = response.content.decode()
    assert "System status is for superusers only" in text
    for secret in ("render@secret-box", "10.1.2.3", str(settings.LOCAL_STORAGE_ROOT)):
        assert secret not in text
    assert f'href="{STATUS_URL}"' not in client.get("/admin/").content.decode()


def test_anonymous_users_are_sent_to_the_login(client: Any) -> None:
    response = client.get(STATUS_URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_superusers_see_it(client: Any, alice: Any, node: ClusterNode) -> None:
    client.force_login(alice)
    response = client.get(STATUS_URL)
    assert response.status_code == 200 and "render@secret-box" in response.content.decode()
    assert f'href="{STATUS_URL}"' in client.get("/admin/").content.decode()
