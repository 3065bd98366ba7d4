"""At submission, what the embedded engine will ignore or change in the runtime sections
(issue 17, item 4); ``memory`` enforced in the task sandbox."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from workflows import services
from workflows.choices import CallStatus, Engine, RunState
from workflows.engines.cromwell_servers import SHARED_CACHE_NOTE

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

CLOUDY = """version 1.0
workflow cloudy {
  call align
  call gatk
  call lenient
}
task align {
  command <<< true >>>
  runtime {
    docker: "broadinstitute/genomes-in-the-cloud:2.3.1"
    cpu: 512
    memory: "900 TB"
    disks: "local-disk 100 HDD"
    preemptible: 3
    zones: "us-central1-a"
  }
}
task gatk {
  command <<< true >>>
  runtime { container: "broadinstitute/gatk:4.5"  preemptible: 1 }
}
task lenient {
  command <<< true >>>
  runtime { continueOnReturnCode: true  return_codes: "*" }
}
"""


def test_the_submission_lists_what_miniwdl_ignores_or_changes(
    submit: Any, call: Any, tmp_path: Any, project: Any
) -> None:
    run = submit(CLOUDY)

    cores = multiprocessing.cpu_count()
    assert run.warnings[0] == (
        "Containers are ignored by the miniwdl engine: tasks run with this machine's programs, "
        "not in broadinstitute/genomes-in-the-cloud:2.3.1 (task align); broadinstitute/gatk:4.5 "
        "(task gatk). A tool found only in the image fails (exit 127)."
    )
    assert run.warnings[1] == (
        "Ignored on this machine: disks (task align), preemptible (tasks align, gatk), "
        "zones (task align)."
    )
    assert set(run.warnings[2:]) >= {
        "continueOnReturnCode (task lenient) is Cromwell's: miniwdl ignores it, so any other "
        "exit status than 0 fails the task (use returnCodes).",
        "return_codes (task lenient) is WDL 1.2's; in WDL 1.0 miniwdl ignores it (use "
        "returnCodes).",
    }
    assert f"cpu 512 (task align) is lowered to this machine's {cores} cores." in run.warnings
    assert any(w.startswith("memory 900 TB (task align) is lowered to") for w in run.warnings)

    (tmp_path / "cloudy.wdl").write_text(CLOUDY)
    result = call("submit_workflow", str(tmp_path / "cloudy.wdl"), "--project", "shots")
    assert "warning: Containers are ignored by the miniwdl engine" in result.err


def test_a_plain_wdl_gets_no_notes_and_cromwell_none_of_miniwdls(
    submit: Any, tiny_wdl: str, cromwell: Any
) -> None:
    assert submit(tiny_wdl).warnings == []
    # Only the shared server's note (its call cache is not read), none of miniwdl's.
    assert submit(CLOUDY, engine=Engine.CROMWELL).warnings == [SHARED_CACHE_NOTE]


def test_the_default_image_in_the_options_is_named_too(submit: Any, tiny_wdl: str) -> None:
    run = submit(tiny_wdl, options={"default_runtime_attributes": {"docker": "python:3.12"}})

    assert run.warnings == [
        "Containers are ignored by the miniwdl engine: tasks run with this machine's programs, "
        "not in python:3.12 (task default_runtime_attributes). A tool found only in the image "
        "fails (exit 127)."
    ]


HUNGRY = """version 1.0
workflow hungry {
  input { String memory }
  call eat { input: memory = memory }
}
task eat {
  input { String memory }
  command <<<
    python3 -c 'x = bytearray(300 * 1024 * 1024); print("ate", len(x))'
  >>>
  runtime { memory: memory }
}
"""


def test_memory_is_enforced_in_the_sandbox(submit: Any) -> None:
    small = submit(HUNGRY, {"hungry.memory": "100 MB"})
    enough = submit(HUNGRY, {"hungry.memory": "1 GB"})

    assert services.start_run(small.pk, "here") == RunState.FAILED
    assert services.start_run(enough.pk, "here") == RunState.SUCCEEDED

    failed = small.calls.get()
    assert failed.status == CallStatus.FAILED
    assert "MemoryError" in failed.failure_message


def test_the_api_response_carries_the_warnings(host_runner: Any, project: Any) -> None:
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(host_runner)

    response = api.post(
        "/api/workflows/", {"project": "shots", "wdl_source": CLOUDY}, format="json"
    )

    assert response.status_code == 201, response.content
    warnings = response.json()["warnings"]
    assert warnings[0].startswith("Containers are ignored by the miniwdl engine")
    assert api.get(f"/api/workflows/{response.json()['id']}/").json()["warnings"] == warnings


def test_values_only_known_when_a_task_runs_are_added_to_the_warnings_then(
    submit: Any,
) -> None:
    source = """version 1.0
workflow greedy {
  input { Int cores = 4096 }
  call t { input: cores = cores }
}
task t {
  input { Int cores }
  command <<< true >>>
  runtime { cpu: cores  memory: "~{cores} TB" }
}
"""
    run = submit(source)
    assert run.warnings == []  # expressions: not judged at submission

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    run.refresh_from_db()
    cores = multiprocessing.cpu_count()
    assert run.warnings[0] == f"greedy.t: cpu 4096 was lowered to this machine's {cores}."
    assert run.warnings[1].startswith("greedy.t: memory 3814697.3 GiB was lowered to")
