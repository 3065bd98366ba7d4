"""Submitting, aborting and resubmitting through workflows.services (no engine runs here)."""

from __future__ import annotations

from typing import Any

import pytest

from renderhub import storage
from workflows import services
from workflows.choices import Engine, RunState
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def refusal(submit: Any, *args: Any, **kwargs: Any) -> dict[str, list[str]]:
    count = WorkflowRun.objects.count()
    with pytest.raises(services.SubmissionError) as refused:
        submit(*args, **kwargs)
    assert WorkflowRun.objects.count() == count  # nothing half-created
    return refused.value.message_dict


def test_a_submission_creates_a_run_with_its_folders(
    submit: Any, tiny_wdl: str, project: Any, host_runner: Any
) -> None:
    bob = host_runner
    run = submit(tiny_wdl, {"n": 3}, user=bob, labels={"batch": "7"})

    assert run.state == RunState.SUBMITTED
    assert (run.name, run.workflow_name, run.engine) == ("tiny", "tiny", Engine.MINIWDL)
    assert run.inputs == {"tiny.n": 3}  # qualified
    assert run.wdl_source == tiny_wdl and run.submitted_by == bob
    prefix = storage.join(project.output_prefix, "workflows", f"{run.pk}-tiny/")
    assert run.working_dir == prefix + "work/"
    assert run.outputs_dir == prefix + "outputs/"


def test_the_start_is_enqueued_when_the_transaction_commits(
    submit: Any, tiny_wdl: str, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    sent: list[int] = []
    monkeypatch.setattr("workflows.tasks.start_run.delay", sent.append)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = submit(tiny_wdl)
    assert sent == [] and len(callbacks) == 1
    callbacks[0]()

    assert sent == [run.pk]
    run.refresh_from_db()
    assert run.queued_at is not None


def test_a_broker_outage_leaves_the_run_for_the_beat_to_send(
    submit: Any, tiny_wdl: str, monkeypatch: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    def down(run_id: int) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr("workflows.tasks.start_run.delay", down)
    run = submit(tiny_wdl)
    services._enqueue_start(run.pk)
    run.refresh_from_db()
    assert run.queued_at is None
    sent: list[int] = []
    monkeypatch.setattr("workflows.tasks.start_run.delay", sent.append)
    WorkflowRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=5))

    services.poll_runs()

    assert sent == [run.pk]


def test_bad_wdl_inputs_and_options_are_all_reported(submit: Any, germline_wdl: str) -> None:
    broken = germline_wdl.replace("Int length\n", "Itn length\n")

    found = refusal(submit, broken, {"x": 1}, options="verbose")

    assert found["wdl"] == ["line 75, column 5: error: Unknown type Itn"]
    assert found["options"] == [
        'The options must be a JSON object (e.g. {"read_from_cache": false}).'
    ]


def test_input_problems_are_reported_against_a_good_wdl(submit: Any, germline_wdl: str) -> None:
    found = refusal(submit, germline_wdl, {"germline.read_pairs": "many", "germline.x": 1})

    assert found["inputs"] == [
        'germline.read_pairs: expected Int, got "many".',
        "germline.x: germline has no input by that name.",
    ]


def test_an_outsider_cannot_submit_to_a_project(submit: Any, tiny_wdl: str, charlie: Any) -> None:
    assert refusal(submit, tiny_wdl, user=charlie) == {
        "project": ["You are not a member of this project."]
    }


def test_the_wdl_may_come_from_storage(
    submit: Any, tiny_wdl: str, storage_root: Any, storage_url: str
) -> None:
    (storage_root / "scenes").mkdir(exist_ok=True)
    (storage_root / "scenes" / "tiny.wdl").write_text(tiny_wdl)

    run = submit("", wdl_url=storage_url + "scenes/tiny.wdl")

    assert run.wdl_url == storage_url + "scenes/tiny.wdl"
    assert run.wdl_source == tiny_wdl  # kept, so a resubmission runs the same text
    assert refusal(submit, "", wdl_url=storage_url + "scenes/missing.wdl")["wdl"] == [
        f"{storage_url}scenes/missing.wdl does not exist."
    ]
    (storage_root / "elsewhere").mkdir()
    (storage_root / "elsewhere" / "secret.wdl").write_text(tiny_wdl)
    assert refusal(submit, "", wdl_url=storage_url + "elsewhere/secret.wdl")["wdl"] == [
        f"{storage_url}elsewhere/secret.wdl is outside this project's output prefix and mappings."
    ]


