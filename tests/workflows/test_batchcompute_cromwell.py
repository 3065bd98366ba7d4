"""The BatchCompute Cromwell app engine: the real batchcompute SDK through RenderHub's client,
against the wire-level fake BatchCompute (tests/fakes/batchcompute.py) and the fake OSS.

The fake runs DAG jobs only; ``app_jobs`` below teaches this test's fake instance to accept
App jobs (one instance standing for the ``:cromwell`` app's run), after checking the body
the SDK sent. What the real app does inside (run Cromwell with its BCS backend, write
``workflow_metadata.json``) is played by the test.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.fakes import batchcompute as fake_module
from workflows import services
from workflows.choices import CallStatus, Engine, RunState
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def app_jobs(fake_bc: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    dag_jobs = fake_bc._create_job

    def create_job(params: dict[str, str], body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or body.get("Type") != "App":
            return dag_jobs(params, body)  # type: ignore[no-any-return]
        if (existing := fake_bc._idempotent("job", params, body)) is not None:
            return 201, {"Id": existing}
        app = body.get("App") or {}
        if not app.get("AppName") or not isinstance(app.get("Inputs"), dict):
            raise fake_module.BCError(
                400, "MissingApp", "App.AppName and App.Inputs are mandatory."
            )
        job = fake_module.Job(
            f"job-{uuid.uuid4().hex.upper()}",
            {"Priority": 0, **body},
            {"cromwell": fake_module.Task("cromwell", {}, [fake_module.Instance(0)])},
            fake_module.now(),
        )
        fake_bc.jobs[job.id] = job
        fake_bc._remember("job", params, body, job.id)
        return 201, {"Id": job.id}

    monkeypatch.setattr(fake_bc, "_create_job", create_job)
    return fake_bc


@pytest.fixture
def oss_project(image: Any, bucket: str, bob: Any, bc_settings: Any) -> Any:
    from projects.models import Project

    project = Project.objects.create(name="genomics", image=image, output_prefix=f"oss://{bucket}/")
    project.members.add(bob)
    return project


@pytest.fixture
def sent(app_jobs: Any, oss_project: Any, bucket: str, tiny_wdl: str, submit: Any) -> Any:
    run = submit(
        tiny_wdl,
        {"tiny.n": 2},
        project=oss_project,
        engine=Engine.BATCHCOMPUTE_CROMWELL,
        working_dir=f"oss://{bucket}/runs/worker_dir/",
        outputs_dir=f"oss://{bucket}/runs/outputs/",
        options={"read_from_cache": False, "bcs_app_config": {"InstanceType": "bcs.a2.large"}},
    )
    assert services.start_run(run.pk, "worker") == RunState.SUBMITTED
    run.refresh_from_db()
    return run


def sync(run: WorkflowRun) -> WorkflowRun:
    services.sync_run(run)
    run.refresh_from_db()
    return run


def metadata(status: str = "Succeeded", **extra: Any) -> dict[str, Any]:
    root = "oss://cromwell/tiny/0000/call-greet"
    return {
        "id": "8c2f1e4a-1111-4222-8333-944445555666",
        "status": status,
        "start": "2026-11-28T10:00:00.000Z",
        "end": "2026-11-28T10:20:00.000Z",
        "outputs": {"tiny.lines": ["hello 0", "hello 1"]} if status == "Succeeded" else {},
        "calls": {
            "tiny.greet": [
                {
                    "shardIndex": 0,
                    "attempt": 1,
                    "executionStatus": "Done",
                    "backendStatus": "Finished",
                    "jobId": "job-000A",
                    "returnCode": 0,
                    "stdout": f"{root}/shard-0/stdout",
                    "stderr": f"{root}/shard-0/stderr",
                    "start": "2026-11-28T10:01:00.000Z",
                    "end": "2026-11-28T10:05:00.000Z",
                },
                {
                    "shardIndex": 1,
                    "attempt": 1,
                    "executionStatus": "Failed" if status == "Failed" else "Done",
                    "backendStatus": "Failed" if status == "Failed" else "Finished",
                    "jobId": "job-000B",
                    "returnCode": 1 if status == "Failed" else 0,
                },
            ]
        },
        **extra,
    }


def test_it_submits_an_app_job_of_the_cromwell_app_like_bcs_asub(
    sent: Any,
    app_jobs: Any,
    cloud_oss: Any,
    bucket: str,
    tiny_wdl: str,
) -> None:
    [request] = [r for r in app_jobs.requests if r.route == "POST /jobs"]
    body = request.body
    staged = f"oss://{bucket}/runs/worker_dir/renderhub/"

    assert sent.engine_run_id.startswith("job-")
    assert (sent.state, sent.engine_status) == (RunState.SUBMITTED, "Waiting")
    assert body["Type"] == "App" and body["Name"] == f"rhtest-workflow-{sent.pk}"
    assert body["App"]["AppName"] == ":cromwell"
    assert body["App"]["Inputs"] == {
        "WDL": staged + "workflow.wdl",
        "WORKFLOW_INPUTS": staged + "inputs.json",
        "WORKFLOW_OPTIONS": staged + "options.json",
        "WORKING_DIR": f"oss://{bucket}/runs/worker_dir/",
    }
    assert body["App"]["Outputs"] == {"OUTPUTS_DIR": f"oss://{bucket}/runs/outputs/"}
    assert body["App"]["Config"]["InstanceType"] == "bcs.a2.large"
    token = request.params["IdempotentToken"]
    assert token == f"renderhub-workflow-{sent.pk}-{sent.created_at:%Y%m%d%H%M%S%f}"
    # The staged files are what Cromwell gets; RenderHub's own option stays behind.
    assert cloud_oss.get(bucket, "runs/worker_dir/renderhub/workflow.wdl").data == tiny_wdl.encode()
    inputs = json.loads(cloud_oss.get(bucket, "runs/worker_dir/renderhub/inputs.json").data)
    options = json.loads(cloud_oss.get(bucket, "runs/worker_dir/renderhub/options.json").data)
    assert inputs == {"tiny.n": 2}
    assert options == {"read_from_cache": False}


def test_the_run_follows_the_app_job_and_reads_the_metadata_at_the_end(
    sent: Any,
    app_jobs: Any,
    cloud_oss: Any,
    bucket: str,
) -> None:
    app_jobs.start_instances(sent.engine_run_id, task="cromwell")
    run = sync(sent)
    assert (run.state, run.engine_status) == (RunState.RUNNING, "Running")
    assert run.calls.count() == 0  # the app says nothing about calls while it runs

    cloud_oss.put(bucket, "runs/outputs/workflow_metadata.json", json.dumps(metadata()).encode())
    app_jobs.finish_instance(sent.engine_run_id, 0, task="cromwell")
    run = sync(run)

    assert run.state == RunState.SUCCEEDED
    assert run.engine_status == "Finished (Cromwell: Succeeded)"
    assert run.outputs == {"tiny.lines": ["hello 0", "hello 1"]}
    calls = list(run.calls.order_by("shard"))
    assert [(c.name, c.shard, c.status, c.backend_job_id) for c in calls] == [
        ("tiny.greet", 0, CallStatus.DONE, "job-000A"),
        ("tiny.greet", 1, CallStatus.DONE, "job-000B"),
    ]
    assert calls[0].stderr == "oss://cromwell/tiny/0000/call-greet/shard-0/stderr"


def test_a_failed_app_job_reports_batchcomputes_and_cromwells_reasons(
    sent: Any,
    app_jobs: Any,
    cloud_oss: Any,
    bucket: str,
) -> None:
    failures = [{"message": "Job tiny.greet:1:1 exited with return code 1", "causedBy": []}]
    cloud_oss.put(
        bucket,
        "runs/outputs/workflow_metadata.json",
        json.dumps(metadata("Failed", failures=failures)).encode(),
    )
    app_jobs.start_instances(sent.engine_run_id, task="cromwell")
    app_jobs.finish_instance(sent.engine_run_id, 0, task="cromwell", exit_code=1)

    run = sync(sent)

    assert run.state == RunState.FAILED
    assert run.failure_message == (
        "Instance 0 of task cromwell failed.\nJob tiny.greet:1:1 exited with return code 1"
    )
    assert run.calls.get(shard=1).return_code == 1


def test_a_finished_app_whose_cromwell_failed_is_a_failed_run(
    sent: Any,
    app_jobs: Any,
    cloud_oss: Any,
    bucket: str,
) -> None:
    failures = [{"message": "Workflow input processing failed", "causedBy": []}]
    cloud_oss.put(
        bucket,
        "runs/outputs/workflow_metadata.json",
        json.dumps(metadata("Failed", failures=failures)).encode(),
    )
    app_jobs.finish_instance(sent.engine_run_id, 0, task="cromwell")

    run = sync(sent)

    assert run.state == RunState.FAILED
    assert run.failure_message == "Workflow input processing failed"


def test_abort_stops_the_app_job(sent: Any, app_jobs: Any) -> None:
    app_jobs.start_instances(sent.engine_run_id, task="cromwell")
    sync(sent)

    assert services.abort(sent)

    assert app_jobs.jobs[sent.engine_run_id].state == "Stopped"
    assert sync(sent).state == RunState.ABORTED


def test_a_busy_batchcompute_is_retried(
    app_jobs: Any,
    oss_project: Any,
    bucket: str,
    tiny_wdl: str,
    submit: Any,
) -> None:
    app_jobs.fail_next(2, status=503, code="ServiceUnavailable", route="POST /jobs")
    run = submit(
        tiny_wdl,
        project=oss_project,
        engine=Engine.BATCHCOMPUTE_CROMWELL,
        working_dir=f"oss://{bucket}/w/",
        outputs_dir=f"oss://{bucket}/o/",
    )

    assert services.start_run(run.pk, "worker") == RunState.SUBMITTED

    assert len(app_jobs.jobs) == 1


def test_local_folders_files_and_imports_are_refused(
    app_jobs: Any,
    oss_project: Any,
    submit: Any,
    storage_url: str,
) -> None:
    source = "version 1.0\nworkflow w {\n  input {\n    File reads\n  }\n}\n"
    from projects.models import StorageMapping

    StorageMapping.objects.create(
        project=oss_project, source=storage_url + "local/", destination="/mnt/local/"
    )

    with pytest.raises(services.SubmissionError) as refused:
        submit(
            source,
            {"w.reads": "/data/reads.bam"},
            project=oss_project,
            engine=Engine.BATCHCOMPUTE_CROMWELL,
            working_dir=storage_url + "local/work/",
        )

    assert refused.value.message_dict["engine"] == [
        "The BatchCompute Cromwell app reads and writes OSS: the working folder must be an "
        f"oss:// folder (not {storage_url}local/work/).",
        "/data/reads.bam: File inputs must be oss:// objects on BatchCompute.",
    ]
    assert not WorkflowRun.objects.exists()


def test_without_batchcompute_settings_submissions_are_refused(
    submit: Any, tiny_wdl: str, settings: Any
) -> None:
    settings.BATCHCOMPUTE_REGION = ""

    with pytest.raises(services.SubmissionError) as refused:
        submit(tiny_wdl, engine=Engine.BATCHCOMPUTE_CROMWELL)

    assert refused.value.message_dict["engine"][0] == (
        "The BatchCompute Cromwell engine cannot be used: "
        "BatchCompute is not configured (BATCHCOMPUTE_REGION is empty)."
    )
