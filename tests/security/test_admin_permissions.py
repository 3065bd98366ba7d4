"""Finding 6 of issue 11: admin actions without permissions, and unbounded resizes.

A staff user who may only *view* clusters and webhooks posts the actions the changelist
would offer a superuser: resize to 1000 VMs, delete, sync, rotate a webhook's secret, send
a test event. Each is refused with a message naming the permission, nothing reaches
BatchCompute and no secret is shown. A resize beyond the cluster's ``max_nodes`` (or
``BATCHCOMPUTE_MAX_INSTANCES``) is refused in ``clusters.services.resize``, whichever caller
asks: the admin, the REST API, the CLI or the staff page.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from api import services as api_services
from clusters.models import Cluster
from notifications import services as notification_services
from notifications import signing
from notifications.models import Webhook, WebhookDelivery
from tests.clusters.cloud_commands import run
from tests.fakes.batchcompute import FakeBatchCompute

pytestmark = pytest.mark.django_db

CLUSTERS = "/admin/clusters/cluster/"
WEBHOOKS = "/admin/notifications/webhook/"


def grant(user: Any, *codenames: str) -> Any:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def viewer(client: Any, django_user_model: Any) -> Any:
    """Staff with only the view permissions (what a read-only operator is given)."""
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    grant(user, "view_cluster", "view_webhook", "view_apitoken")
    client.force_login(user)
    return client


@pytest.fixture
def webhook(project: Any, viewer: Any, django_user_model: Any) -> Webhook:
    project.members.add(django_user_model.objects.get(username="viewer"))
    hook, _secret = notification_services.create_webhook(
        project, "https://hooks.example.com/x", ["job.state_changed"]
    )
    return hook


# --- view-only staff ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "extra", "needed"),
    [
        ("resize_clusters", {"apply": "Resize", "nodes": "1000"}, "change"),
        ("resize_clusters", {}, "change"),  # not even the form that asks for N
        ("delete_clusters", {}, "delete"),
        ("sync_clusters", {}, "change"),
    ],
)
def test_view_only_staff_cannot_run_cluster_actions(
    viewer: Any,
    cloud_cluster: Cluster,
    fake_bc: FakeBatchCompute,
    action: str,
    extra: dict[str, str],
    needed: str,
) -> None:
    before = fake_bc.count()
    response = viewer.post(
        CLUSTERS, {"action": action, "_selected_action": [cloud_cluster.pk], **extra}, follow=True
    )
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("You may not run") and f"needs the {needed} permission" in message
    assert fake_bc.count() == before  # nothing reached BatchCompute
    cloud_cluster.refresh_from_db()
    assert (cloud_cluster.desired_nodes, cloud_cluster.state) == (2, "active")
    assert not cloud_cluster.operations.exclude(action="create").exists()


def test_view_only_staff_cannot_rotate_a_secret_or_send_test_events(
    viewer: Any, webhook: Webhook
) -> None:
    secret = signing.decrypt(webhook.secret_encrypted)
    for action in ("rotate_secret", "send_test_event"):
        response = viewer.post(
            WEBHOOKS, {"action": action, "_selected_action": [webhook.pk]}, follow=True
        )
        [message] = messages_of(response)
        assert "needs the change permission on webhooks" in message
        assert "<code>" not in response.content.decode()  # no secret shown
    webhook.refresh_from_db()
    assert signing.decrypt(webhook.secret_encrypted) == secret
    assert not WebhookDelivery.objects.exists()


def test_the_changelist_offers_view_only_staff_no_actions(
    viewer: Any, cloud_cluster: Cluster, webhook: Webhook
) -> None:
    for url in (CLUSTERS, WEBHOOKS):
        page = viewer.get(url)
        assert page.status_code == 200
        text = page.content.decode()
        for name in ("resize_clusters", "delete_clusters", "rotate_secret", "send_test_event"):
            assert f'value="{name}"' not in text


def test_rotation_shows_the_new_secret_once_to_who_may_change_the_webhook(
    client: Any, bob: Any, webhook: Webhook
) -> None:
    grant(bob, "view_webhook", "change_webhook")
    client.force_login(bob)
    response = client.post(
        WEBHOOKS, {"action": "rotate_secret", "_selected_action": [webhook.pk]}, follow=True
    )
    [message] = [m for m in messages_of(response) if "new secret" in m]
    webhook.refresh_from_db()
    new = signing.decrypt(webhook.secret_encrypted)
    assert f"<code>{new}</code>" in message
    assert new not in client.get(f"{WEBHOOKS}{webhook.pk}/change/").content.decode()


def test_view_only_staff_cannot_switch_off_or_run_beat_tasks(
    client: Any, django_user_model: Any
) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(name="poll", task="renderhub.nothing", interval=every)
    user = django_user_model.objects.create_user("ops", password="pw-ops-1", is_staff=True)
    grant(user, "view_periodictask")
    client.force_login(user)
    for action in ("disable_tasks", "toggle_tasks", "run_tasks"):
        response = client.post(
            "/admin/django_celery_beat/periodictask/",
            {"action": action, "_selected_action": [task.pk]},
            follow=True,
        )
        [message] = messages_of(response)
        assert "needs the change permission" in message
    task.refresh_from_db()
    assert task.enabled


def test_every_admin_action_declares_its_permissions() -> None:
    unguarded = []
    for model_admin in admin.site._registry.values():
        for action in model_admin.actions or ():
            func = getattr(model_admin, action) if isinstance(action, str) else action
            if not getattr(func, "allowed_permissions", ()):
                unguarded.append(f"{type(model_admin).__name__}.{getattr(func, '__name__', func)}")
    assert unguarded == []


# --- the size bound, for every caller ------------------------------------------------------


def test_a_superuser_cannot_resize_past_max_nodes_in_the_admin(
    client: Any, alice: Any, cloud_cluster: Cluster, fake_bc: FakeBatchCompute
) -> None:
    client.force_login(alice)
    before = fake_bc.count("PUT /clusters/{id}")
    response = client.post(
        CLUSTERS,
        {
            "action": "resize_clusters",
            "_selected_action": [cloud_cluster.pk],
            "apply": "Resize",
            "nodes": "1000",
        },
        follow=True,
    )
    [message] = messages_of(response)
    assert f"1000 nodes is more than 8 (the max nodes of cluster {cloud_cluster})" in message
    assert fake_bc.count("PUT /clusters/{id}") == before
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.desired_nodes == 2


def test_the_change_form_refuses_more_nodes_than_max_nodes(
    client: Any, alice: Any, cloud_cluster: Cluster, fake_bc: FakeBatchCompute
) -> None:
    client.force_login(alice)
    page = client.get(f"{CLUSTERS}{cloud_cluster.pk}/change/")
    data = {k: v for k, v in page.context["adminform"].form.initial.items() if v is not None}
    data.update(
        {
            "image": cloud_cluster.image_id,
            "desired_nodes": "1000",
            "nodes-TOTAL_FORMS": "0",
            "nodes-INITIAL_FORMS": "0",
        }
    )
    response = client.post(f"{CLUSTERS}{cloud_cluster.pk}/change/", data)
    assert response.status_code == 200
    assert "1000 nodes is more than 8" in response.content.decode()
    assert fake_bc.count("PUT /clusters/{id}") == 0


def test_batchcompute_max_instances_bounds_every_cloud_cluster(
    cloud_cluster: Cluster, fake_bc: FakeBatchCompute, settings: Any
) -> None:
    settings.BATCHCOMPUTE_MAX_INSTANCES = 5
    with pytest.raises(
        CommandError, match=r"6 nodes is more than 5 \(BATCHCOMPUTE_MAX_INSTANCES\)"
    ):
        run("cluster_resize", cloud_cluster.name, "6")
    run("cluster_resize", cloud_cluster.name, "5")
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].desired == {"group": 5}


def test_the_cli_api_and_staff_page_get_the_same_bound(
    client: Any, alice: Any, cloud_cluster: Cluster, fake_bc: FakeBatchCompute
) -> None:
    with pytest.raises(CommandError, match="1000 nodes is more than 8"):
        run("cluster_resize", cloud_cluster.name, "1000")
    _token, key = api_services.create_token(alice, "ops")
    api = APIClient(HTTP_AUTHORIZATION=f"Token {key}").post(
        f"/api/clusters/{cloud_cluster.pk}/resize/", {"desired_nodes": 1000}, format="json"
    )
    assert api.status_code == 400 and "1000 nodes is more than 8" in str(api.json())
    client.force_login(alice)
    page = client.post(f"/clusters/{cloud_cluster.pk}/resize/", {"count": 1000})
    assert page.status_code == 400 and "1000 nodes is more than 8" in page.content.decode()
    assert fake_bc.count("PUT /clusters/{id}") == 0
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.desired_nodes == 2
