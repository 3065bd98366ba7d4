"""The preview movie option on the submit page, the API and manage.py submit_render, and
the job page's player (jobs.movies; the movie itself is made in tests/jobs/test_movie.py)."""

from __future__ import annotations

import importlib
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command

from jobs import movies, services
from jobs.choices import JobState
from jobs.models import RenderJob
from renderhub import storage

pytestmark = pytest.mark.django_db


@pytest.fixture
def ffmpeg(image: Any) -> Any:
    importlib.import_module("images.migrations.0005_ffmpeg").create(apps, None)
    return image.software.get(name="ffmpeg")


def test_the_submit_page_adds_a_movie_job_and_the_job_page_plays_it(
    as_bob: Any, project: Any, fake_software: Any, cluster: Any, storage_tree: Any, ffmpeg: Any
) -> None:
    page = as_bob.get(f"/submit/?project={project.pk}").content.decode()
    assert 'name="movie"' in page and "Make a preview movie" in page
    data = {
        "project": project.pk,
        "software": fake_software.pk,
        "cluster": cluster.pk,
        "scenes": [project.mappings.get().source + "shot_a.blend"],
        "frames": "1-4",
        "nodes": "1",
        "priority": "0",
        "movie": "on",
    }
    response = as_bob.post("/submit/", data)
    job = RenderJob.objects.get(movie_of__isnull=True)
    assert response["Location"] == f"/jobs/{job.pk}/"  # the render job, not its movie
    movie = job.movies.get()
    assert (movie.software, movie.output_url, movie.frame_count) == (ffmpeg, job.output_url, 1)
    assert list(movie.after.all()) == [job] and movie.is_waiting

    assert f'hx-get="/jobs/{job.pk}/movie/"' in as_bob.get(f"/jobs/{job.pk}/").content.decode()
    waiting = as_bob.get(f"/jobs/{job.pk}/movie/").content.decode()
    assert f"Job #{movie.pk}</a> encodes the frames once they are all done: queued" in waiting
    assert "<video" not in waiting

    # The movie job finished: the page plays the MP4 from a signed link.
    backend, prefix = storage.resolve(job.output_url)
    backend.write(prefix + movies.MOVIE_NAME, b"\x00\x00\x00\x20ftypisom")
    RenderJob.objects.filter(pk=movie.pk).update(state=JobState.FINISHED)
    made = as_bob.get(f"/jobs/{job.pk}/movie/").content.decode()
    assert '<video id="preview-movie" controls preload="metadata" src="/storage/signed/' in made
    assert "Download the MP4" in made
    assert as_bob.get(f"/jobs/{job.pk}/movie/").status_code == 200
    assert as_bob.get("/jobs/999999/movie/").status_code == 404


def test_an_outsider_gets_no_movie_player(
    client: Any, charlie: Any, project: Any, fake_software: Any, cluster: Any, scene_url, ffmpeg
) -> None:
    request = services.RenderRequest(
        project=project, software=fake_software, cluster=cluster, scenes=[scene_url],
        frames="1", nodes=1, movie=True,
    )  # fmt: skip
    [job] = services.submit_render(request)
    client.force_login(charlie)
    assert client.get(f"/jobs/{job.pk}/movie/").status_code == 404


def test_the_api_and_the_cli_ask_for_a_movie(
    bob: Any, project: Any, fake_software: Any, cluster: Any, scene_url: str, ffmpeg: Any
) -> None:
    from rest_framework.test import APIClient

    from api.services import create_token

    _token, key = create_token(bob, "tests")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    payload = {
        "project": "shots",
        "software": fake_software.pk,
        "cluster": cluster.name,
        "scenes": [scene_url],
        "frames": "1-2",
        "movie": True,
    }
    response = api.post("/api/jobs/", payload, format="json")
    assert response.status_code == 201, response.content
    [body] = response.json()["jobs"]
    movie = RenderJob.objects.get(movie_of_id=body["id"])
    assert body["movie"] == {"job": movie.pk, "state": "queued", "url": None}
    assert api.get(f"/api/jobs/{movie.pk}/").json()["after"] == [body["id"]]

    out = StringIO()
    args = ["--project", "shots", "--software", fake_software.name, "--cluster", cluster.name]
    call_command(
        "submit_render", *args, "--scene", scene_url, "--frames", "1-2", "--movie", stdout=out
    )
    job = RenderJob.objects.filter(movie_of__isnull=True).latest("pk")
    movie = job.movies.get()
    assert out.getvalue().splitlines()[-1] == f"#{movie.pk} shot_a (preview movie)  after #{job.pk}"
