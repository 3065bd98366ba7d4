"""Attack: a render node reports frames of chunks it does not hold.

Anyone who can publish to the events queue reaches the drain. A hostile node given chunk
A (and A's token) reports chunk B's frames done and B finished, without a token, with
A's token, with the token of a chunk attempt B had before, and with a made-up one. The
drain must apply none of it, and still apply A's own events."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.db.models import F

from jobs.choices import FrameState, TaskState
from jobs.event_drain import taken_keys
from jobs.event_tokens import chunk_token
from jobs.events import apply_events
from jobs.models import RenderJob, Task
from renderhub.node_events import EventSender, events_connection
from tests.jobs.conftest import make_fake_software
from tests.jobs.test_node_events import running_drain, running_job
from tests.workers import wait_for


@pytest.fixture
def chunks(project: Any, image: Any, cluster: Any, storage_root: Path) -> list[Task]:
    fake_software = make_fake_software(image)
    (storage_root / "scenes").mkdir(parents=True, exist_ok=True)
    (storage_root / "scenes" / "shot.blend").write_bytes(b"BLENDER-v304 a stand-in")
    job = running_job(project, fake_software, cluster, chunks=2, frames=3)
    Task.objects.filter(job=job, index=1).update(attempts=F("attempts") + 1)  # B: attempt 2
    return list(job.tasks.order_by("index"))


def forgeries(mine: Task, theirs: Task) -> list[dict[str, Any]]:
    """What the hostile node sends about chunk B (its current attempt is 2)."""
    tokens = ["", chunk_token(mine.pk, 1), chunk_token(theirs.pk, 1), "0" * 32]
    events = []
    for seq, token in enumerate(tokens, start=1):
        base = {"task": theirs.pk, "attempt": 2, "token": token, "at": time.time()}
        events.append({**base, "seq": 2 * seq, "kind": "frame_done", "frame": theirs.frames[0]})
        events.append({**base, "seq": 2 * seq + 1, "kind": "finished", "status": "success"})
    return events


def assert_untouched(theirs: Task) -> None:
    theirs.refresh_from_db()
    assert theirs.state == TaskState.RUNNING
    assert not theirs.frame_set.filter(state=FrameState.DONE).exists()


@pytest.mark.django_db
def test_events_for_a_chunk_without_its_token_are_dropped(chunks: list[Task]) -> None:
    mine, theirs = chunks
    own = {
        "task": mine.pk,
        "attempt": 1,
        "seq": 1,
        "token": chunk_token(mine.pk, 1),
        "kind": "frame_done",
        "frame": mine.frames[0],
        "at": time.time(),
    }
    applied = apply_events([*forgeries(mine, theirs), own])
    assert (applied.forged, applied.events, applied.frames_done) == (8, 1, 1)
    assert_untouched(theirs)
    assert mine.frame_set.get(number=mine.frames[0]).state == FrameState.DONE


@pytest.mark.django_db(transaction=True)
def test_through_the_broker_a_node_can_report_only_its_own_chunk(
    chunks: list[Task], settings: Any
) -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("exactly-once delivery holds on Redis (tests/jobs/test_node_events.py)")
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(*taken_keys())
    mine, theirs = chunks
    with running_drain(settings) as batches:
        with events_connection(settings.CELERY_BROKER_URL) as node:
            sender = EventSender(node, "hostile")
            sender.authorize(mine.pk, 1, chunk_token(mine.pk, 1))
            sender.event(theirs.pk, 2, "frame_done", frame=theirs.frames[1])  # not authorized
            sender.event(mine.pk, 1, "frame_done", frame=mine.frames[0], seconds=1.0)
            sender.flush()
            producer = node.Producer(serializer="json")  # hand-made, past the sender
            producer.publish(forgeries(mine, theirs), routing_key="renderhub.events")
        wait_for(lambda: sum(a.forged for a in batches) >= 9, timeout=30, what="9 refusals")
    assert sum(a.forged for a in batches) == 9
    assert_untouched(theirs)
    job = RenderJob.objects.get(pk=mine.job_id)
    assert job.frames_done == 1
