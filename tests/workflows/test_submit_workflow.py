"""manage.py submit_workflow: checks everything first, submits, and can wait for the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from workflows import services
from workflows.choices import Engine, RunState
from workflows.management.commands import submit_workflow as command
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def files(tmp_path: Path, tiny_wdl: str) -> Path:
    (tmp_path / "tiny.wdl").write_text(tiny_wdl)
    (tmp_path / "inputs.json").write_text(json.dumps({"tiny.n": 2, "tiny.word": "hi"}))
    (tmp_path / "options.json").write_text(json.dumps({"read_from_cache": False}))
    return tmp_path


@pytest.fixture
def worker_in_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """While --wait pauses, run what was submitted (as a worker would)."""

    def pause() -> None:
        for run in WorkflowRun.objects.filter(state=RunState.SUBMITTED):
            services.start_run(run.pk, "test-worker")

    monkeypatch.setattr(command, "_pause", pause)


def test_it_submits_a_local_wdl_with_inputs_options_and_labels(
    call: Any, files: Path, project: Any
) -> None:
    result = call(
        "submit_workflow",
        str(files / "tiny.wdl"),
        "--project",
        "shots",
        "--inputs",
        str(files / "inputs.json"),
        "--options",
        str(files / "options.json"),
        "--label",
        "batch=7",
        "--name",
        "hello run",
    )

    run = WorkflowRun.objects.get()
    assert result.out == f"#{run.pk} hello run  on miniwdl  -> {run.outputs_dir}\n"
    assert run.inputs == {"tiny.n": 2, "tiny.word": "hi"}
    assert run.options == {"read_from_cache": False}
    assert run.labels == {"batch": "7"} and run.engine == Engine.MINIWDL


def test_wait_shows_progress_and_exits_zero_on_success(
    call: Any, files: Path, project: Any, worker_in_pause: None
) -> None:
    result = call("submit_workflow", str(files / "tiny.wdl"), "--project", "shots", "--wait")

    run = WorkflowRun.objects.get()
    assert run.state == RunState.SUCCEEDED
    assert "2/2 calls  succeeded" in result.out
    assert f"#{run.pk} tiny succeeded in" in result.out
    assert f"Outputs: {run.outputs_dir}" in result.out


def test_wait_exits_non_zero_with_the_failure(
    call: Any, tmp_path: Path, project: Any, worker_in_pause: None
) -> None:
    wdl = tmp_path / "bad.wdl"
    wdl.write_text(
        "version 1.0\nworkflow bad { call t }\n"
        "task t { command <<< echo 'bwa: index file missing' >&2; exit 2 >>> }\n"
    )

    with pytest.raises(CommandError) as failed:
        call("submit_workflow", str(wdl), "--project", "shots", "--wait")

    assert "bad failed after" in str(failed.value)
    assert "bad.t failed (attempt 1, task t at main WDL line 3): exit status 2: bwa: index" in str(
        failed.value
    )


def test_a_refused_submission_lists_every_problem(
    call: Any, files: Path, project: Any, tmp_path: Path
) -> None:
    (tmp_path / "bad-inputs.json").write_text(json.dumps({"tiny.n": "two", "tiny.nope": 1}))

    with pytest.raises(CommandError) as refused:
        call(
            "submit_workflow",
            str(files / "tiny.wdl"),
            "--project",
            "shots",
            "--inputs",
            str(tmp_path / "bad-inputs.json"),
        )

    assert str(refused.value) == (
        "The workflow was refused:\n"
        '  inputs: tiny.n: expected Int, got "two".\n'
        "  inputs: tiny.nope: tiny has no input by that name."
    )
    assert not WorkflowRun.objects.exists()


def test_json_syntax_errors_name_the_line(call: Any, files: Path, project: Any) -> None:
    (files / "broken.json").write_text('{\n  "tiny.n": 2,\n}\n')

    with pytest.raises(CommandError) as refused:
        call(
            "submit_workflow",
            str(files / "tiny.wdl"),
            "--project",
            "shots",
            "--inputs",
            str(files / "broken.json"),
        )

    assert "is not valid JSON: Expecting property name enclosed in double quotes (line 3" in str(
        refused.value
    )


def test_bad_labels_and_missing_files_are_explained(call: Any, files: Path, project: Any) -> None:
    with pytest.raises(CommandError, match="Write labels as --label name=value"):
        call("submit_workflow", str(files / "tiny.wdl"), "--project", "shots", "--label", "x")
    with pytest.raises(CommandError, match="Cannot read the WDL file"):
        call("submit_workflow", str(files / "nope.wdl"), "--project", "shots")
    with pytest.raises(CommandError, match="There is no project named 'nope'"):
        call("submit_workflow", str(files / "tiny.wdl"), "--project", "nope")


def test_a_local_dependencies_zip_is_uploaded_to_the_project(
    call: Any, tmp_path: Path, project: Any
) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "deps.zip", "w") as archive:
        archive.writestr("lib.wdl", "version 1.0\ntask t { command <<< true >>> }\n")
    (tmp_path / "main.wdl").write_text(
        'version 1.0\nimport "lib.wdl" as lib\nworkflow main { call lib.t }\n'
    )

    call(
        "submit_workflow",
        str(tmp_path / "main.wdl"),
        "--project",
        "shots",
        "--dependencies",
        str(tmp_path / "deps.zip"),
    )

    run = WorkflowRun.objects.get()
    assert run.dependencies_url.startswith(project.output_prefix + "workflows/dependencies/main-")


def test_an_outsider_sees_no_project(call: Any, files: Path, project: Any, charlie: Any) -> None:
    with pytest.raises(CommandError, match="There is no project named 'shots'"):
        call(
            "submit_workflow", str(files / "tiny.wdl"), "--project", "shots", "--as-user", "charlie"
        )
