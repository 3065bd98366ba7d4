"""The BatchCompute job rows in the admin (issue 18, item 5): shown to who may see their
render job only, and never changed or deleted there (a deleted row would leave its cloud
job unwatched, running and billed)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

from jobs.models import CloudJob, RenderJob

pytestmark = pytest.mark.django_db

CLOUD_JOBS = "/admin/jobs/cloudjob/"


@pytest.fixture
def staff(client: Any, django_user_model: Any) -> Any:
    """Staff who may view render jobs and cloud jobs, member of no project."""
    user = django_user_model.objects.create_user("outsider", password="pw-out-1", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_cloudjob", "view_renderjob"])
    )
    client.force_login(user)
    return user


def test_an_outsider_sees_no_cloud_job_of_another_project(
    submitted: RenderJob, staff: Any, client: Any
) -> None:
    cloud_job = CloudJob.objects.get(job=submitted)
    listing = client.get(CLOUD_JOBS)
    assert listing.status_code == 200
    assert cloud_job.cloud_id not in listing.content.decode()
    detail = client.get(f"{CLOUD_JOBS}{cloud_job.pk}/change/")
    assert detail.status_code == 302  # "not found": sent back to the admin index
    job_page = client.get(f"/admin/jobs/renderjob/{submitted.pk}/change/")
    assert job_page.status_code == 302


def test_a_member_sees_the_row_but_cannot_change_or_delete_it(
    submitted: RenderJob, staff: Any, client: Any
) -> None:
    submitted.project.members.add(staff)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_cloudjob", "delete_cloudjob"])
    )
    cloud_job = CloudJob.objects.get(job=submitted)
    assert cloud_job.cloud_id in client.get(CLOUD_JOBS).content.decode()
    page = client.get(f"{CLOUD_JOBS}{cloud_job.pk}/change/")
    assert page.status_code == 200 and cloud_job.cloud_id in page.content.decode()
    client.post(f"{CLOUD_JOBS}{cloud_job.pk}/change/", {"cloud_id": "job-forged", "state": "ended"})
    assert client.post(f"{CLOUD_JOBS}{cloud_job.pk}/delete/", {"post": "yes"}).status_code == 403
    cloud_job.refresh_from_db()
    assert cloud_job.cloud_id.startswith("job-") and cloud_job.cloud_id != "job-forged"
    assert cloud_job.state == "active"
