"""Imports the way Cromwell users expect (issue 17, item 1): a local WDL's imports zipped
by the CLI, any folder layout in a zip, imports next to a WDL in storage, URL imports
fetched by the manager from allowed hosts; each run here by miniwdl for real."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from renderhub import storage
from workflows import services
from workflows.choices import RunState
from workflows.management.commands import submit_workflow as command
from workflows.models import WorkflowRun

from .wdl_server import WdlServer, wdl_server

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

UTIL = """version 1.0
task shout {
  input { String word }
  command <<< echo "~{word}" | tr a-z A-Z >>>
  output { String loud = read_string(stdout()) }
}
"""
# Imports a file one folder up from itself, still inside the main WDL's folder.
TASKS = """version 1.0
import "../common/util.wdl" as util
workflow twice {
  input { String word }
  call util.shout as first { input: word = word }
  call util.shout as second { input: word = first.loud + "!" }
  output { String loud = second.loud }
}
"""
MAIN = """version 1.0
import "lib/my tasks ü.wdl" as lib
workflow main {
  call lib.twice { input: word = "quiet" }
  output { String loud = twice.loud }
}
"""


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def zip_names(run: WorkflowRun) -> list[str]:
    backend, key = storage.resolve(run.dependencies_url)
    return sorted(zipfile.ZipFile(io.BytesIO(backend.read(key))).namelist())


@pytest.fixture
def worker_in_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    def pause() -> None:
        for run in WorkflowRun.objects.filter(state=RunState.SUBMITTED):
            services.start_run(run.pk, "test-worker")

    monkeypatch.setattr(command, "_pause", pause)


def test_the_cli_zips_a_local_wdls_nested_imports_itself(
    call: Any, tmp_path: Path, project: Any, worker_in_pause: None
) -> None:
    folder = tmp_path / "my pipeline"
    (folder / "lib").mkdir(parents=True)
    (folder / "common").mkdir()
    (folder / "main.wdl").write_text(MAIN)
    (folder / "lib" / "my tasks ü.wdl").write_text(TASKS)
    (folder / "common" / "util.wdl").write_text(UTIL)
    (folder / "unrelated.txt").write_text("not imported, not sent")

    result = call("submit_workflow", str(folder / "main.wdl"), "--project", "shots", "--wait")

    run = WorkflowRun.objects.get()
    assert "succeeded" in result.out, run.failure_message
    assert run.outputs == {"main.loud": "QUIET!"}
    assert zip_names(run) == ["common/util.wdl", "lib/my tasks ü.wdl"]
    assert run.dependencies_url.startswith(project.output_prefix + "workflows/dependencies/")


def test_an_import_climbing_out_of_the_wdls_folder_is_refused(
    call: Any, tmp_path: Path, project: Any
) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "util.wdl").write_text(UTIL)
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "main.wdl").write_text(
        'version 1.0\nimport "../shared/util.wdl" as u\n'
        'workflow w { call u.shout { input: word = "x" } }\n'
    )

    with pytest.raises(CommandError) as refused:
        call("submit_workflow", str(tmp_path / "wf" / "main.wdl"), "--project", "shots")

    assert "../shared/util.wdl (imported by the main WDL) is outside the main WDL's folder" in str(
        refused.value
    )
    assert not WorkflowRun.objects.exists()


def test_a_missing_local_import_is_named_without_talking_of_a_zip(
    call: Any, tmp_path: Path, project: Any
) -> None:
    (tmp_path / "main.wdl").write_text(MAIN)

    with pytest.raises(CommandError) as refused:
        call("submit_workflow", str(tmp_path / "main.wdl"), "--project", "shots")

    message = str(refused.value)
    assert "lib/my tasks ü.wdl (imported by the main WDL) is not next to the WDL" in message
    assert "dependencies zip" not in message


def test_an_import_without_zip_or_folder_asks_for_a_zip(submit: Any) -> None:
    with pytest.raises(services.SubmissionError) as refused:
        submit(MAIN)

    assert refused.value.message_dict["wdl"] == [
        "lib/my tasks ü.wdl (imported by the main WDL): the WDL imports other files; give "
        "them in a dependencies zip."
    ]


def test_a_zip_in_any_folder_layout_works(submit: Any) -> None:
    # Zipped as `zip -r deps.zip bundle/`: everything one folder down.
    deps = zipped(
        {"bundle/lib/my tasks ü.wdl": TASKS, "bundle/common/util.wdl": UTIL, "README": "x"}
    )
    run = submit(MAIN, dependencies_zip=deps)

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    run.refresh_from_db()
    assert run.outputs == {"main.loud": "QUIET!"}
    assert zip_names(run) == ["common/util.wdl", "lib/my tasks ü.wdl"]


def test_a_file_missing_from_a_given_zip_says_so(submit: Any) -> None:
    with pytest.raises(services.SubmissionError) as refused:
        submit(MAIN, dependencies_zip=zipped({"lib/my tasks ü.wdl": TASKS}))

    assert refused.value.message_dict["dependencies"] == [
        "../common/util.wdl (imported by lib/my tasks ü.wdl) is not in the dependencies zip."
    ]


def test_imports_next_to_a_wdl_in_storage_are_used(
    submit: Any, storage_root: Path, storage_url: str
) -> None:
    folder = storage_root / "scenes" / "pipeline"
    (folder / "lib").mkdir(parents=True)
    (folder / "common").mkdir()
    (folder / "main.wdl").write_text(MAIN)
    (folder / "lib" / "my tasks ü.wdl").write_text(TASKS)
    (folder / "common" / "util.wdl").write_text(UTIL)

    run = submit("", wdl_url=storage_url + "scenes/pipeline/main.wdl")

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED
    run.refresh_from_db()
    assert run.outputs == {"main.loud": "QUIET!"}
    assert zip_names(run) == ["common/util.wdl", "lib/my tasks ü.wdl"]


@pytest.fixture
def server(settings: Any) -> Iterator[WdlServer]:
    with wdl_server() as server:
        settings.WORKFLOW_IMPORT_HOSTS = [f"http://{server.host}"]
        yield server


def test_url_imports_are_fetched_by_the_manager_and_never_by_the_worker(
    submit: Any, server: WdlServer, settings: Any
) -> None:
    server.files["/wdl/tasks/twice.wdl"] = TASKS
    server.files["/wdl/common/util.wdl"] = UTIL
    source = (
        f'version 1.0\nimport "{server.url}/wdl/tasks/twice.wdl" as lib\n'
        'workflow main {\n  call lib.twice { input: word = "far" }\n'
        "  output { String loud = twice.loud }\n}\n"
    )
    run = submit(source)
    assert server.requests == ["/wdl/tasks/twice.wdl", "/wdl/common/util.wdl"]
    settings.WORKFLOW_IMPORT_HOSTS = []  # the worker must not need them any more

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    run.refresh_from_db()
    assert run.outputs == {"main.loud": "FAR!"}
    assert len(server.requests) == 2
    assert zip_names(run) == [
        f"_https/{server.host}/wdl/common/util.wdl",
        f"_https/{server.host}/wdl/tasks/twice.wdl",
    ]


def test_the_admin_form_takes_a_zip_upload(client: Any, project: Any, host_runner: Any) -> None:
    from django.contrib.auth.models import Permission
    from django.core.files.uploadedfile import SimpleUploadedFile

    host_runner.user_permissions.add(*Permission.objects.filter(codename="view_workflowrun"))
    client.force_login(host_runner)
    deps = zipped({"lib/my tasks ü.wdl": TASKS, "common/util.wdl": UTIL})
    form = {
        "project": project.pk,
        "engine": "miniwdl",
        "wdl_file": SimpleUploadedFile("main.wdl", MAIN.encode()),
        "dependencies_zip": SimpleUploadedFile("deps.zip", deps),
    }

    response = client.post("/admin/workflows/workflowrun/submit/", form)

    assert response.status_code == 302, response.content.decode()[-2000:]
    run = WorkflowRun.objects.get()
    assert zip_names(run) == ["common/util.wdl", "lib/my tasks ü.wdl"]


def test_the_api_takes_a_zip_in_base64(client: Any, project: Any, host_runner: Any) -> None:
    import base64

    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(host_runner)
    deps = zipped({"bundle/lib/my tasks ü.wdl": TASKS, "bundle/common/util.wdl": UTIL})
    body = {"project": "shots", "wdl_source": MAIN}

    response = api.post(
        "/api/workflows/",
        {**body, "dependencies_zip_base64": base64.b64encode(deps).decode()},
        format="json",
    )
    bad = api.post(
        "/api/workflows/", {**body, "dependencies_zip_base64": "not base64!"}, format="json"
    )

    assert response.status_code == 201, response.content
    run = WorkflowRun.objects.get()
    assert response.json()["dependencies_url"] == run.dependencies_url
    assert zip_names(run) == ["common/util.wdl", "lib/my tasks ü.wdl"]
    assert bad.status_code == 400
    assert bad.json() == {"dependencies_zip_base64": ["This is not base64."]}
