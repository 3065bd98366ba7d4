"""The manager's answers to render nodes without keys: claims and renewed grants."""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobs import node_claims, runner, services
from jobs.choices import FrameState, TaskState
from jobs.event_tokens import claim_ticket
from tests.jobs.conftest import submit_one

pytestmark = pytest.mark.django_db


def claim_of(task: Any, **extra: Any) -> dict[str, Any]:
    return {"kind": "claim", "id": "c1", "task": task.pk, "ticket": claim_ticket(task.pk),
            "node": "n@node", "reply": "renderhub.node.x.n.1", **extra}  # fmt: skip


def test_a_claim_whose_node_stopped_waiting_is_not_taken(
    project, fake_software, cluster, scene_url
) -> None:
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-4", nodes=1)
    task = job.tasks.get()
    # Taken by the drain 200 s ago (the manager's clock) for a node that waits 120 s.
    late = node_claims.answer_claim(claim_of(task, taken_at=time.time() - 200, wait=120))
    assert late["kind"] == "refused" and "stopped waiting" in late["reason"]
    task.refresh_from_db()
    assert task.state == TaskState.QUEUED and task.attempts == 0

    # The node's own clock does not matter: a claim it stamped long ago is still answered.
    answer = node_claims.answer_claim(
        claim_of(task, sent=time.time() - 10_000, taken_at=time.time(), wait=120)
    )
    assert answer["kind"] == "chunk" and answer["frames"] == [1, 2, 3, 4]
    assert answer["grant_seconds"] > 0 and sorted(answer["outputs"]) == ["1", "2", "3", "4"]


def test_an_answer_made_too_late_puts_the_chunk_back_without_counting_it(
    project, fake_software, cluster, scene_url, monkeypatch
) -> None:
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-2", nodes=1)
    task = job.tasks.get()
    allowed = task.max_attempts
    checks = iter([False, True])  # still waiting when taken, gone once the answer is made
    monkeypatch.setattr(node_claims, "_given_up", lambda claim: next(checks))
    answer = node_claims.answer_claim(claim_of(task, taken_at=time.time(), wait=120))
    assert answer["kind"] == "refused"
    task.refresh_from_db()
    assert task.state == TaskState.QUEUED and task.node == ""
    assert task.attempts == 1 and task.max_attempts == allowed + 1  # the try is given back
    attempt = task.history.get()
    assert attempt.state == "requeued" and "stopped waiting" in attempt.failure_reason


def test_grants_are_renewed_for_a_running_attempts_open_frames_only(
    project, fake_software, cluster, scene_url, settings
) -> None:
    settings.RENDER_GRANT_SECONDS = 120
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-3", nodes=1)
    task, _ = runner.claim(job.tasks.get().pk, "n@node")
    node_claims.chunk_for_node(task, task.history.get())
    services.frame_done(task, 1, seconds=1.0, output_url="", thumbnail_url="")

    renewed = node_claims.renew_grants(task.pk, task.attempts)
    assert renewed is not None and renewed["kind"] == "grants"
    assert sorted(renewed["outputs"]) == ["2", "3"]  # frame 1 is done
    assert renewed["grant_seconds"] == 120 and renewed["logs"]["url"]

    assert node_claims.renew_grants(task.pk, task.attempts + 1) is None  # not its attempt
    services.cancel_job(job)
    assert node_claims.renew_grants(task.pk, task.attempts) is None  # no longer running
    assert job.frame_set.filter(state=FrameState.DONE).count() == 1
