"""A Cromwell server's call cache never hands one project another project's results.

The attack: a member of project B learns (or guesses) the WDL and inputs project A ran on
the Cromwell server they share, and submits the same: Cromwell would find A's calls in its
cache and give B (copies of) A's outputs without running anything. Submitted through the
API as B would, against a fake Cromwell: B's run tells the shared server not to read its
cache, whatever B's options ask; A's own server (CROMWELL_PROJECT_URLS) never sees B's run.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from projects.models import Project, StorageMapping
from tests.fakes.cromwell import FakeCromwell
from tests.workflows.conftest import (
    TINY_WDL,
    cromwell,  # noqa: F401  (the shared server)
)
from workflows import services
from workflows.choices import RunState
from workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def project_b(image: Any, storage_url: str, charlie: Any) -> Project:
    other = Project.objects.create(name="b-lab", image=image, output_prefix=storage_url + "b/")
    StorageMapping.objects.create(project=other, source=storage_url + "b-in/", destination="/b/")
    other.members.add(charlie)
    return other


def submit_as(user: Any, project: Project, options: dict[str, Any]) -> WorkflowRun:
    api = APIClient()
    api.force_authenticate(user)
    answer = api.post(
        "/api/workflows/",
        {
            "project": project.name,
            "engine": "cromwell",
            "wdl_source": TINY_WDL,
            "inputs": {"tiny.n": 2},
            "options": options,
        },
        format="json",
    )
    assert answer.status_code == 201, answer.content
    run = WorkflowRun.objects.get(pk=answer.json()["id"])
    assert services.start_run(run.pk, "worker") == RunState.SUBMITTED
    return run


def test_the_same_workflow_from_another_project_never_reads_the_shared_cache(
    bob: Any,
    charlie: Any,
    project: Any,
    project_b: Project,
    cromwell: FakeCromwell,  # noqa: F811
) -> None:
    submit_as(bob, project, {})
    submit_as(charlie, project_b, {"read_from_cache": True})

    sent = [w.options for w in cromwell.workflows.values()]
    assert len(sent) == 2
    assert all(options["read_from_cache"] is False for options in sent)


def test_a_projects_own_server_never_sees_another_projects_runs(
    bob: Any,
    charlie: Any,
    project: Any,
    project_b: Project,
    cromwell: FakeCromwell,  # noqa: F811
    settings: Any,
) -> None:
    with FakeCromwell() as own:
        settings.CROMWELL_PROJECT_URLS = {project.name: own.url}
        submit_as(bob, project, {})
        submit_as(charlie, project_b, {"read_from_cache": True})

        assert len(own.workflows) == 1
        assert own.only().labels["renderhub-run"] == str(
            WorkflowRun.objects.get(project=project).pk
        )
        assert cromwell.only().options["read_from_cache"] is False
