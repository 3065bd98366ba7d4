"""Attack: a user who may not see a job replays its live partials' versions (ETags) to
learn whether it exists or whether it moved, or to get a 304 where the page would 404.

The version is asked through the page's own visibility filter, before anything else: an
outsider gets the 404 the page gives (no 304, no ETag), with a real version or a forged
one; a member who lost access gets the same on their next poll; and a list's version is
the user's own, so another user's tag never matches it.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from jobs import services
from jobs.models import RenderJob, Task

# The staff-page tests' running job (frames in every state) and its fake renderer.
from tests.web.conftest import fake_software, job  # noqa: F401

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def urls(job: RenderJob) -> list[str]:  # noqa: F811
    return [f"/jobs/{job.pk}/", f"/jobs/{job.pk}/chunks/0/logs/?log=stdout"]


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_outsider_replaying_a_members_version_gets_the_404(
    bob: Any,
    charlie: Any,
    job: RenderJob,  # noqa: F811
) -> None:
    member, outsider = login(bob), login(charlie)  # charlie is not in the job's project
    tags = {url: member.get(url, **HX)["ETag"] for url in urls(job)}
    for url, etag in tags.items():
        for held in (etag, '"forged"', "*"):
            response = outsider.get(url, HTTP_IF_NONE_MATCH=held, **HX)
            assert response.status_code == 404, url
            assert not response.has_header("ETag"), url
            assert etag.strip('"') not in response.content.decode()
    # Unknown jobs answer alike: the tag tells nothing about which ids exist.
    unknown = outsider.get("/jobs/999999/", HTTP_IF_NONE_MATCH=tags[urls(job)[0]], **HX)
    assert unknown.status_code == 404


def test_a_member_who_loses_access_gets_no_more_304s(
    bob: Any,
    job: RenderJob,  # noqa: F811
) -> None:
    member = login(bob)
    tags = {url: member.get(url, **HX)["ETag"] for url in urls(job)}
    for url, etag in tags.items():
        assert member.get(url, HTTP_IF_NONE_MATCH=etag, **HX).status_code == 304
    job.project.members.remove(bob)
    for url, etag in tags.items():
        response = member.get(url, HTTP_IF_NONE_MATCH=etag, **HX)
        assert response.status_code == 404 and not response.has_header("ETag"), url


@pytest.mark.parametrize("url", ["/jobs/", "/"])
def test_a_list_version_is_the_users_own(
    bob: Any,
    charlie: Any,
    job: RenderJob,  # noqa: F811
    url: str,
) -> None:
    """Charlie sees no job: Bob's tag for the running list (or the dashboard) is no 304
    for him, and his own version neither lists the job nor moves when it does."""
    member, outsider = login(bob), login(charlie)
    bobs = member.get(url, **HX)["ETag"]
    response = outsider.get(url, HTTP_IF_NONE_MATCH=bobs, **HX)
    assert response.status_code == 200 and response["ETag"] != bobs
    assert job.name not in response.content.decode()
    his = response["ETag"]
    task = Task.objects.get(job=job, index=0)
    services.frame_done(task, 3, seconds=1.0, output_url="", thumbnail_url="")
    assert member.get(url, HTTP_IF_NONE_MATCH=bobs, **HX).status_code == 200  # Bob's moved
    assert outsider.get(url, HTTP_IF_NONE_MATCH=his, **HX).status_code == 304  # his did not
