"""Who sees what: a login everywhere but /healthz, and projects fence off their jobs.

alice is a superuser, bob a member of ``shots``, charlie a member of nothing; here dave
is the member of ``ads``. bob and charlie are staff with the admin's model permissions
granted, so only project membership decides what they see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Permission

from jobs import services
from jobs.choices import JobState
from jobs.models import Frame, RenderJob, Task
from projects.models import Project, StorageMapping

pytestmark = pytest.mark.django_db

ADMIN_MODELS = ("renderjob", "task", "frame", "project")
PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"


@pytest.fixture(autouse=True)
def _admin_settings(settings: Any) -> None:
    """Cheap password hashing; static URLs without a collectstatic manifest (fresh var/)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}


def grant(user: Any, *actions: str) -> Any:
    codenames = [f"{action}_{model}" for action in actions for model in ADMIN_MODELS]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def ads(image: Any, storage_url: str, storage_root: Path, django_user_model: Any) -> Project:
    project = Project.objects.create(name="ads", image=image, output_prefix=storage_url + "ads/")
    StorageMapping.objects.create(
        project=project, source=storage_url + "ads-scenes/", destination="/mnt/ads/"
    )
    project.members.add(django_user_model.objects.create_user("dave", password="pw-dave-1"))
    scene = storage_root / "ads-scenes" / "spot_commercial.blend"
    scene.parent.mkdir(parents=True)
    scene.write_bytes(b"spot")
    return project


def submit(project: Project, software: Any, cluster: Any, scene: str) -> RenderJob:
    request = services.RenderRequest(
        project=project, software=software, cluster=cluster, scenes=[scene], frames="1-4", nodes=2
    )
    return services.submit_render(request)[0]


@pytest.fixture
def shots_job(project: Project, blender_software: Any, cluster: Any, scene_url: str) -> RenderJob:
    return submit(project, blender_software, cluster, scene_url)


@pytest.fixture
def ads_job(ads: Project, blender_software: Any, cluster: Any, storage_url: str) -> RenderJob:
    return submit(ads, blender_software, cluster, storage_url + "ads-scenes/spot_commercial.blend")


# --- a login everywhere -----------------------------------------------------------------


