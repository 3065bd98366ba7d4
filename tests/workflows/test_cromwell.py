"""The Cromwell engine through requests against a fake Cromwell speaking REST API v1."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from workflows import services
from workflows.choices import CallStatus, Engine, RunState
from workflows.engines import EngineError
from workflows.engines.cromwell import CromwellClient, flatten_failures
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workflows.engines.cromwell.BACKOFF", 0.01)


@pytest.fixture
def sent(submit: Any, tiny_wdl: str, cromwell: Any) -> WorkflowRun:
    """A run handed to the fake Cromwell (what the start task does)."""
    run = submit(tiny_wdl, {"tiny.n": 3}, engine=Engine.CROMWELL, labels={"team": "genomics"})
    assert services.start_run(run.pk, "worker") == RunState.SUBMITTED
    run.refresh_from_db()
    return run


def sync(run: WorkflowRun) -> WorkflowRun:
    services.sync_run(run)
    run.refresh_from_db()
    return run


def test_it_submits_the_wdl_inputs_options_and_labels_as_multipart(
    sent: WorkflowRun, cromwell: Any, tiny_wdl: str, storage_root: Any
) -> None:
    workflow = cromwell.only()

    assert workflow.id == sent.engine_run_id  # chosen by RenderHub: retries are idempotent
    assert (sent.state, sent.engine_status) == (RunState.SUBMITTED, "Submitted")
    assert workflow.source == tiny_wdl
    assert workflow.inputs == {"tiny.n": 3}
    assert workflow.labels == {"team": "genomics", "renderhub-run": str(sent.pk)}
    # The run's folders become Cromwell's output and log folders (file:// as local paths).
    outputs_path = f"{storage_root}/output/workflows/{sent.pk}-tiny/outputs/"
    assert workflow.options["final_workflow_outputs_dir"] == outputs_path
    assert workflow.options["final_call_logs_dir"].endswith("/work/call_logs/")
    method, path, headers = cromwell.requests[0]
    assert (method, path) == ("POST", "/api/workflows/v1")
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")


def test_options_chosen_by_the_user_are_kept(
    submit: Any, tiny_wdl: str, cromwell: Any, storage_root: Any, storage_url: str
) -> None:
    # Folders inside the project only (tests/security/test_wdl_storage.py: the others).
    options = {"final_workflow_outputs_dir": storage_url + "scenes/mine/", "read_from_cache": False}
    run = submit(tiny_wdl, engine=Engine.CROMWELL, options=options)

    services.start_run(run.pk, "worker")

    sent = cromwell.only().options
    assert sent["final_workflow_outputs_dir"] == f"{storage_root}/scenes/mine/"
    assert sent["read_from_cache"] is False


def test_the_dependencies_zip_is_sent(
    submit: Any, cromwell: Any, storage_root: Any, storage_url: str
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lib.wdl", "version 1.0\ntask t { command <<< true >>> }\n")
    (storage_root / "scenes").mkdir(exist_ok=True)
    (storage_root / "scenes" / "deps.zip").write_bytes(buffer.getvalue())
    source = 'version 1.0\nimport "lib.wdl" as lib\nworkflow w { call lib.t }\n'
    run = submit(source, engine=Engine.CROMWELL, dependencies_url=storage_url + "scenes/deps.zip")

    services.start_run(run.pk, "worker")

    sent = zipfile.ZipFile(io.BytesIO(cromwell.only().dependencies))
    assert sent.namelist() == ["lib.wdl"]
    assert sent.read("lib.wdl") == b"version 1.0\ntask t { command <<< true >>> }\n"


def test_polling_follows_status_calls_shards_and_attempts(sent: WorkflowRun, cromwell: Any) -> None:
    wf_id = sent.engine_run_id
    cromwell.start(wf_id)
    cromwell.set_call(wf_id, "tiny.greet", shard=0, status="Done", returnCode=0, jobId="101")
    cromwell.set_call(wf_id, "tiny.greet", shard=1, attempt=1, status="RetryableFailure")
    cromwell.set_call(wf_id, "tiny.greet", shard=1, attempt=2, status="Running", jobId="103")
    cromwell.set_call(wf_id, "tiny.greet", shard=2, status="QueuedInCromwell")

    run = sync(sent)

    assert (run.state, run.engine_status) == (RunState.RUNNING, "Running")
    assert run.started_at is not None
    calls = {(c.shard, c.attempt): c for c in run.calls.all()}
    assert {k: c.status for k, c in calls.items()} == {
        (0, 1): CallStatus.DONE,
        (1, 1): CallStatus.RETRYABLE_FAILURE,
        (1, 2): CallStatus.RUNNING,
        (2, 1): CallStatus.QUEUED,
    }
    assert calls[(0, 1)].return_code == 0 and calls[(0, 1)].backend_job_id == "101"
    assert calls[(1, 2)].stderr.endswith("/call-greet/shard-1/attempt-2/execution/stderr")
    assert {c.name for c in calls.values()} == {"tiny.greet"}

    outputs = {"tiny.lines": ["hello 0", "hello 1", "hello 2"], "tiny.files": ["/x/0.txt"]}
    cromwell.set_call(wf_id, "tiny.greet", shard=1, attempt=2, status="Done", returnCode=0)
    cromwell.set_call(wf_id, "tiny.greet", shard=2, status="Done", returnCode=0)
    cromwell.finish(wf_id, "Succeeded", outputs=outputs)
    run = sync(run)

    assert run.state == RunState.SUCCEEDED
    assert run.outputs == outputs
    assert run.finished_at is not None
    assert run.calls.count() == 4  # updated in place, never duplicated
    assert set(run.calls.values_list("status", flat=True)) == {
        CallStatus.DONE,
        CallStatus.RETRYABLE_FAILURE,
    }
    # Polling asks for slim metadata: no submittedFiles, no call-cache hashes.
    metadata_requests = [p for m, p, _ in cromwell.requests if "/metadata" in p]
    assert metadata_requests and all("includeKey=status" in p for p in metadata_requests)


def test_cache_hits_are_shown(sent: WorkflowRun, cromwell: Any) -> None:
    cromwell.start(sent.engine_run_id)
    hit = {"hit": True, "result": "Cache Hit: abc:tiny.greet:0"}
    cromwell.set_call(sent.engine_run_id, "tiny.greet", shard=0, status="Done", callCaching=hit)

    run = sync(sent)

    assert run.calls.get().cache_hit
    assert run.calls.get().cached_from is None  # no run of this project is Cromwell's abc


def test_a_cache_hit_links_the_run_of_the_project_it_came_from(
    sent: WorkflowRun, submit: Any, tiny_wdl: str, cromwell: Any
) -> None:
    later = submit(tiny_wdl, {"tiny.n": 3}, engine=Engine.CROMWELL)
    services.start_run(later.pk, "worker")
    later.refresh_from_db()
    cromwell.start(later.engine_run_id)
    hit = {"hit": True, "result": f"Cache Hit: {sent.engine_run_id}:tiny.greet:0"}
    cromwell.set_call(later.engine_run_id, "tiny.greet", shard=0, status="Done", callCaching=hit)

    run = sync(later)

    assert run.calls.get().cached_from == sent.pk


def test_a_failed_workflow_keeps_cromwells_nested_reasons(sent: WorkflowRun, cromwell: Any) -> None:
    failures = [
        {
            "message": "Workflow failed",
            "causedBy": [
                {
                    "message": "Job tiny.greet:1:1 exited with return code 3 which has not "
                    "been declared as a valid return code.",
                    "causedBy": [],
                }
            ],
        }
    ]
    cromwell.start(sent.engine_run_id)
    cromwell.set_call(
        sent.engine_run_id,
        "tiny.greet",
        shard=1,
        status="Failed",
        returnCode=3,
        failures=failures[0]["causedBy"],
    )
    cromwell.finish(sent.engine_run_id, "Failed", failures=failures)

    run = sync(sent)

    assert run.state == RunState.FAILED
    assert run.failure_message == (
        "Workflow failed\nJob tiny.greet:1:1 exited with return code 3 which has not been "
        "declared as a valid return code."
    )
    call = run.calls.get()
    assert (call.return_code, call.status) == (3, CallStatus.FAILED)
    assert "return code 3" in call.failure_message


def test_abort_of_a_running_workflow_goes_through_aborting(
    sent: WorkflowRun, cromwell: Any
) -> None:
    cromwell.start(sent.engine_run_id)

    assert services.abort(sent)

    sent.refresh_from_db()
    assert sent.state == RunState.ABORTING
    assert cromwell.only().status == "Aborting"
    assert ("POST", f"/api/workflows/v1/{sent.engine_run_id}/abort") in [
        (m, p) for m, p, _ in cromwell.requests
    ]
    run = sync(sent)
    assert run.state == RunState.ABORTING  # until Cromwell says it stopped

    cromwell.finish(sent.engine_run_id, "Aborted")
    run = sync(run)
    assert run.state == RunState.ABORTED


def test_abort_before_cromwell_started_it_is_immediate(sent: WorkflowRun, cromwell: Any) -> None:
    assert services.abort(sent)

    assert cromwell.only().status == "Aborted"
    assert sync(sent).state == RunState.ABORTED


def test_abort_after_it_ended_at_cromwell_is_not_an_error(sent: WorkflowRun, cromwell: Any) -> None:
    cromwell.finish(sent.engine_run_id, "Succeeded", outputs={"tiny.lines": []})

    assert services.abort(sent)  # Cromwell answers 404: it is not in progress any more

    sent.refresh_from_db()
    assert sent.poll_error == ""
    assert sync(sent).state == RunState.SUCCEEDED


def test_a_run_not_yet_sent_is_aborted_without_asking_cromwell(
    submit: Any, tiny_wdl: str, cromwell: Any
) -> None:
    run = submit(tiny_wdl, engine=Engine.CROMWELL)

    assert services.abort(run)

    run.refresh_from_db()
    assert run.state == RunState.ABORTED
    assert services.start_run(run.pk, "worker") == "skipped"
    assert cromwell.requests == []


def test_submission_is_retried_on_503_and_stays_idempotent(
    submit: Any, tiny_wdl: str, cromwell: Any
) -> None:
    cromwell.fail_next(2, status=503)
    run = submit(tiny_wdl, engine=Engine.CROMWELL)

    assert services.start_run(run.pk, "worker") == RunState.SUBMITTED

    assert len(cromwell.workflows) == 1
    assert [m for m, _p, _h in cromwell.requests] == ["POST", "POST", "POST"]


def test_a_second_submission_of_the_same_run_finds_the_first(
    sent: WorkflowRun, cromwell: Any
) -> None:
    from workflows.engines import get_engine

    submission = get_engine(Engine.CROMWELL).start(sent)  # e.g. the first answer was lost

    assert submission.engine_run_id == sent.engine_run_id
    assert len(cromwell.workflows) == 1


def test_an_unreachable_cromwell_leaves_the_run_to_be_sent_again(
    submit: Any, tiny_wdl: str, settings: Any
) -> None:
    settings.CROMWELL_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    run = submit(tiny_wdl, engine=Engine.CROMWELL)

    assert services.start_run(run.pk, "worker") == "retry"

    run.refresh_from_db()
    assert run.state == RunState.SUBMITTED
    assert (run.sent_at, run.queued_at) == (None, None)
    assert run.poll_error.startswith("Could not reach the engine: Cromwell at http://127.0.0.1:9")


def test_the_auth_header_is_sent_but_never_shown(
    submit: Any, tiny_wdl: str, cromwell: Any, settings: Any, caplog: Any
) -> None:
    secret = "Bearer s3cr3t-token-value"
    cromwell.auth_header = secret
    settings.CROMWELL_AUTH_HEADER = secret
    run = submit(tiny_wdl, engine=Engine.CROMWELL)
    caplog.set_level(logging.DEBUG)

    services.start_run(run.pk, "worker")

    assert all(h.get("Authorization") == secret for _m, _p, h in cromwell.requests)
    settings.CROMWELL_AUTH_HEADER = "Bearer wrong"
    run.refresh_from_db()
    status = services.sync_run(run)
    run.refresh_from_db()
    assert status == RunState.SUBMITTED
    assert "Unauthorized (HTTP 401)" in run.poll_error
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in run.poll_error


def test_without_cromwell_url_submissions_are_refused(
    submit: Any, tiny_wdl: str, settings: Any
) -> None:
    settings.CROMWELL_URL = ""

    with pytest.raises(services.SubmissionError) as refused:
        submit(tiny_wdl, engine=Engine.CROMWELL)

    assert refused.value.message_dict["engine"] == [
        "The Cromwell engine needs the CROMWELL_URL setting, which is not set."
    ]
    assert not WorkflowRun.objects.exists()


def test_a_workflow_cromwell_never_heard_of_is_given_up_after_a_while(
    sent: WorkflowRun, cromwell: Any
) -> None:
    cromwell.workflows.clear()  # e.g. a server restarted with an in-memory database

    assert sync(sent).state == RunState.SUBMITTED
    assert "Unrecognized workflow ID" in sent.poll_error

    WorkflowRun.objects.filter(pk=sent.pk).update(sent_at=timezone.now() - timedelta(hours=1))
    sent.refresh_from_db()
    run = sync(sent)
    assert run.state == RunState.FAILED
    assert "lost the run" in run.failure_message


def test_the_beat_task_polls_every_active_remote_run(sent: WorkflowRun, cromwell: Any) -> None:
    cromwell.start(sent.engine_run_id)

    assert services.poll_runs() == 1

    sent.refresh_from_db()
    assert sent.state == RunState.RUNNING and sent.polled_at is not None


def test_logs_on_the_cromwell_host_are_explained(sent: WorkflowRun, cromwell: Any) -> None:
    cromwell.start(sent.engine_run_id)
    cromwell.set_call(sent.engine_run_id, "tiny.greet", shard=0, status="Running")
    call = sync(sent).calls.get()

    log = services.read_log(call, "stderr")

    assert not log.ok
    assert log.source.endswith("is not readable here (it is on the engine's machine)")


def test_the_client_reads_status_and_filtered_metadata(sent: WorkflowRun, cromwell: Any) -> None:
    client = CromwellClient(cromwell.url)
    wf_id = sent.engine_run_id
    cromwell.start(wf_id)
    cromwell.set_call(wf_id, "tiny.greet", shard=0, status="Done")

    assert client.status(wf_id) == "Running"
    full = client.metadata(wf_id, exclude=("submittedFiles",))
    assert "submittedFiles" not in full and full["calls"]["tiny.greet"][0]["shardIndex"] == 0
    with pytest.raises(EngineError) as bad:
        client.status("not-a-uuid")
    assert bad.value.status == 400 and "Invalid workflow ID" in str(bad.value)


def test_failures_are_flattened_without_repeats() -> None:
    nested = [{"message": "a", "causedBy": [{"message": "b"}, {"message": "a"}]}, "junk"]

    assert flatten_failures(nested) == "a\nb"
    assert flatten_failures(None) == ""
    assert json.loads(json.dumps(flatten_failures([]))) == ""
