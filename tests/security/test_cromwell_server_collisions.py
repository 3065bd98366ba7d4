"""A Cromwell server is a project's own only when no other project sends runs there.

CROMWELL_PROJECT_URLS names each project's server by hand. Name one server for two projects
(a copy-pasted line), or give a project the shared CROMWELL_URL itself (with or without a
trailing slash), and each project counted it as its own: their runs read its call cache,
so one project's member received the other's results by submitting the same calls.
Submitted through the API, against fake Cromwell servers: such a server is shared, and
runs on it never read its cache (CROMWELL_SHARED_CACHE still allows it on purpose).
"""

from __future__ import annotations

from typing import Any

import pytest

from projects.models import Project
from tests.fakes.cromwell import FakeCromwell
from tests.security.test_cromwell_cache_isolation import project_b, submit_as
from tests.workflows.conftest import cromwell  # noqa: F401  (the shared server)
from workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db
__all__ = ["project_b"]


def test_one_server_named_for_two_projects_is_nobodys_own(
    bob: Any, charlie: Any, project: Any, project_b: Project, settings: Any
) -> None:
    with FakeCromwell() as server:
        settings.CROMWELL_PROJECT_URLS = {project.name: server.url, project_b.name: server.url}
        submit_as(bob, project, {})
        run = submit_as(charlie, project_b, {"read_from_cache": True})

        assert len(server.workflows) == 2
        assert all(w.options["read_from_cache"] is False for w in server.workflows.values())
        assert any("also another project's" in w for w in run.warnings)


def test_the_shared_server_named_as_a_projects_own_is_still_shared(
    bob: Any,
    charlie: Any,
    project: Any,
    project_b: Project,
    cromwell: FakeCromwell,  # noqa: F811
    settings: Any,
) -> None:
    settings.CROMWELL_PROJECT_URLS = {project.name: cromwell.url + "/"}
    submit_as(charlie, project_b, {})
    submit_as(bob, project, {"read_from_cache": True})

    assert len(cromwell.workflows) == 2
    assert all(w.options["read_from_cache"] is False for w in cromwell.workflows.values())
    assert WorkflowRun.objects.get(project=project).engine_url == cromwell.url + "/"


def test_sharing_allowed_on_purpose_still_reads_the_cache(
    bob: Any, project: Any, project_b: Project, settings: Any
) -> None:
    with FakeCromwell() as server:
        settings.CROMWELL_PROJECT_URLS = {project.name: server.url, project_b.name: server.url}
        settings.CROMWELL_SHARED_CACHE = True
        submit_as(bob, project, {"read_from_cache": True})

        assert server.only().options["read_from_cache"] is True
