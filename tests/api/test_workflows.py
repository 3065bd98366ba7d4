"""Workflow runs over the API: submit, list, status, calls, logs, outputs, abort, events."""

from __future__ import annotations

import pytest

from notifications import services
from tests.api.conftest import HELLO_WDL
from workflows.choices import CallStatus, Engine, RunState
from workflows.models import Call, WorkflowRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _bob_runs_on_host(bob) -> None:
    """bob submits to miniwdl here, which needs workflows.run_on_host (granted explicitly;
    tests/security/test_wdl_host_permission.py shows the refusal without it)."""
    from tests.workflows.grants import grant_run_on_host

    grant_run_on_host(bob)


@pytest.fixture
def run(workflow_run: WorkflowRun) -> WorkflowRun:
    return workflow_run


def test_a_member_submits_a_workflow(token_client, bob, project) -> None:
    response = token_client(bob).post(
        "/api/workflows/",
        {"project": "shots", "wdl_source": HELLO_WDL, "inputs": {"hello.who": "bob"}},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    run = WorkflowRun.objects.get(pk=body["id"])
    assert run.submitted_by == bob and run.project == project
    assert run.workflow_name == "hello" and run.inputs == {"hello.who": "bob"}
    assert body["state"] == RunState.SUBMITTED
    assert response["Location"].endswith(f"/api/workflows/{run.pk}/")


def test_submission_errors_come_back_per_field(token_client, bob, charlie, project) -> None:
    bad = token_client(bob).post(
        "/api/workflows/",
        {"project": "shots", "wdl_source": "version 1.0\nworkflow {", "labels": [1]},
        format="json",
    )
    assert bad.status_code == 400
    assert set(bad.json()) >= {"wdl", "labels"}
    hidden = token_client(charlie).post(
        "/api/workflows/", {"project": "shots", "wdl_source": HELLO_WDL}, format="json"
    )
    assert hidden.status_code == 400 and hidden.json() == {
        "project": ["There is no project 'shots'."]
    }
    assert not WorkflowRun.objects.exists()


def test_list_detail_and_404_for_outsiders(token_client, bob, charlie, run) -> None:
    client = token_client(bob)
    assert [r["id"] for r in client.get("/api/workflows/").json()["results"]] == [run.pk]
    assert client.get("/api/workflows/?state=running").json()["results"] == []
    assert client.get("/api/workflows/?project=shots&state=submitted").json()["results"]
    assert client.get("/api/workflows/?state=nonsense").status_code == 400
    assert client.get(f"/api/workflows/{run.pk}/").json()["workflow_name"] == "hello"
    outsider = token_client(charlie)
    assert outsider.get("/api/workflows/").json()["results"] == []
    for path in ("", "calls/", "logs/", "outputs/"):
        assert outsider.get(f"/api/workflows/{run.pk}/{path}").status_code == 404, path
    assert outsider.post(f"/api/workflows/{run.pk}/abort/").status_code == 404


def test_calls_and_their_logs(token_client, bob, run, storage_root, storage_url) -> None:
    log_file = storage_root / "output" / "greet.stderr"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_bytes(b"line 1\nsomething broke\n")
    failed = Call.objects.create(
        run=run,
        key="greet-1",
        name="hello.greet",
        status=CallStatus.FAILED,
        return_code=1,
        stderr=storage_url + "output/greet.stderr",
        failure_message="exit 1",
    )
    Call.objects.create(run=run, key="greet-2", name="hello.greet", attempt=2)
    client = token_client(bob)
    calls = client.get(f"/api/workflows/{run.pk}/calls/").json()["results"]
    assert [(c["label"], c["attempt"]) for c in calls] == [("hello.greet", 1), ("hello.greet", 2)]
    only_failed = client.get(f"/api/workflows/{run.pk}/calls/?status=Failed").json()["results"]
    assert [c["id"] for c in only_failed] == [failed.pk]

    logs = client.get(f"/api/workflows/{run.pk}/logs/?call={failed.pk}&tail_bytes=16").json()
    [entry] = logs["results"]
    assert entry["stderr"]["ok"] and entry["stderr"]["tail"] == "something broke\n"
    assert "/storage/signed/" in entry["stderr"]["link"]
    assert entry["stdout"] == {
        "tail": "",
        "source": "the engine has not reported this log",
        "ok": False,
        "link": None,
    }


def test_outputs_with_signed_links(token_client, bob, run, storage_root, storage_url) -> None:
    from renderhub import storage

    greeting = storage.join(run.outputs_dir, "greeting.txt")
    backend, key = storage.resolve(greeting)
    backend.write(key, b"hello bob\n")
    WorkflowRun.objects.filter(pk=run.pk).update(
        outputs={"hello.greeting": greeting, "hello.count": 3}
    )
    body = token_client(bob).get(f"/api/workflows/{run.pk}/outputs/").json()
    [file] = body["files"]
    assert file["name"] == "hello.greeting" and "/storage/signed/" in file["link"]
    assert body["values"] == {"hello.count": 3}


def test_abort(token_client, bob, run) -> None:
    client = token_client(bob)
    response = client.post(f"/api/workflows/{run.pk}/abort/")
    assert response.status_code == 200, response.content
    assert response.json()["run"]["state"] == RunState.ABORTED  # it had not started
    again = client.post(f"/api/workflows/{run.pk}/abort/")
    assert again.status_code == 409


def test_a_run_state_change_is_delivered_and_mailed(
    run, webhook, receiver, queued, mailoutbox
) -> None:
    from notifications.tasks import send_workflow_email

    [delivery] = services.workflow_state_changed(run.pk, RunState.RUNNING, RunState.FAILED)
    assert delivery.event == "workflow.state_changed"
    assert delivery.payload["data"]["run"]["id"] == run.pk
    assert delivery.payload["data"]["new_state"] == "failed"
    assert services.attempt_delivery(str(delivery.pk)).state == "succeeded"
    assert receiver.received[0].verified
    assert receiver.received[0].headers["X-RenderHub-Event"] == "workflow.state_changed"
    assert queued["run_emails"] == [(run.pk, "failed")]
    assert send_workflow_email(run.pk, "failed") is True
    [mail] = mailoutbox
    assert mail.to == ["bob@example.com"] and mail.subject.endswith("hello failed")


def test_aborting_through_the_api_announces_the_run(
    token_client, bob, run, webhook, queued, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(bob).post(f"/api/workflows/{run.pk}/abort/")
    assert response.status_code == 200
    [delivery] = webhook.deliveries.all()
    assert delivery.event == "workflow.state_changed"
    assert delivery.payload["data"]["old_state"] == "submitted"
    assert delivery.payload["data"]["new_state"] == "aborted"
    assert queued["run_emails"] == [(run.pk, "aborted")]


@pytest.mark.parametrize("engine", [e.value for e in Engine])
def test_every_engine_is_a_submission_or_a_field_error(token_client, bob, project, engine) -> None:
    response = token_client(bob).post(
        "/api/workflows/",
        {"project": "shots", "wdl_source": HELLO_WDL, "engine": engine},
        format="json",
    )
    assert response.status_code in (201, 400), response.content
