"""The call cache (issue 17, item 5): one per project, visible with the runs calls came
from, ``volatile`` honoured, switched off per run by ``--no-cache`` or the form."""

from __future__ import annotations

from typing import Any

import pytest

from workflows import services
from workflows.choices import CallStatus, RunState
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def run_here(run: WorkflowRun) -> WorkflowRun:
    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED
    run.refresh_from_db()
    return run


@pytest.fixture
def other_project(project: Any, storage_url: str, bob: Any) -> Any:
    from projects.models import Project

    other = Project.objects.create(
        name="lab b", image=project.image, output_prefix=storage_url + "other/"
    )
    other.members.add(bob)
    return other


def test_each_project_has_its_own_cache_and_shows_where_calls_came_from(
    submit: Any, tiny_wdl: str, other_project: Any, call: Any, client: Any, bob: Any
) -> None:
    first = run_here(submit(tiny_wdl))
    elsewhere = run_here(submit(tiny_wdl, project=other_project))
    again = run_here(submit(tiny_wdl))

    assert not elsewhere.calls.filter(cache_hit=True).exists()  # another project's cache
    assert [(c.cache_hit, c.cached_from) for c in again.calls.all()] == [(True, first.pk)] * 2
    assert again.outputs["tiny.lines"] == ["hello 0", "hello 1"]

    shown = call("workflow", str(again.pk)).out
    assert f"call cache:  2 calls from cache (run #{first.pk})" in shown
    assert f"cached from #{first.pk}" in shown
    client.force_login(bob)
    page = client.get(f"/workflows/{again.pk}/").content.decode()
    assert "2 calls from cache" in page
    assert f'href="/workflows/{first.pk}/">#{first.pk}</a>' in page


def test_volatile_tasks_run_every_time(submit: Any) -> None:
    source = """version 1.1
workflow clock {
  call now
  call steady
  output { String a = now.t  String b = steady.t }
}
task now {
  command <<< date +%s%N >>>
  output { String t = read_string(stdout()) }
  meta { volatile: true }
}
task steady {
  command <<< echo same >>>
  output { String t = read_string(stdout()) }
}
"""
    first = run_here(submit(source))
    second = run_here(submit(source))

    hits = {c.name: c.cache_hit for c in second.calls.all()}
    assert hits == {"clock.now": False, "clock.steady": True}
    assert first.outputs["clock.a"] != second.outputs["clock.a"]


def test_a_task_with_an_empty_command_is_not_labelled_cached(submit: Any) -> None:
    source = """version 1.0
workflow quiet {
  call nothing
  output { Int n = nothing.n }
}
task nothing {
  command <<< >>>
  output { Int n = 7 }
}
"""
    run = run_here(submit(source))

    assert run.outputs == {"quiet.n": 7}
    assert run.calls.get().cache_hit is False


def test_a_task_only_wdl_is_cached_too(submit: Any) -> None:
    source = """version 1.0
task hello {
  command <<< echo hi >>>
  output { String s = read_string(stdout()) }
}
"""
    first = run_here(submit(source))
    again = run_here(submit(source))

    cached = again.calls.get()
    assert (cached.cache_hit, cached.cached_from, cached.status) == (True, first.pk, "Done")
    assert first.calls.get().cache_hit is False


def test_no_cache_on_the_cli_runs_everything_again(
    call: Any, tmp_path: Any, project: Any, tiny_wdl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workflows.management.commands import submit_workflow as command

    def pause() -> None:
        for waiting in WorkflowRun.objects.filter(state=RunState.SUBMITTED):
            services.start_run(waiting.pk, "test-worker")

    monkeypatch.setattr(command, "_pause", pause)
    (tmp_path / "tiny.wdl").write_text(tiny_wdl)
    wdl = str(tmp_path / "tiny.wdl")

    call("submit_workflow", wdl, "--project", "shots", "--wait")
    cached = call("submit_workflow", wdl, "--project", "shots", "--wait")
    fresh = call("submit_workflow", wdl, "--project", "shots", "--wait", "--no-cache")

    third = WorkflowRun.objects.order_by("pk").last()
    assert third is not None
    assert "2 calls from cache" in cached.out
    assert "from cache" not in fresh.out
    assert third.options == {"read_from_cache": False}
    assert {c.status for c in third.calls.all()} == {CallStatus.DONE}
    assert not third.calls.filter(cache_hit=True).exists()


def test_the_form_has_a_no_cache_checkbox(
    client: Any, project: Any, host_runner: Any, tiny_wdl: str
) -> None:
    from django.contrib.auth.models import Permission
    from django.core.files.uploadedfile import SimpleUploadedFile

    host_runner.user_permissions.add(*Permission.objects.filter(codename="view_workflowrun"))
    client.force_login(host_runner)
    form = {
        "project": project.pk,
        "engine": "miniwdl",
        "wdl_file": SimpleUploadedFile("tiny.wdl", tiny_wdl.encode()),
        "options": '{"write_to_cache": true}',
        "no_cache": "on",
    }

    response = client.post("/admin/workflows/workflowrun/submit/", form)

    assert response.status_code == 302
    assert WorkflowRun.objects.get().options == {"write_to_cache": True, "read_from_cache": False}
