"""The beat tasks: thin wrappers over the services, named in the beat schedule."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from clusters import tasks as cluster_tasks
from jobs import tasks
from jobs.models import CloudJob
from tests.compute.fixtures import submit_cloud
from tests.fakes.batchcompute import FakeBatchCompute

pytestmark = pytest.mark.django_db


def test_the_beat_schedule_names_registered_tasks() -> None:
    from renderhub.celery import app

    app.loader.import_default_modules()
    for entry in ("poll-batchcompute-jobs", "sync-batchcompute-clusters"):
        assert settings.CELERY_BEAT_SCHEDULE[entry]["task"] in app.tasks


def test_polling_sends_ended_jobs_to_be_finished(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = submit_cloud(
        cloud_project, cloud_software, cloud_cluster, capture=django_capture_on_commit_callbacks
    )
    cj = CloudJob.objects.get(job=job)
    sent: list[int] = []
    monkeypatch.setattr(tasks.finish_cloud_job, "delay", sent.append)
    assert tasks.poll_cloud_jobs() == 1 and sent == []
    for i in range(3):
        fake_bc.finish_instance(cj.cloud_id, i)
    tasks.poll_cloud_jobs()
    assert sent == [cj.pk]
    assert tasks.finish_cloud_job(cj.pk) == 0  # no outputs in this test: nothing to preview
    cj.refresh_from_db()
    assert cj.finished_at is not None


def test_syncing_clusters(cloud_cluster: Any) -> None:
    assert cluster_tasks.sync_clusters() == 1
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.synced_at is not None and cloud_cluster.nodes.count() == 2
