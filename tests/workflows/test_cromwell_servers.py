"""Which Cromwell server a run goes to and whether it reads the server's call cache
(issue 17): a shared server's cache is not read (another project's results could come
back) unless the install says projects may share; a project's own server is; a run keeps
the server it went to; a task-only WDL is refused for Cromwell before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workflows import services
from workflows.choices import Engine, RunState
from workflows.engines.cromwell_servers import SHARED_CACHE_NOTE
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

TASK_ONLY = (Path(__file__).parent / "corpus" / "task_only.wdl").read_text()


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workflows.engines.cromwell.BACKOFF", 0.01)


@pytest.fixture
def own_cromwell(settings: Any, project: Any) -> Any:
    """A second fake Cromwell, the project's own."""
    from tests.fakes.cromwell import FakeCromwell

    with FakeCromwell() as fake:
        settings.CROMWELL_PROJECT_URLS = {project.name: fake.url}
        yield fake


def sent(run: WorkflowRun) -> WorkflowRun:
    assert services.start_run(run.pk, "worker") == RunState.SUBMITTED
    run.refresh_from_db()
    return run


def test_a_shared_server_is_not_read_from_and_the_run_says_why(
    submit: Any, tiny_wdl: str, cromwell: Any
) -> None:
    run = sent(submit(tiny_wdl, engine=Engine.CROMWELL, options={"read_from_cache": True}))

    assert cromwell.only().options["read_from_cache"] is False
    assert "write_to_cache" not in cromwell.only().options  # its calls still go in
    assert SHARED_CACHE_NOTE in run.warnings
    assert run.engine_url == cromwell.url


def test_an_install_whose_projects_may_share_reads_the_shared_cache(
    submit: Any, tiny_wdl: str, cromwell: Any, settings: Any
) -> None:
    settings.CROMWELL_SHARED_CACHE = True
    run = sent(submit(tiny_wdl, engine=Engine.CROMWELL))

    assert "read_from_cache" not in cromwell.only().options  # the server's default: on
    assert SHARED_CACHE_NOTE not in run.warnings


def test_a_project_with_its_own_server_goes_there_and_keeps_going_there(
    submit: Any, tiny_wdl: str, cromwell: Any, own_cromwell: Any, settings: Any
) -> None:
    run = sent(submit(tiny_wdl, engine=Engine.CROMWELL, options={"read_from_cache": True}))

    assert cromwell.workflows == {}
    workflow = own_cromwell.only()
    assert workflow.options["read_from_cache"] is True
    assert SHARED_CACHE_NOTE not in run.warnings
    assert run.engine_url == own_cromwell.url

    # The settings change later: the run's polls still go to the server it was sent to.
    settings.CROMWELL_PROJECT_URLS = {}
    own_cromwell.start(workflow.id)
    services.sync_run(run)
    run.refresh_from_db()
    assert run.state == RunState.RUNNING
    assert not any(path.startswith("/api/workflows/v1/") for _, path, _ in cromwell.requests)


def test_another_projects_own_server_is_not_used_for_this_project(
    submit: Any, tiny_wdl: str, cromwell: Any, settings: Any
) -> None:
    settings.CROMWELL_PROJECT_URLS = {"someone-else": "http://127.0.0.1:9/"}
    sent(submit(tiny_wdl, engine=Engine.CROMWELL))

    assert cromwell.only().options["read_from_cache"] is False


def test_without_a_server_for_this_project_the_submission_says_which_settings(
    submit: Any, tiny_wdl: str, settings: Any
) -> None:
    settings.CROMWELL_URL = ""
    settings.CROMWELL_PROJECT_URLS = {"someone-else": "http://127.0.0.1:9/"}

    with pytest.raises(services.SubmissionError) as refused:
        submit(tiny_wdl, engine=Engine.CROMWELL)

    assert refused.value.message_dict["engine"] == [
        "The Cromwell engine needs the CROMWELL_URL setting (or a server for this project in "
        "CROMWELL_PROJECT_URLS), which is not set."
    ]


@pytest.mark.parametrize("engine", [Engine.CROMWELL, Engine.BATCHCOMPUTE_CROMWELL])
def test_a_task_only_wdl_is_refused_for_cromwell_before_anything_is_sent(
    engine: str, submit: Any, cromwell: Any, bc_settings: Any
) -> None:
    with pytest.raises(services.SubmissionError) as refused:
        submit(TASK_ONLY, {"task_only.names": ["Ada"]}, engine=engine)

    [message] = [
        m
        for m in refused.value.message_dict["engine"]
        if m.startswith("Cromwell runs workflows only, and this WDL has no workflow")
    ]
    assert "(its tasks: task_only)" in message
    assert "or run it with the miniwdl engine" in message
    assert not WorkflowRun.objects.exists() and cromwell.workflows == {}