def test_the_wdl_is_required_once(submit: Any, tiny_wdl: str, storage_url: str) -> None:
    assert refusal(submit, "  ")["wdl"] == ["Give the workflow's WDL."]
    assert refusal(submit, tiny_wdl, wdl_url=storage_url + "x.wdl")["wdl"] == [
        "Give the WDL as text or as a URL, not both."
    ]


def test_folders_must_be_the_projects(submit: Any, tiny_wdl: str, storage_url: str) -> None:
    found = refusal(
        submit,
        tiny_wdl,
        working_dir=storage_url + "elsewhere/",
        outputs_dir=storage_url + "output/x",
    )

    assert found["working_dir"] == [
        f"{storage_url}elsewhere/ is outside this project's output prefix and storage mappings."
    ]
    assert found["outputs_dir"] == [f"{storage_url}output/x must end with '/' (it names a folder)."]
    run = submit(tiny_wdl, outputs_dir=storage_url + "output/mine/")
    assert run.outputs_dir == storage_url + "output/mine/"


@pytest.mark.parametrize("engine", [Engine.MINIWDL, Engine.CROMWELL])
def test_file_inputs_must_be_storage_urls_of_the_project(
    submit: Any, storage_url: str, engine: str, cromwell: Any
) -> None:
    source = "version 1.0\nworkflow w {\n  input {\n    Array[File] f\n  }\n}\n"
    files = ["/etc/passwd", storage_url + "other/x", storage_url + "output/../other/y"]

    found = refusal(submit, source, {"w.f": files}, engine=engine)

    passwd, other, dotdot = found["inputs"]
    assert passwd.startswith("/etc/passwd: File inputs must be storage URLs")
    assert other == (
        f"{storage_url}other/x is outside this project's storage (its output prefix and mappings)."
    )
    assert dotdot.startswith(f"{storage_url}output/../other/y is outside this project's")
    assert submit(source, {"w.f": [storage_url + "scenes/x.bam"]}, engine=engine).pk


def test_an_unknown_engine_is_refused(submit: Any, tiny_wdl: str) -> None:
    assert refusal(submit, tiny_wdl, engine="nextflow") == {
        "engine": ["Unknown workflow engine 'nextflow'."]
    }


def test_abort_of_an_ended_run_does_nothing(submit: Any, tiny_wdl: str) -> None:
    run = submit(tiny_wdl)
    WorkflowRun.objects.filter(pk=run.pk).update(state=RunState.SUCCEEDED)

    assert not services.abort(run)


def test_resubmit_makes_a_new_run_with_fresh_folders(
    submit: Any, tiny_wdl: str, host_runner: Any, storage_url: str
) -> None:
    bob = host_runner
    first = submit(tiny_wdl, {"tiny.n": 4}, labels={"k": "v"}, options={"read_from_cache": False})
    WorkflowRun.objects.filter(pk=first.pk).update(state=RunState.FAILED)

    again = services.resubmit(first, bob)

    assert again.pk != first.pk and again.resubmitted_from == first
    assert (again.inputs, again.labels, again.options) == (
        first.inputs,
        first.labels,
        first.options,
    )
    assert again.outputs_dir.endswith(f"/{again.pk}-tiny/outputs/")
    assert again.submitted_by == bob
    chosen = submit(tiny_wdl, outputs_dir=storage_url + "output/keep/")
    assert services.resubmit(chosen).outputs_dir == storage_url + "output/keep/"


def test_runs_are_visible_to_project_members_only(
    submit: Any, tiny_wdl: str, alice: Any, bob: Any, charlie: Any
) -> None:
    run = submit(tiny_wdl)

    assert list(WorkflowRun.objects.visible_to(alice)) == [run]
    assert list(WorkflowRun.objects.visible_to(bob)) == [run]
    assert list(WorkflowRun.objects.visible_to(charlie)) == []


def test_state_changes_are_announced_after_the_commit(
    submit: Any, tiny_wdl: str, django_capture_on_commit_callbacks: Any
) -> None:
    from workflows.engines import RunStatus
    from workflows.signals import run_state_changed

    heard: list[tuple[str, str]] = []

    def listen(sender: Any, run_id: int, old_state: str, new_state: str, **kwargs: Any) -> None:
        heard.append((old_state, new_state))

    run_state_changed.connect(listen)
    try:
        run = submit(tiny_wdl)
        with django_capture_on_commit_callbacks(execute=True):
            services.record(run.pk, RunStatus(RunState.RUNNING, "Running"))
            services.record(run.pk, RunStatus(RunState.RUNNING, "Running"))  # no change
            services.abort(run)
    finally:
        run_state_changed.disconnect(listen)

    assert heard == [("submitted", "running"), ("running", "aborting")]
