"""Finding 3 of issue 11, part one: any member ran host commands through WDL.

A project member who is not even staff, with nothing but an API token, submitted a WDL to
the default ``miniwdl`` engine, whose task commands run on a worker. Submitting to it now
needs the ``workflows.run_on_host`` permission (superusers have it), checked in
``workflows.services.submit`` before anything is read or created: the API answers 403 with
the reason, the CLI and the forms show it, nothing runs. Engines that run tasks elsewhere
(Cromwell) stay open to members.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from api import services as api_services
from tests.workflows.grants import grant_run_on_host
from workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db

STEAL_KEY = """version 1.0
workflow steal {
  input { String path }
  call cat_it { input: path = path }
  output { String key = cat_it.out }
}
task cat_it {
  input { String path }
  command <<< cat "~{path}" >>>
  output { String out = read_string(stdout()) }
}
"""


@pytest.fixture(autouse=True)
def _workflow_dirs(settings: Any, _private_dirs: Any) -> None:
    settings.WORKFLOW_WORK_DIR = _private_dirs / "workflows"


@pytest.fixture
def member(django_user_model: Any, project: Any) -> Any:
    """A project member who is not staff: the API is all they have."""
    user = django_user_model.objects.create_user("dana", "dana@example.com", "pw-dana-1")
    project.members.add(user)
    return user


def api(user: Any) -> APIClient:
    _token, key = api_services.create_token(user, "attack")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def submit(user: Any, engine: str = "miniwdl") -> Any:
    body = {
        "project": "shots",
        "engine": engine,
        "wdl_source": STEAL_KEY,
        "inputs": {"steal.path": "/etc/hostname"},
    }
    return api(user).post("/api/workflows/", body, format="json")


def test_a_member_without_the_permission_is_refused_and_nothing_runs(
    member: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = submit(member)

    assert response.status_code == 403, response.content
    detail = response.json()["detail"]
    assert "needs the permission" in detail and "workflows.run_on_host" in detail
    assert not WorkflowRun.objects.exists()
    assert callbacks == []  # no start task enqueued
    assert not settings.WORKFLOW_WORK_DIR.exists()  # nothing staged, nothing ran


def test_staff_members_are_refused_too(bob: Any, project: Any) -> None:
    response = submit(bob)

    assert response.status_code == 403
    assert not WorkflowRun.objects.exists()


def test_the_cli_acting_as_a_member_is_refused(bob: Any, project: Any, tmp_path: Any) -> None:
    wdl = tmp_path / "steal.wdl"
    wdl.write_text(STEAL_KEY)

    with pytest.raises(CommandError) as refused:
        call_command("submit_workflow", str(wdl), "--project", "shots", "--as-user", "bob")

    assert "engine: Running workflows on this machine" in str(refused.value)
    assert not WorkflowRun.objects.exists()


def test_the_permission_granted_in_the_admin_lets_a_member_submit(
    member: Any, alice: Any, project: Any, client: Any
) -> None:
    from django.contrib.auth.models import Group, Permission

    client.force_login(alice)  # the admin's group page offers the permission by its name
    page = client.get("/admin/auth/group/add/").content.decode()
    assert "Can run workflows on this machine (miniwdl engine)" in page
    group = Group.objects.create(name="pipelines")
    group.permissions.add(Permission.objects.get(codename="run_on_host"))
    member.groups.add(group)

    assert submit(member).status_code == 201


def test_superusers_have_it_and_cromwell_needs_none(
    alice: Any, member: Any, project: Any, cromwell_url: str
) -> None:
    project.members.add(alice)

    assert submit(alice).status_code == 201
    assert submit(member, engine="cromwell").status_code == 201  # tasks run on Cromwell's side
    assert submit(grant_run_on_host(member)).status_code == 201


@pytest.fixture
def cromwell_url(settings: Any) -> Any:
    from tests.fakes.cromwell import FakeCromwell

    with FakeCromwell() as fake:
        settings.CROMWELL_URL = fake.url
        yield fake.url
