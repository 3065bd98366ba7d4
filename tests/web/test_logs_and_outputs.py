"""Chunk logs (live from the DB, then from storage) and the outputs gallery, links and zip."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from jobs.models import RenderJob

pytestmark = pytest.mark.django_db


def test_a_running_chunk_shows_the_live_tail_and_polls(as_bob: Any, job: RenderJob) -> None:
    response = as_bob.get(f"/jobs/{job.pk}/chunks/0/logs/?log=stdout")
    text = response.content.decode()
    assert "Fra:3 Mem:1.00M" in text and "Live tail" in text and "every 2s" in text
    agent = as_bob.get(f"/jobs/{job.pk}/chunks/0/logs/?log=agent", HTTP_HX_REQUEST="true")
    assert "agent: started chunk 0" in agent.content.decode()
    assert "<html" not in agent.content.decode()
    download = as_bob.get(f"/jobs/{job.pk}/chunks/0/logs/stdout/download/")
    assert download.content.decode() == "Fra:3 Mem:1.00M | Sample 1/16\n"  # only the tail exists
    assert "attachment" in download["Content-Disposition"]


def test_a_finished_chunk_reads_the_published_files(as_bob: Any, finished_job: RenderJob) -> None:
    text = as_bob.get(f"/jobs/{finished_job.pk}/chunks/0/logs/?log=stdout").content.decode()
    assert "From storage" in text and "every 2s" not in text
    assert "Fra:4999 line 4999" in text and "the last 64 KB" in text
    assert "Fra:0 line 0\n" not in text  # only the end of a long file is shown
    download = as_bob.get(f"/jobs/{finished_job.pk}/chunks/0/logs/stdout/download/")
    whole = b"".join(download.streaming_content).decode()
    assert whole.startswith("Fra:0 line 0\n") and whole.count("\n") == 5000


def test_the_gallery_shows_finished_frames_with_signed_links(as_bob: Any, job: RenderJob) -> None:
    response = as_bob.get(f"/jobs/{job.pk}/outputs/")
    assert [frame.number for frame, _ in response.context["frames"]] == [1, 2]
    text = response.content.decode()
    assert f"/jobs/{job.pk}/frames/1/thumbnail/" in text and 'alt="Frame 1"' in text
    _, link = response.context["frames"][0]
    assert link.startswith("/storage/signed/")
    assert as_bob.get(link).status_code == 200
    # PNG frames open in the browser, so their links say so.
    assert 'aria-label="Open frame 1">Open</a>' in text and "Download frame 1" not in text


def test_members_without_staff_rights_see_no_admin_links(
    client: Any, django_user_model: Any, job: RenderJob
) -> None:
    artist = django_user_model.objects.create_user("ines", password="pw-ines-1")
    job.project.members.add(artist)
    client.force_login(artist)
    for url in (f"/jobs/{job.pk}/", f"/clusters/{job.cluster_id}/", "/clusters/"):
        assert 'href="/admin/' not in client.get(url).content.decode(), url


def test_download_all_streams_a_zip_of_the_outputs(as_alice: Any, job: RenderJob) -> None:
    response = as_alice.get(f"/jobs/{job.pk}/outputs.zip")
    assert response.streaming and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["shot_a_0001.png", "shot_a_0002.png"]  # no thumbs
    assert archive.read("shot_a_0001.png")[:4] == b"\x89PNG"
