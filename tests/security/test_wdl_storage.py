"""Finding 4 of issue 11: workflow outputs signed other projects' files.

``output_files`` took any ``file://`` or ``oss://`` string among a run's outputs for a file
of the run and signed it; File inputs were checked against the project on ``miniwdl``
only; the Cromwell option ``final_workflow_outputs_dir`` replaced the run's folder. Now:

* only outputs inside the run's outputs or working folder get links, whether a task's
  ``String`` output or the engine (a Cromwell server, faked here) names the URL;
* File inputs outside the project's output prefix and mappings are refused on every
  engine, before anything is created;
* Cromwell's ``final_*`` folder options are accepted inside the project (and sent as the
  local paths Cromwell writes to) and refused, with the reason, anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from api import services as api_services
from projects.models import Project
from renderhub import storage
from tests.workflows.grants import grant_run_on_host
from workflows import services
from workflows.choices import RunState
from workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db

SIGNED = "/storage/signed/"

CLAIMS = """version 1.0
workflow claims {
  input { String other }
  call make
  output {
    File mine = make.mine
    String theirs = other
    Array[String] mixed = [other, "oss://lab-bucket/raw/sample.bam"]
  }
}
task make {
  command <<< echo mine > mine.txt >>>
  output { File mine = "mine.txt" }
}
"""

INPUTS = {"claims.other": "x"}

FILE_INPUT = """version 1.0
workflow count {
  input { File reads }
  output { String name = basename(reads) }
}
"""


@pytest.fixture(autouse=True)
def _workflow_dirs(settings: Any, _private_dirs: Path) -> None:
    settings.WORKFLOW_WORK_DIR = _private_dirs / "workflows"


@pytest.fixture
def other_file(image: Any, storage_root: Path, storage_url: str) -> str:
    """A file of another lab's project, which bob is no member of."""
    Project.objects.create(name="lab", image=image, output_prefix=storage_url + "lab/")
    (storage_root / "lab").mkdir()
    (storage_root / "lab" / "results.txt").write_text("the other lab's unpublished results\n")
    return storage_url + "lab/results.txt"


@pytest.fixture
def cromwell(settings: Any) -> Any:
    from tests.fakes.cromwell import FakeCromwell

    with FakeCromwell() as fake:
        settings.CROMWELL_URL = fake.url
        settings.CROMWELL_AUTH_HEADER = ""
        yield fake


def api(user: Any) -> APIClient:
    _token, key = api_services.create_token(user, "attack")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def post(user: Any, **body: Any) -> Any:
    return api(user).post("/api/workflows/", {"project": "shots", **body}, format="json")


def links(user: Any, run: WorkflowRun) -> dict[str, Any]:
    response = api(user).get(f"/api/workflows/{run.pk}/outputs/")
    assert response.status_code == 200
    return dict(response.json())


def test_a_task_naming_another_projects_file_gets_no_link(
    bob: Any, project: Project, other_file: str, client: Any
) -> None:
    response = post(grant_run_on_host(bob), wdl_source=CLAIMS, inputs={"claims.other": other_file})
    assert response.status_code == 201, response.content
    run = WorkflowRun.objects.get(pk=response.json()["id"])

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    body = links(bob, run)
    [mine] = body["files"]
    assert mine["name"] == "claims.mine" and mine["url"].startswith(run.outputs_dir)
    assert SIGNED in mine["link"]
    # The claims are shown for what they are, text, and nothing signs them.
    assert body["values"] == {
        "claims.theirs": other_file,
        "claims.mixed": [other_file, "oss://lab-bucket/raw/sample.bam"],
    }
    client.force_login(bob)
    page = client.get(f"/workflows/{run.pk}/outputs/").content.decode()
    assert page.count(SIGNED) == 1 and "lab/results.txt" in page


def test_a_cromwell_run_claiming_files_outside_its_folders_gets_no_links(
    bob: Any, project: Project, other_file: str, cromwell: Any, storage_root: Path
) -> None:
    response = post(bob, engine="cromwell", wdl_source=CLAIMS, inputs={"claims.other": "x"})
    assert response.status_code == 201, response.content
    run = WorkflowRun.objects.get(pk=response.json()["id"])
    services.start_run(run.pk, "worker")
    run.refresh_from_db()
    own = storage.join(run.outputs_dir, "mine.txt")
    backend, key = storage.resolve(own)
    backend.write(key, b"mine\n")
    cromwell.finish(
        run.engine_run_id,
        "Succeeded",
        outputs={
            "claims.mine": own,
            "claims.theirs": other_file,
            "claims.escape": storage.join(run.outputs_dir) + "../../../../lab/results.txt",
            "claims.elsewhere": storage.join(project.output_prefix, "other-run/out.txt"),
        },
    )

    assert services.sync_run(run) == RunState.SUCCEEDED

    body = links(bob, run)
    assert [(f["name"], SIGNED in f["link"]) for f in body["files"]] == [("claims.mine", True)]
    assert set(body["values"]) == {"claims.theirs", "claims.escape", "claims.elsewhere"}


@pytest.mark.parametrize("engine", ["miniwdl", "cromwell"])
def test_file_inputs_outside_the_project_are_refused_on_every_engine(
    bob: Any, project: Project, other_file: str, cromwell: Any, engine: str, storage_url: str
) -> None:
    user = grant_run_on_host(bob)
    attempts = {
        other_file: "is outside this project's storage",
        "/etc/passwd": "File inputs must be storage URLs",
        storage_url + "scenes/../lab/results.txt": "is outside this project's storage",
        "oss://lab-bucket/raw/sample.bam": "is outside this project's storage",
    }
    for value, reason in attempts.items():
        response = post(user, engine=engine, wdl_source=FILE_INPUT, inputs={"count.reads": value})

        assert response.status_code == 400, (value, response.content)
        [message] = response.json()["inputs"]
        assert message.startswith(value) and reason in message
    assert not WorkflowRun.objects.exists()

    mapped = {"count.reads": storage_url + "scenes/reads.fq"}  # the project's mapped folder
    assert post(user, engine=engine, wdl_source=FILE_INPUT, inputs=mapped).status_code == 201


@pytest.mark.parametrize(
    "option", ["final_workflow_outputs_dir", "final_call_logs_dir", "final_workflow_log_dir"]
)
def test_cromwell_folder_options_outside_the_project_are_refused(
    bob: Any, project: Project, cromwell: Any, storage_root: Path, storage_url: str, option: str
) -> None:
    outside = [
        storage_url + "lab/",  # another project's folder
        str(storage_root / "lab") + "/",  # the same as a path on Cromwell's disk
        storage_url + "output/../lab/",
        "oss://lab-bucket/stolen/",
        "/etc/",
        "relative/folder/",
        "",
    ]
    for value in outside:
        response = post(
            bob, engine="cromwell", wdl_source=CLAIMS, inputs=INPUTS, options={option: value}
        )

        assert response.status_code == 400, (value, response.content)
        [message] = response.json()["options"]
        assert message.startswith(f"{option}") and "this project's storage" in message
    assert not WorkflowRun.objects.exists()
    assert cromwell.workflows == {}

    options = {option: storage_url + "scenes/x/"}
    inside = post(bob, engine="cromwell", wdl_source=CLAIMS, inputs=INPUTS, options=options)
    assert inside.status_code == 201, inside.content
    services.start_run(inside.json()["id"], "worker")
    assert cromwell.only().options[option] == f"{storage_root}/scenes/x/"