@pytest.mark.embedded
@pytest.mark.parametrize(
    "url", ["/admin/", "/admin/status/", "/admin/jobs/renderjob/", "/admin/jobs/renderjob/submit/"]
)
def test_anonymous_users_are_sent_to_the_login(client: Any, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.embedded
def test_the_login_page_itself_needs_no_login(client: Any) -> None:
    assert client.get("/admin/login/").status_code == 200


@pytest.mark.embedded
def test_the_site_root_is_the_dashboard_behind_a_login(client: Any, alice: Any) -> None:
    anonymous = client.get("/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/login/?next=/")
    client.force_login(alice)
    response = client.get("/")
    assert response.status_code == 200
    assert b"Dashboard" in response.content


# --- querysets --------------------------------------------------------------------------


@pytest.mark.embedded
def test_projects_visible_to_each_persona(
    project: Project, ads: Project, alice: Any, bob: Any, charlie: Any
) -> None:
    def names(user: Any) -> list[str]:
        return list(Project.objects.visible_to(user).values_list("name", flat=True))

    assert names(alice) == ["ads", "shots"]
    assert names(bob) == ["shots"]
    assert names(charlie) == []
    assert names(AnonymousUser()) == []
    assert project.is_member(bob) and not ads.is_member(bob)


def test_jobs_visible_to_each_persona(
    shots_job: RenderJob, ads_job: RenderJob, alice: Any, bob: Any, charlie: Any
) -> None:
    def ids(user: Any) -> set[int]:
        return set(RenderJob.objects.visible_to(user).values_list("pk", flat=True))

    assert ids(alice) == {shots_job.pk, ads_job.pk}
    assert ids(bob) == {shots_job.pk}
    assert ids(charlie) == set()
    assert ids(AnonymousUser()) == set()


def test_a_staff_flag_alone_does_not_reveal_other_projects(
    ads_job: RenderJob, django_user_model: Any
) -> None:
    staff = django_user_model.objects.create_user("eve", password="pw-eve-1", is_staff=True)
    assert not RenderJob.objects.visible_to(staff).exists()
    assert not Project.objects.visible_to(staff).exists()


# --- the admin --------------------------------------------------------------------------


def test_bob_sees_only_his_projects_jobs(
    client: Any, bob: Any, shots_job: RenderJob, ads_job: RenderJob
) -> None:
    client.force_login(grant(bob, "view"))
    response = client.get("/admin/jobs/renderjob/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f"/admin/jobs/renderjob/{shots_job.pk}/change/" in html
    assert f"/admin/jobs/renderjob/{ads_job.pk}/change/" not in html
    assert "spot_commercial" not in html
    # Not even the other project's name, e.g. in the list filter.
    assert "?project__id__exact=" + str(ads_job.project_id) not in html
    assert ">ads<" not in html


def test_bob_sees_only_his_projects_chunks_and_frames(
    client: Any, bob: Any, shots_job: RenderJob, ads_job: RenderJob
) -> None:
    client.force_login(grant(bob, "view"))
    tasks = client.get("/admin/jobs/task/").content.decode()
    for task in Task.objects.filter(job=shots_job):
        assert f"/admin/jobs/task/{task.pk}/change/" in tasks
    for task in Task.objects.filter(job=ads_job):
        assert f"/admin/jobs/task/{task.pk}/change/" not in tasks
    frames = client.get("/admin/jobs/frame/").content.decode()
    for frame in Frame.objects.filter(job=ads_job):
        assert f"/admin/jobs/frame/{frame.pk}/change/" not in frames
    assert any(
        f"/admin/jobs/frame/{f.pk}/change/" in frames for f in Frame.objects.filter(job=shots_job)
    )


def test_bob_cannot_open_another_projects_pages(
    client: Any, bob: Any, shots_job: RenderJob, ads_job: RenderJob, ads: Project
) -> None:
    client.force_login(grant(bob, "view", "change"))
    assert client.get(f"/admin/jobs/renderjob/{shots_job.pk}/change/").status_code == 200
    ads_task = ads_job.tasks.first()
    for url in (
        f"/admin/jobs/renderjob/{ads_job.pk}/change/",
        f"/admin/jobs/task/{ads_task.pk}/change/",
        f"/admin/projects/project/{ads.pk}/change/",
    ):
        response = client.get(url)
        assert response.status_code in (302, 404), url
        if response.status_code == 302:
            assert response["Location"] == "/admin/"  # "doesn't exist", like a missing object
        assert "spot_commercial" not in response.content.decode()


def test_bob_sees_only_his_projects(client: Any, bob: Any, project: Project, ads: Project) -> None:
    client.force_login(grant(bob, "view"))
    html = client.get("/admin/projects/project/").content.decode()
    assert f"/admin/projects/project/{project.pk}/change/" in html
    assert f"/admin/projects/project/{ads.pk}/change/" not in html


def test_charlie_sees_nothing(
    client: Any, charlie: Any, shots_job: RenderJob, ads_job: RenderJob
) -> None:
    client.force_login(grant(charlie, "view"))
    for url in ("/admin/jobs/renderjob/", "/admin/jobs/task/", "/admin/projects/project/"):
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert "/change/" not in html.split('id="changelist"', 1)[-1], url
        assert "shot_a" not in html and "spot_commercial" not in html


def test_bob_cannot_act_on_another_projects_job(
    client: Any, bob: Any, shots_job: RenderJob, ads_job: RenderJob
) -> None:
    client.force_login(grant(bob, "view", "change"))
    client.post(
        "/admin/jobs/renderjob/",
        {"action": "cancel_jobs", "_selected_action": [str(ads_job.pk), str(shots_job.pk)]},
    )
    ads_job.refresh_from_db()
    shots_job.refresh_from_db()
    assert ads_job.state == JobState.QUEUED
    assert shots_job.state == JobState.CANCELLED


def test_a_view_only_user_cannot_cancel(client: Any, bob: Any, shots_job: RenderJob) -> None:
    client.force_login(grant(bob, "view"))
    html = client.get("/admin/jobs/renderjob/").content.decode()
    assert 'value="cancel_jobs"' not in html
    client.post(
        "/admin/jobs/renderjob/",
        {"action": "cancel_jobs", "_selected_action": [str(shots_job.pk)]},
    )
    shots_job.refresh_from_db()
    assert shots_job.state == JobState.QUEUED


def test_the_submit_form_offers_only_member_projects(
    client: Any, bob: Any, project: Project, ads: Project, cluster: Any
) -> None:
    client.force_login(bob)
    html = client.get("/admin/jobs/renderjob/submit/").content.decode()
    assert f'<option value="{project.pk}">shots</option>' in html
    assert ">ads<" not in html
    response = client.post(
        "/admin/jobs/renderjob/submit/",
        {
            "project": ads.pk,
            "software": ads.image.software.get(name="blender").pk,
            "cluster": cluster.pk,
            "scenes": ads.mappings.get().source + "spot_commercial.blend",
            "frames": "1-4",
            "priority": 0,
        },
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not RenderJob.objects.filter(project=ads).exists()


def test_nul_bytes_in_parameters_get_a_400(client: Any, alice: Any) -> None:
    client.force_login(alice)
    assert client.get("/jobs/", {"q": "a\x00b"}).status_code == 400
    assert client.post("/submit/", {"frames": "1\x00"}).status_code == 400
    assert client.get("/jobs/", {"q": "ab"}).status_code == 200
