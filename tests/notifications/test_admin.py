"""Admin: webhooks created with their secret shown once, send test event, rotate, and the
delivery log; staff see only their projects' webhooks."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission

from notifications import services, signing
from notifications.choices import DeliveryState
from notifications.models import Webhook, WebhookDelivery
from projects.models import Project

pytestmark = pytest.mark.django_db

HOOKS = "/admin/notifications/webhook/"
DELIVERIES = "/admin/notifications/webhookdelivery/"


def shown_value(response, marker: str) -> str:
    [message] = [str(m) for m in response.context["messages"] if marker in str(m)]
    return re.search(r"<code>([^<]+)</code>", message).group(1)


def test_adding_a_webhook_shows_the_secret_once_and_stores_it_encrypted(
    client, alice, project, receiver
) -> None:
    client.force_login(alice)
    response = client.post(
        HOOKS + "add/",
        {
            "project": project.pk,
            "name": "pipeline",
            "url": receiver.url,
            "events": ["job.state_changed", "frame.failed"],
            "active": "on",
            "deliveries-TOTAL_FORMS": "0",
            "deliveries-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert response.status_code == 200
    secret = shown_value(response, "The signing secret")
    hook = Webhook.objects.get()
    assert hook.events == ["job.state_changed", "frame.failed"] and hook.created_by == alice
    assert secret not in hook.secret_encrypted
    assert signing.decrypt(hook.secret_encrypted) == secret
    assert secret not in client.get(f"{HOOKS}{hook.pk}/change/").content.decode()


def webhook_form(project, url: str) -> dict[str, object]:
    return {
        "project": project.pk,
        "url": url,
        "events": ["job.state_changed"],
        "deliveries-TOTAL_FORMS": "0",
        "deliveries-INITIAL_FORMS": "0",
    }


def test_staff_cannot_add_a_webhook_to_a_project_they_are_not_a_member_of(
    client, charlie, project, image
) -> None:
    charlie.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="notifications")
    )
    client.force_login(charlie)
    response = client.post(HOOKS + "add/", webhook_form(project, "https://a.example/h"))
    assert response.status_code == 200  # the form again, with the refusal
    assert response.context["adminform"].form.errors["project"]
    assert not Webhook.objects.exists()
    theirs = Project.objects.create(name="ads", image=image, output_prefix=project.output_prefix)
    theirs.members.add(charlie)
    response = client.post(HOOKS + "add/", webhook_form(theirs, "https://b.example/h"), follow=True)
    assert shown_value(response, "The signing secret")
    hook = Webhook.objects.get()
    assert (hook.project, hook.created_by) == (theirs, charlie)


def test_an_http_url_elsewhere_is_refused_in_the_admin(client, alice, project) -> None:
    client.force_login(alice)
    response = client.post(
        HOOKS + "add/",
        {
            "project": project.pk,
            "url": "http://hooks.example.com/x",
            "events": ["job.state_changed"],
            "deliveries-TOTAL_FORMS": "0",
            "deliveries-INITIAL_FORMS": "0",
        },
    )
    assert "must start with https://" in response.content.decode()
    assert not Webhook.objects.exists()


def test_send_test_event_delivers_a_signed_ping(client, alice, webhook, receiver, queued) -> None:
    client.force_login(alice)
    client.post(
        HOOKS,
        {"action": "send_test_event", "_selected_action": [webhook.pk]},
        follow=True,
    )
    [delivery] = WebhookDelivery.objects.all()
    assert delivery.event == "ping" and queued["deliveries"] == [str(delivery.pk)]
    assert services.attempt_delivery(str(delivery.pk)).state == DeliveryState.SUCCEEDED
    assert receiver.received[0].verified
    assert receiver.received[0].headers["X-RenderHub-Event"] == "ping"

    log = client.get(DELIVERIES)
    assert log.status_code == 200 and "ping" in log.content.decode()
    detail = client.get(f"{DELIVERIES}{delivery.pk}/change/")
    assert detail.status_code == 200 and "Test event from RenderHub" in detail.content.decode()
    assert client.get(f"{HOOKS}{webhook.pk}/change/").status_code == 200


def test_rotate_secret_action_shows_the_new_one(client, alice, webhook) -> None:
    old = signing.decrypt(webhook.secret_encrypted)
    client.force_login(alice)
    response = client.post(
        HOOKS,
        {"action": "rotate_secret", "_selected_action": [webhook.pk]},
        follow=True,
    )
    new = shown_value(response, "The new secret")
    webhook.refresh_from_db()
    assert new != old and signing.decrypt(webhook.secret_encrypted) == new


def test_staff_see_only_their_projects_webhooks_and_deliveries(
    client, bob, project, image, queued
) -> None:
    other = Project.objects.create(name="ads", image=image, output_prefix=project.output_prefix)
    services.create_webhook(project, "https://shots.example.com/h", ["frame.failed"])
    hidden, _ = services.create_webhook(other, "https://ads.example.com/h", ["frame.failed"])
    services.send_test_event(hidden)
    bob.user_permissions.add(*Permission.objects.filter(content_type__app_label="notifications"))
    client.force_login(bob)
    page = client.get(HOOKS).content.decode()
    assert "shots.example.com" in page and "ads.example.com" not in page
    assert client.get(f"{HOOKS}{hidden.pk}/change/").status_code == 302  # not found
    assert "ads.example.com" not in client.get(DELIVERIES).content.decode()
