"""Webhook retries through a real Celery worker: the task's own retry with countdown."""

from __future__ import annotations

import time

import pytest

from jobs.models import RenderJob
from jobs.signals import job_state_changed
from notifications.choices import DeliveryState
from notifications.models import WebhookDelivery
from tests.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


def delivered() -> WebhookDelivery | None:
    delivery = WebhookDelivery.objects.first()
    if delivery and delivery.state in (DeliveryState.SUCCEEDED, DeliveryState.FAILED):
        return delivery
    return None


def test_the_worker_retries_a_failing_receiver_with_backoff(
    project, blender_software, cluster, webhook, receiver, task_worker, mailoutbox, bob
) -> None:
    receiver.script = [500, 500, 200]
    # A bare job row (no chunks, nothing dispatched) whose end the job services announce.
    job = RenderJob.objects.create(
        project=project,
        software=blender_software,
        cluster=cluster,
        submitted_by=bob,
        name="shot_a",
        scene_url="file:///x/shot_a.blend",
        frame_spec="1-2",
        frame_count=2,
        node_count=1,
        output_url=project.output_prefix + "1-shot_a/",
        state="finished",
    )
    job_state_changed.send(
        sender=RenderJob, job_id=job.pk, old_state="running", new_state="finished"
    )

    delivery = wait_for(delivered, timeout=30, what="the delivery is done", every=0.1)
    assert delivery.state == DeliveryState.SUCCEEDED, delivery.history
    assert delivery.attempts == 3
    assert [h["status"] for h in delivery.history] == [500, 500, 200]
    assert len(receiver.received) == 3 and all(r.verified for r in receiver.received)
    at = [r.at for r in receiver.received]
    assert at[1] - at[0] >= 0.45 and at[2] - at[1] >= 0.95  # countdowns of 0.5 s, then 1 s

    deadline = time.monotonic() + 10
    while not mailoutbox and time.monotonic() < deadline:
        time.sleep(0.1)
    [mail] = mailoutbox
    assert mail.to == ["bob@example.com"] and "finished" in mail.subject
