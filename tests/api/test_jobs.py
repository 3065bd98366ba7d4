"""Render jobs over the API: submit, list and filter, detail, tasks, frames, logs, outputs,
cancel and retry, each for the member (bob), the superuser (alice) and the outsider (charlie).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import services as job_services
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import RenderJob
from renderhub import storage
from tests.compute.fixtures import assert_says_the_stop_is_retried, assert_stopped_by_the_poller

pytestmark = pytest.mark.django_db


def submission(project, software, cluster, scene_url, **extra) -> dict:
    return {
        "project": project,
        "software": software,
        "cluster": cluster,
        "scenes": [scene_url],
        "frames": "1-10",
        **extra,
    }


# --- submit -----------------------------------------------------------------------------


def test_a_member_submits_by_names(
    token_client, bob, project, blender_software, cluster, scene_url
):
    response = token_client(bob).post(
        "/api/jobs/",
        submission(
            "shots",
            "blender",
            cluster.name,
            scene_url,
            chunk_size=3,
            priority=-5,  # members may lower theirs (raising is a wrangler's: tests/security)
            parameters={"format": "JPEG"},
            test_frame_first=True,
        ),
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    [data] = body["jobs"]
    job = RenderJob.objects.get(pk=data["id"])
    assert response["Location"].endswith(f"/api/jobs/{job.pk}/")
    assert str(job.submission) == body["submission"]
    assert (job.project, job.software, job.cluster) == (project, blender_software, cluster)
    assert job.submitted_by == bob and job.priority == -5 and job.chunk_size == 3
    assert job.parameters == {"engine": "CYCLES", "format": "JPEG"}
    assert job.tasks.filter(is_test=True).count() == 1
    assert data["state"] == "queued" and data["project"] == "shots"
    assert data["links"]["frames"].endswith(f"/api/jobs/{job.pk}/frames/")


def test_submit_by_ids_makes_one_job_per_scene(
    token_client, alice, project, blender_software, cluster, scene_url, storage_root
):
    (storage_root / "scenes" / "shot_b.blend").write_bytes(b"x")
    payload = submission(project.pk, blender_software.pk, cluster.pk, scene_url, nodes=2)
    payload["scenes"].append(scene_url.replace("shot_a", "shot_b"))
    response = token_client(alice).post("/api/jobs/", payload, format="json")
    assert response.status_code == 201, response.content
    jobs = response.json()["jobs"]
    assert [j["name"] for j in jobs] == ["shot_a", "shot_b"]
    assert len({j["submission"] for j in jobs}) == 1


def test_submission_errors_come_back_per_field(
    token_client, bob, project, blender_software, cluster, scene_url
):
    response = token_client(bob).post(
        "/api/jobs/",
        submission(
            "shots",
            "blender",
            cluster.name,
            scene_url.replace("shot_a", "missing"),
            frames="10-1",
            parameters={"nonsense": 1},
        ),
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()
    assert "does not exist" in errors["scenes"][0]
    assert errors["frames"] and errors["parameters"]
    assert RenderJob.objects.count() == 0


def test_nodes_and_chunk_size_together_are_refused_by_the_service(
    token_client, bob, project, blender_software, cluster, scene_url
):
    both = token_client(bob).post(
        "/api/jobs/",
        submission("shots", "blender", cluster.name, scene_url, nodes=2, chunk_size=2),
        format="json",
    )
    assert both.status_code == 400
    assert both.json() == {"chunk_size": ["Give nodes or a chunk size, not both."]}
    assert RenderJob.objects.count() == 0


def test_submit_validates_the_shape_first(token_client, bob, project, cluster, scene_url):
    client = token_client(bob)
    nested = client.post(
        "/api/jobs/",
        submission("shots", "blender", cluster.name, scene_url, parameters={"a": {"b": 1}}),
        format="json",
    )
    assert nested.status_code == 400 and "plain values" in nested.json()["parameters"][0]
    empty = client.post("/api/jobs/", {}, format="json")
    assert set(empty.json()) >= {"project", "software", "cluster", "scenes", "frames"}


def test_an_outsider_cannot_submit_and_learns_nothing(
    token_client, charlie, project, blender_software, cluster, scene_url
):
    client = token_client(charlie)
    hidden = client.post(
        "/api/jobs/", submission("shots", "blender", cluster.name, scene_url), format="json"
    )
    missing = client.post(
        "/api/jobs/", submission("nope", "blender", cluster.name, scene_url), format="json"
    )
    assert hidden.status_code == missing.status_code == 400
    assert hidden.json()["project"] == ["There is no project 'shots'."]
    assert missing.json()["project"] == ["There is no project 'nope'."]
    assert RenderJob.objects.count() == 0


def test_unknown_software_and_cluster_are_field_errors(token_client, bob, project, scene_url):
    response = token_client(bob).post(
        "/api/jobs/", submission("shots", "maya", "nowhere", scene_url), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "cluster": ["There is no cluster 'nowhere'."],
        "software": ["There is no software 'maya' on this project's image."],
    }


# --- list and detail ----------------------------------------------------------------------


def another_job(job, **fields) -> RenderJob:
    """A bare job row in the same project (list tests need no tasks)."""
    return RenderJob.objects.create(
        project=job.project,
        software=job.software,
        cluster=job.cluster,
        name="another",
        scene_url=job.scene_url,
        frame_spec="1",
        frame_count=1,
        node_count=1,
        output_url=job.output_url,
        **fields,
    )


def test_list_filters_by_state_project_and_creation_time(token_client, bob, charlie, job):
    client = token_client(bob)
    old = another_job(job, state=JobState.FAILED)
    RenderJob.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))

    def ids(query: str) -> list[int]:
        response = client.get("/api/jobs/" + query)
        assert response.status_code == 200, response.content
        return [j["id"] for j in response.json()["results"]]

    assert ids("") == [job.pk, old.pk]  # newest first
    assert ids("?state=failed") == [old.pk]
    assert ids("?state=queued,failed") == [job.pk, old.pk]
    assert ids("?state=queued&state=running") == [job.pk]
    assert ids("?project=shots") == ids(f"?project={job.project_id}") == [job.pk, old.pk]
    assert ids("?project=other") == []
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(f"?created_after={since.replace('+', '%2B')}") == [job.pk]
    assert ids(f"?created_before={since.replace('+', '%2B')}") == [old.pk]
    assert client.get("/api/jobs/?state=bogus").status_code == 400
    assert client.get("/api/jobs/?created_after=yesterday").status_code == 400
    assert token_client(charlie).get("/api/jobs/").json()["results"] == []


def test_list_pages_with_a_cursor(token_client, alice, job):
    for _ in range(4):
        another_job(job)
    client = token_client(alice)
    seen, url = [], "/api/jobs/?page_size=2"
    while url:
        page = client.get(url).json()
        assert len(page["results"]) <= 2
        seen += [j["id"] for j in page["results"]]
        url = page["next"]
    assert sorted(seen, reverse=True) == seen and len(seen) == len(set(seen)) == 5


def test_detail_is_404_for_outsiders_and_for_nothing(token_client, bob, charlie, job):
    assert token_client(bob).get(f"/api/jobs/{job.pk}/").json()["frame_count"] == 6
    client = token_client(charlie)
    for path in ("", "tasks/", "frames/", "logs/", "outputs/"):
        assert client.get(f"/api/jobs/{job.pk}/{path}").status_code == 404, path
    for action in ("cancel", "retry"):
        assert client.post(f"/api/jobs/{job.pk}/{action}/").status_code == 404
    assert client.get("/api/jobs/99999999/").status_code == 404
    job.refresh_from_db()
    assert job.state == JobState.QUEUED


# --- tasks, frames, logs, outputs ---------------------------------------------------------


def test_tasks_and_frames(token_client, bob, job):
    client = token_client(bob)
    tasks = client.get(f"/api/jobs/{job.pk}/tasks/").json()["results"]
    assert [(t["index"], t["frame_label"]) for t in tasks] == [(0, "1-3"), (1, "4-6")]
    task = job.tasks.get(index=0)
    job_services.frame_done(
        task,
        2,
        seconds=1.5,
        output_url=job.output_url + "f2.png",
        thumbnail_url=job.output_url + "_thumbs/f2.jpg",
    )
    frames = client.get(f"/api/jobs/{job.pk}/frames/?page_size=4").json()
    assert [f["number"] for f in frames["results"]] == [1, 2, 3, 4] and frames["next"]
    done = client.get(f"/api/jobs/{job.pk}/frames/?state=done").json()["results"]
    assert [(f["number"], f["task"], f["seconds"]) for f in done] == [(2, 0, 1.5)]
    assert "/storage/signed/" in done[0]["output_link"]
    assert done[0]["output_link"].startswith("http://testserver/")
    queued = client.get(f"/api/jobs/{job.pk}/frames/?state=queued").json()["results"]
    assert len(queued) == 5 and queued[0]["output_link"] is None
    assert client.get(f"/api/jobs/{job.pk}/frames/?state=weird").status_code == 400


def test_logs_give_tails_from_the_database_and_links_to_the_files(token_client, bob, job, client):
    task = job.tasks.get(index=1)
    log_url = storage.join(job.output_url, "_logs/task-1/")
    backend, key = storage.resolve(storage.join(log_url, "stderr.log"))
    backend.write(key, b"the whole stderr\nError: out of memory\n")
    type(task).objects.filter(pk=task.pk).update(
        log_url=log_url, stderr_tail="Error: out of memory", state=TaskState.FAILED
    )
    api = token_client(bob)
    logs = api.get(f"/api/jobs/{job.pk}/logs/").json()["results"]
    assert [entry["task"] for entry in logs] == [0, 1]
    assert logs[0]["stderr"] == {"tail": "", "link": None}
    assert logs[1]["stderr"]["tail"] == "Error: out of memory"
    only = api.get(f"/api/jobs/{job.pk}/logs/?task=1").json()["results"]
    assert [entry["task"] for entry in only] == [1]
    download = client.get(only[0]["stderr"]["link"].removeprefix("http://testserver"))
    assert download.status_code == 200
    assert b"".join(download.streaming_content).endswith(b"out of memory\n")


def test_outputs_list_files_with_signed_links(token_client, bob, job, client):
    backend, prefix = storage.resolve(job.output_url)
    for name in ("shot_a_0001.png", "shot_a_0002.png", "_thumbs/shot_a_0001.jpg", "_logs/x.log"):
        backend.write(prefix + name, b"pixels" + name.encode())
    api = token_client(bob)
    outputs = api.get(f"/api/jobs/{job.pk}/outputs/").json()
    assert outputs["count"] == 2
    first = outputs["results"][0]
    assert first["name"] == "shot_a_0001.png" and first["size"] == len(
        b"pixels" + b"shot_a_0001.png"
    )
    assert first["url"].startswith("file:///")
    body = client.get(first["link"].removeprefix("http://testserver"))
    assert b"".join(body.streaming_content) == b"pixelsshot_a_0001.png"


def test_outputs_of_a_job_with_nothing_yet(token_client, bob, job):
    assert token_client(bob).get(f"/api/jobs/{job.pk}/outputs/").json()["results"] == []


# --- cancel and retry -------------------------------------------------------------------


def test_cancel_then_retry(token_client, bob, job):
    client = token_client(bob)
    cancelled = client.post(f"/api/jobs/{job.pk}/cancel/")
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["tasks"] == 2
    assert cancelled.json()["detail"] == f"Cancelled job #{job.pk} (2 chunks stopped)."
    assert cancelled.json()["warnings"] == []
    assert cancelled.json()["job"]["state"] == JobState.CANCELLED
    again = client.post(f"/api/jobs/{job.pk}/cancel/")
    assert again.status_code == 409
    assert again.json()["detail"] == f"Job #{job.pk} is already cancelled; nothing to cancel."

    retried = client.post(f"/api/jobs/{job.pk}/retry/")
    assert retried.status_code == 200, retried.content
    assert retried.json()["tasks"] == 2 and retried.json()["job"]["state"] == JobState.QUEUED
    assert client.post(f"/api/jobs/{job.pk}/retry/").status_code == 409  # active again


def test_cancel_warns_when_the_cloud_job_could_not_be_stopped_yet(
    token_client, alice, unstoppable_cloud_job, fake_bc
):
    job = unstoppable_cloud_job
    response = token_client(alice).post(f"/api/jobs/{job.pk}/cancel/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["detail"] == f"Cancelled job #{job.pk} (3 chunks stopped)."
    assert body["job"]["state"] == JobState.CANCELLED and body["tasks"] == 3
    [warning] = body["warnings"]
    assert_says_the_stop_is_retried(job, warning)
    assert_stopped_by_the_poller(job, fake_bc)


def test_retry_with_nothing_to_retry_is_a_conflict(token_client, bob, job):
    job.tasks.update(state=TaskState.DONE)
    job.frame_set.update(state=FrameState.DONE)
    RenderJob.objects.filter(pk=job.pk).update(state=JobState.FINISHED)
    response = token_client(bob).post(f"/api/jobs/{job.pk}/retry/")
    assert response.status_code == 409 and "no failed or cancelled" in response.json()["detail"]
