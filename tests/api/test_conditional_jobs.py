"""The REST job list and job detail answer a client polling with the ETag it got with a
bodiless 304 while nothing they show moved, and with the new JSON once something did
(issue 19); another user's or a narrower token's tag gets no 304 it could learn from."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services as job_services
from jobs.models import RenderJob

pytestmark = pytest.mark.django_db


def test_the_job_list_and_detail_answer_304_until_the_job_moves(
    token_client: Any, bob: Any, job: RenderJob
) -> None:
    client = token_client(bob)
    for url in ("/api/jobs/?state=queued", f"/api/jobs/{job.pk}/"):
        first = client.get(url)
        assert first.status_code == 200 and first["ETag"]
        with CaptureQueriesContext(connection) as queries:
            again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
        assert again.status_code == 304 and again.content == b""
        assert len(queries) <= 3  # the token, its user and the version
    tags = {url: client.get(url)["ETag"] for url in ("/api/jobs/", f"/api/jobs/{job.pk}/")}
    job_services.cancel_job(job)
    for url, etag in tags.items():
        moved = client.get(url, HTTP_IF_NONE_MATCH=etag)
        assert moved.status_code == 200 and moved["ETag"] != etag, url
        assert "cancelled" in moved.content.decode(), url


def test_an_outsider_replaying_a_members_tag_gets_the_404(
    token_client: Any, bob: Any, charlie: Any, job: RenderJob
) -> None:
    etag = token_client(bob).get(f"/api/jobs/{job.pk}/")["ETag"]
    outsider = token_client(charlie)
    response = outsider.get(f"/api/jobs/{job.pk}/", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 404 and not response.has_header("ETag")
    listed = outsider.get("/api/jobs/", HTTP_IF_NONE_MATCH=etag)
    assert listed.status_code == 200 and job.name not in listed.content.decode()
