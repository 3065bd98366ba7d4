"""Attack: a render node reports frames of chunks it does not hold.

Anyone who can publish to the events queue reaches the drain. A hostile node given chunk
A (and A's token) reports chunk B's frames done and B finished, without a token, with
A's token, with the token of a chunk attempt B had before, and with a made-up one. The
drain must apply none of it, and still apply A's own events. Nor may a token outlive a
retry, reach another chunk's frames of the same job, or a malformed message stop the
drain."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.db.models import F

from jobs import runner, services
from jobs.choices import FrameState, TaskState
from jobs.event_drain import taken_keys
from jobs.events import apply_events
from jobs.models import RenderJob, Task
from renderhub.node_events import EventSender, events_connection
from tests.jobs.conftest import make_fake_software
from tests.jobs.test_node_events import running_drain, running_job, token
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
    tokens = ["", token(mine.pk, 1), token(theirs.pk, 1), "0" * 32]
    events = []
    for seq, forged in enumerate(tokens, start=1):
        base = {"task": theirs.pk, "attempt": 2, "token": forged, "at": time.time()}
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
        "token": token(mine.pk, 1),
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
            sender.authorize(mine.pk, 1, token(mine.pk, 1))
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


@pytest.mark.django_db
def test_a_token_is_worth_nothing_after_a_retry_renumbers_the_attempts(
    chunks: list[Task],
) -> None:
    """A node ran attempt 1 of a chunk, the job failed and was retried: the chunk's new
    attempt is numbered 1 again. The old node's token must not report for it."""
    mine, _ = chunks
    old_token = token(mine.pk, 1)
    job = RenderJob.objects.get(pk=mine.job_id)
    services.cancel_job(job)
    assert services.retry_job(RenderJob.objects.get(pk=job.pk))
    claimed = runner.claim(mine.pk, "honest@node")
    assert claimed is not None and claimed[0].attempts == 1  # renumbered from 1
    event = {"task": mine.pk, "attempt": 1, "seq": 1, "token": old_token,
             "kind": "frame_done", "frame": mine.frames[0], "at": time.time()}  # fmt: skip
    applied = apply_events([event])
    assert (applied.forged, applied.frames_done) == (1, 0)
    assert not mine.frame_set.filter(state=FrameState.DONE).exists()


@pytest.mark.django_db
def test_a_node_cannot_report_another_chunks_frames_with_its_own_token(
    chunks: list[Task],
) -> None:
    mine, theirs = chunks
    Task.objects.filter(pk=theirs.pk).update(attempts=1)
    events = [
        {"task": mine.pk, "attempt": 1, "seq": n, "token": token(mine.pk, 1), "kind": kind,
         "frame": theirs.frames[0], "at": time.time()}
        for n, kind in enumerate(("frame_started", "frame_done"), start=1)
    ]  # fmt: skip
    applied = apply_events(events)
    assert applied.frames_done == 0
    frame = theirs.frame_set.get(number=theirs.frames[0])
    assert frame.state == FrameState.QUEUED  # neither started nor done by another's token


@pytest.mark.django_db(transaction=True)
def test_odd_messages_never_stop_the_drain_for_the_other_nodes(
    chunks: list[Task], settings: Any
) -> None:
    """Garbage a broker credential can push: JSON nested past the parser's depth, numbers
    that overflow a float, frames that are not numbers. Each is dropped; the honest
    node's frame is recorded all the same, and nothing waits behind them."""
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("the raw message is pushed into Redis's list")
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue, _ = taken_keys()
    client.delete(*taken_keys())
    mine, _ = chunks
    own = token(mine.pk, 1)
    base = {"task": mine.pk, "attempt": 1, "token": own}
    with running_drain(settings) as batches:
        client.lpush(queue, "[" * 100_000)
        with events_connection(settings.CELERY_BROKER_URL) as node:
            producer = node.Producer(serializer="json")
            for poison in (
                [{**base, "seq": 1, "kind": "heartbeat", "at": 10**400}],
                [{**base, "seq": 2, "kind": "frame_done", "frame": "x"}],
                [{**base, "seq": 3, "kind": "frame_done", "frame": 1, "seconds": "x"}],
                [{**base, "seq": 4, "kind": "progress", "frame": [1]}],
            ):
                producer.publish(poison, routing_key="renderhub.events")
            honest = [{**base, "seq": 5, "kind": "frame_done", "frame": mine.frames[0],
                       "seconds": 1.0, "at": time.time()}]  # fmt: skip
            producer.publish(honest, routing_key="renderhub.events")
        wait_for(
            lambda: mine.frame_set.filter(state=FrameState.DONE).exists(),
            timeout=30,
            what="the honest frame recorded past the odd messages",
        )
    assert client.llen(queue) == 0
    assert sum(a.invalid for a in batches) >= 4
