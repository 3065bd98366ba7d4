"""The submit page: project choice, typed parameters, errors next to fields, the estimate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from clusters.models import Cluster
from jobs import queries
from jobs.models import RenderJob
from projects.models import Project

pytestmark = pytest.mark.django_db


@pytest.fixture
def form_data(project: Any, fake_software: Any, cluster: Any, storage_tree: Any) -> dict[str, Any]:
    scenes = project.mappings.get().source
    return {
        "project": project.pk,
        "software": fake_software.pk,
        "cluster": cluster.pk,
        "scenes": [scenes + "shot_a.blend", scenes + "seq/shot_b.blend"],
        "frames": "1-10",
        "nodes": "2",
        "priority": "0",
        "param_mode": "slow",
    }


def test_without_a_project_it_offers_the_users_projects(as_bob: Any, project: Any) -> None:
    text = as_bob.get("/submit/").content.decode()
    assert f'href="?project={project.pk}"' in text


def test_outsiders_cannot_open_or_post_to_a_project(
    as_charlie: Any, project: Any, form_data: dict[str, Any]
) -> None:
    assert "not a member of any project" in as_charlie.get("/submit/").content.decode()
    assert as_charlie.get(f"/submit/?project={project.pk}").status_code == 404
    assert as_charlie.post("/submit/", form_data).status_code == 404
    assert as_charlie.get(f"/submit/estimate/?project={project.pk}").status_code == 404
    assert as_charlie.get("/submit/?project=abc").status_code == 404
    assert not RenderJob.objects.exists()


def test_the_form_has_typed_fields_for_the_softwares_parameters(
    as_bob: Any, project: Any, fake_software: Any, blender_software: Any
) -> None:
    page = as_bob.get(f"/submit/?project={project.pk}&software={fake_software.pk}")
    form = page.context["form"]
    assert {"ok", "fail", "slow"} <= {value for value, _ in form.fields["param_mode"].choices}
    assert form.fields["param_mode"].initial == "ok"
    blender = as_bob.get(
        f"/submit/?project={project.pk}&software={blender_software.pk}", HTTP_HX_REQUEST="true"
    )
    text = blender.content.decode()
    assert 'name="param_engine"' in text and 'name="param_format"' in text
    assert 'id="browser"' in text and 'hx-swap-oob="true"' in text  # re-filtered by suffix
    assert "<html" not in text


def test_submitting_creates_one_job_per_scene_through_the_service(
    as_bob: Any, bob: Any, form_data: dict[str, Any]
) -> None:
    response = as_bob.post("/submit/", form_data)
    jobs = list(RenderJob.objects.order_by("pk"))
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/?project={form_data['project']}"
    assert [j.name for j in jobs] == ["shot_a", "shot_b"]
    assert all(j.submitted_by == bob and j.frame_count == 10 for j in jobs)
    assert jobs[0].parameters == {"mode": "slow"}
    assert jobs[0].submission == jobs[1].submission


def test_one_scene_goes_straight_to_its_job(as_bob: Any, form_data: dict[str, Any]) -> None:
    form_data["scenes"] = form_data["scenes"][:1]
    form_data["test_frame_first"] = "on"
    response = as_bob.post("/submit/", form_data)
    job = RenderJob.objects.get()
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert job.test_frame_first and job.tasks.filter(is_test=True).count() == 1


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"frames": "10-1"}, "frames", "runs backwards"),
        ({"frames": ""}, "frames", "required"),
        ({"nodes": "0"}, "nodes", "greater than or equal to 1"),
        ({"nodes": "2", "chunk_size": "5"}, "chunk_size", "not both"),
        ({"nodes": "99"}, "nodes", "between 1 and 4"),
        ({"param_mode": "explode"}, "param_mode", "Select a valid choice"),
        ({"scenes": []}, "scenes", "Choose at least one scene"),
        ({"scenes": ["file:///etc/passwd.blend"]}, "scenes", "outside"),
        ({"scenes": ["SCENES/../secret/other.blend"]}, "scenes", ""),
        ({"scenes": ["SCENES/missing.blend"]}, "scenes", "does not exist"),
        ({"scenes": ["SCENES/seq/notes.txt"]}, "scenes", "not a fakerender scene"),
        ({"cluster": "999"}, "cluster", "Select a valid choice"),
        ({"software": "999"}, "software", "Select a valid choice"),
    ],
)
def test_bad_input_is_an_error_next_to_its_field(
    as_bob: Any, form_data: dict[str, Any], change: dict[str, Any], field: str, message: str
) -> None:
    source = Project.objects.get().mappings.get().source
    for key, value in change.items():
        if key == "scenes":
            value = [v.replace("SCENES/", source) for v in value]
        form_data[key] = value
    response = as_bob.post("/submit/", form_data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert not RenderJob.objects.exists()


def test_a_cluster_of_another_image_is_not_offered(
    as_bob: Any, form_data: dict[str, Any], project: Any
) -> None:
    from images.models import ComputeImage

    other = ComputeImage.objects.create(name="win", image_id="m-win")
    alien = Cluster.objects.create(name="alien", image=other)
    page = as_bob.get(f"/submit/?project={project.pk}")
    assert alien not in page.context["form"].fields["cluster"].queryset
    form_data["cluster"] = alien.pk
    assert "cluster" in as_bob.post("/submit/", form_data).context["form"].errors


def test_the_estimate_uses_the_projects_measured_speed(
    as_bob: Any, job: RenderJob, cluster: Any, fake_software: Any
) -> None:
    # job: 2 frames done in 2 s each, so 2 s per frame.
    url = (
        f"/submit/estimate/?project={job.project_id}&software={fake_software.pk}"
        f"&cluster={cluster.pk}&frames=1-100&nodes=4&scenes=a&scenes=b"
    )
    estimate = as_bob.get(url).context["estimate"]
    assert estimate.frames == 200 and estimate.parallel == 4
    assert estimate.seconds_per_frame == pytest.approx(2.0)
    assert estimate.wall_seconds == pytest.approx(100.0)
    assert estimate.cost is None  # this cluster has no hourly price
    assert "About 1:40" in as_bob.get(url).content.decode()
    bad = as_bob.get(f"/submit/estimate/?project={job.project_id}&frames=1-x")
    assert bad.status_code == 200 and bad.context["estimate"] is None
    assert "&#x27;1-x&#x27; is not a frame" in bad.content.decode()  # the reason, not silence


def test_the_estimate_prices_node_hours(job: RenderJob, cluster: Any) -> None:
    Cluster.objects.filter(pk=cluster.pk).update(hourly_price=Decimal("1.80"))
    cluster.refresh_from_db()
    estimate = queries.estimate(job.project, None, cluster, 3600, 1, None, 100)
    # 3600 frames x 2 s on the cluster's 2 nodes (36 chunks of 100): 2 node-hours.
    assert estimate.parallel == 2
    assert estimate.node_hours == pytest.approx(2.0)
    assert estimate.cost == Decimal("3.60")


def test_no_history_means_no_time_estimate(as_bob: Any, project: Any) -> None:
    text = as_bob.get(f"/submit/estimate/?project={project.pk}&frames=1-48").content.decode()
    assert "48 frames" in text and "No time estimate yet" in text
