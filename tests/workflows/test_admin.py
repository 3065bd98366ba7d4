"""The admin: runs of member projects only, with the abort and resubmit actions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

from workflows.choices import RunState
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

CHANGELIST = "/admin/workflows/workflowrun/"


def staff(client: Any, user: Any) -> Any:
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_workflowrun", "change_workflowrun", "view_call"]
        )
    )
    client.force_login(user)
    return client


def test_the_changelist_shows_member_runs_only(
    client: Any, finished_run: Any, bob: Any, charlie: Any
) -> None:
    assert f"{finished_run.pk}/change/" in staff(client, bob).get(CHANGELIST).content.decode()

    outsider = staff(client, charlie)
    assert f"{finished_run.pk}/change/" not in outsider.get(CHANGELIST).content.decode()
    assert outsider.get(f"{CHANGELIST}{finished_run.pk}/change/").status_code == 302


def test_the_change_page_has_the_calls_inline(client: Any, finished_run: Any, bob: Any) -> None:
    page = staff(client, bob).get(f"{CHANGELIST}{finished_run.pk}/change/").content.decode()

    assert "tiny.greet" in page and "Calls" in page
    assert f"/workflows/{finished_run.pk}/" in page


def test_the_abort_action(client: Any, submit: Any, tiny_wdl: str, bob: Any) -> None:
    run = submit(tiny_wdl)

    staff(client, bob).post(
        CHANGELIST, {"action": "abort_runs", "_selected_action": [run.pk]}, follow=True
    )

    run.refresh_from_db()
    assert run.state == RunState.ABORTED


def test_the_resubmit_action(client: Any, finished_run: Any, host_runner: Any) -> None:
    bob = host_runner
    response = staff(client, bob).post(
        CHANGELIST, {"action": "resubmit_runs", "_selected_action": [finished_run.pk]}, follow=True
    )

    new = WorkflowRun.objects.latest("id")
    assert new.resubmitted_from_id == finished_run.pk and new.submitted_by == bob
    assert f"Resubmitted as #{new.pk}." in response.content.decode()


def test_nobody_adds_runs_without_validation(client: Any, alice: Any) -> None:
    client.force_login(alice)

    assert client.get(f"{CHANGELIST}add/").status_code == 403


def test_the_submit_form_creates_a_run(
    client: Any, project: Any, host_runner: Any, tiny_wdl: str
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    bob = host_runner
    admin = staff(client, bob)
    assert "Submit workflow" in admin.get(CHANGELIST).content.decode()
    form = {
        "project": project.pk,
        "engine": "miniwdl",
        "wdl_file": SimpleUploadedFile("tiny.wdl", tiny_wdl.encode()),
        "inputs": '{"tiny.n": 3}',
        "options": "",
        "labels": "batch=7",
    }

    response = admin.post(f"{CHANGELIST}submit/", form)

    run = WorkflowRun.objects.get()
    assert response.status_code == 302
    assert (run.inputs, run.labels, run.submitted_by) == ({"tiny.n": 3}, {"batch": "7"}, bob)


def test_the_submit_form_shows_every_problem_and_creates_nothing(
    client: Any, project: Any, host_runner: Any, tiny_wdl: str
) -> None:
    bob = host_runner
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = {
        "project": project.pk,
        "engine": "miniwdl",
        "wdl_file": SimpleUploadedFile("tiny.wdl", tiny_wdl.replace("Int n", "Itn n").encode()),
        "inputs": '{"tiny.n": 3,}',
        "options": "[]",
    }

    page = staff(client, bob).post(f"{CHANGELIST}submit/", form).content.decode()

    assert "This is not valid JSON: Expecting property name enclosed in double quotes" in page
    form["inputs"] = '{"tiny.n": "three"}'
    form["wdl_file"] = SimpleUploadedFile("tiny.wdl", tiny_wdl.replace("Int n", "Itn n").encode())
    page = staff(client, bob).post(f"{CHANGELIST}submit/", form).content.decode()
    assert "line 5, column 5: error: Unknown type Itn" in page
    assert "The options must be a JSON object" in page
    assert not WorkflowRun.objects.exists()


def test_the_submit_form_says_miniwdl_needs_the_permission(
    client: Any, project: Any, bob: Any, tiny_wdl: str
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = {
        "project": project.pk,
        "engine": "miniwdl",
        "wdl_file": SimpleUploadedFile("tiny.wdl", tiny_wdl.encode()),
    }

    page = staff(client, bob).post(f"{CHANGELIST}submit/", form).content.decode()

    assert "needs the permission" in page and "workflows.run_on_host" in page
    assert not WorkflowRun.objects.exists()


def test_the_submit_form_offers_member_projects_only(
    client: Any, project: Any, charlie: Any
) -> None:
    page = staff(client, charlie).get(f"{CHANGELIST}submit/").content.decode()

    assert f'value="{project.pk}"' not in page
