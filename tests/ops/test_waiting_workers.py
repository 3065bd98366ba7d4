"""A render worker started before its cluster exists is not invisible: System status shows
it, one click creates the cluster, and the worker renders for it."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.models import Cluster, ClusterNode, UnassignedWorker
from jobs.choices import JobState
from tests.jobs.conftest import fake_software  # noqa: F401  (shared fixture)
from tests.web.conftest import submit
from tests.workers import celery_worker, wait_for

STATUS_URL = "/admin/status/"
CREATE_URL = "/admin/status/create-cluster/"
PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"


@pytest.fixture(autouse=True)
def _static(settings: Any) -> None:
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}


@pytest.mark.django_db(transaction=True)
def test_a_worker_waiting_for_its_cluster_is_shown_and_put_to_work(
    client: Any,
    alice: Any,
    image: Any,
    project: Any,
    fake_software: Any,  # noqa: F811
    scene_url: str,
    settings: Any,
) -> None:
    from jobs import heartbeat

    settings.NODE_HEARTBEAT_SECONDS = 1
    settings.RENDER_HEARTBEAT_SECONDS = 1
    client.force_login(alice)
    assert "Workers waiting for a cluster" not in client.get(STATUS_URL).content.decode()
    try:
        with celery_worker(
            "renderhub-studio-b", queues=["render.studio-b"], hostname="box@studio", concurrency=2
        ):
            wait_for(lambda: UnassignedWorker.objects.filter(cluster_name="studio-b").exists())
            html = client.get(STATUS_URL).content.decode()
            assert "Workers waiting for a cluster" in html
            assert "render.studio-b" in html and "box@studio" in html
            assert "No render worker serves a cluster yet" in html

            response = client.post(CREATE_URL, {"name": "studio-b", "image": image.pk})
            assert response.status_code == 302
            cluster = Cluster.objects.get(name="studio-b")
            assert cluster.backend == "celery" and cluster.image == image
            # The worker shows as the cluster's node at once, and no longer as waiting.
            assert ClusterNode.objects.filter(cluster=cluster, name="box@studio").exists()
            assert "Workers waiting for a cluster" not in client.get(STATUS_URL).content.decode()

            job = submit(project, fake_software, cluster, scene_url, frames="1-2", nodes=1)
            assert wait_for(job).state == JobState.FINISHED
            # Its heartbeats now land on the node, never again on a waiting row.
            wait_for(lambda: not UnassignedWorker.objects.exists())
    finally:
        heartbeat.stop()


@pytest.mark.django_db
@pytest.mark.embedded
def test_creating_needs_a_waiting_worker_and_a_free_name(
    client: Any, alice: Any, bob: Any, image: Any, cluster: Any
) -> None:
    from django.utils import timezone

    UnassignedWorker.objects.create(cluster_name="far", hostname="w@far", last_seen=timezone.now())
    client.force_login(bob)  # staff, not a superuser
    assert client.post(CREATE_URL, {"name": "far", "image": image.pk}).status_code == 403
    client.force_login(alice)
    nobody = client.post(CREATE_URL, {"name": "nowhere", "image": image.pk}, follow=True)
    assert "No worker is waiting for a cluster named" in nobody.content.decode()
    assert not Cluster.objects.filter(name="nowhere").exists()
    UnassignedWorker.objects.create(
        cluster_name=cluster.name, hostname="w@x", last_seen=timezone.now()
    )
    taken = client.post(CREATE_URL, {"name": cluster.name, "image": image.pk}, follow=True)
    assert "exists already" in taken.content.decode()


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_stale_waiting_worker_is_not_offered(client: Any, alice: Any, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(seconds=settings.NODE_OFFLINE_AFTER + 5)
    UnassignedWorker.objects.create(cluster_name="gone", hostname="w@gone", last_seen=long_ago)
    client.force_login(alice)
    assert "render.gone" not in client.get(STATUS_URL).content.decode()
