"""Node events as broker messages, applied by the manager in batches (issue 15): the
frames, counters and heartbeats they carry land once each, in order per chunk, for the
chunk's current attempt only, at a bounded number of queries per batch; through the real
broker (EventSender on its own connection per node, the drain) none is lost or doubled;
``manage.py node_events`` applies them until stopped."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from clusters.models import ClusterNode
from jobs import services
from jobs.choices import FrameState, TaskState
from jobs.event_drain import drain
from jobs.event_tokens import chunk_token
from jobs.events import Applied, apply_events
from jobs.models import RenderJob, Task, TaskAttempt
from renderhub import storage
from renderhub.node_events import EventSender, events_connection
from tests.reliability.conftest import process_env
from tests.workers import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.embedded  # the filesystem broker as much as Redis


def running_job(project: Any, software: Any, cluster: Any, chunks: int, frames: int) -> RenderJob:
    """A job whose chunks nodes have claimed (attempt 1), as the runner's claim leaves them."""
    request = services.RenderRequest(
        project=project,
        software=software,
        cluster=cluster,
        scenes=[project.mappings.get().source + "shot.blend"],
        frames=f"1-{chunks * frames}",
        chunk_size=frames,
    )
    [job] = services.submit_render(request)
    job.tasks.update(state=TaskState.RUNNING, attempts=1, node="node-x", started_at=timezone.now())
    return job


@pytest.fixture(autouse=True)
def empty_events_queue(settings: Any) -> None:
    """No event message of an earlier test (or run) on this Redis is drained by this one."""
    if settings.CELERY_BROKER_URL.startswith("redis"):
        import redis

        from jobs.event_drain import taken_keys

        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(*taken_keys())


@contextmanager
def running_drain(settings: Any, name: str = "default") -> Iterator[list[Applied]]:
    """The drain in a thread on the run's broker, stopped on leaving; yields the batches it
    has applied so far."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    stop, batches = threading.Event(), []
    manager = events_connection(settings.CELERY_BROKER_URL, options)
    thread = threading.Thread(
        target=drain,
        args=(manager, stop),
        kwargs={"on_batch": lambda applied, messages: batches.append(applied), "name": name},
    )
    thread.start()
    try:
        yield batches
    finally:
        stop.set()
        thread.join()
        manager.release()


@pytest.fixture
def job(project: Any, fake_software: Any, cluster: Any, storage_root: Path) -> RenderJob:
    (storage_root / "scenes").mkdir(parents=True, exist_ok=True)
    (storage_root / "scenes" / "shot.blend").write_bytes(b"BLENDER-v304 a stand-in")
    return running_job(project, fake_software, cluster, chunks=2, frames=3)


def frames_done(job: RenderJob) -> int:
    job.refresh_from_db()
    return job.frames_done


def token(task_id: int, attempt: int) -> str:
    """The token the manager gave with ``attempt`` of the chunk as it was claimed."""
    return chunk_token(task_id, attempt, Task.objects.get(pk=task_id).started_at)


def signed(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its chunk attempt's token, as a node the manager gave it sends it."""
    return {**event, "token": token(event["task"], event["attempt"])}


def events_for(task: Task, frames: list[int], start: int = 1) -> list[dict[str, Any]]:
    seq, out = start, []
    for number in frames:
        for kind, extra in (
            ("frame_started", {}),
            ("frame_done", {"seconds": 2.0, "output": "png", "thumbnail": "jpg"}),
        ):
            out.append(
                {
                    "task": task.pk,
                    "attempt": 1,
                    "token": token(task.pk, 1),
                    "seq": seq,
                    "kind": kind,
                    "frame": number,
                    "at": time.time(),
                    **extra,
                }
            )
            seq += 1
    return out


@pytest.mark.django_db
def test_a_batch_lands_once_in_order_for_the_current_attempt_only(
    job: RenderJob, django_assert_max_num_queries: Any
) -> None:
    first, second = job.tasks.order_by("index")
    beat = time.time()
    batch = [
        *reversed(events_for(first, first.frames)),  # out of order: applied by seq
        *events_for(second, second.frames[:1]),
        signed(
            {
                "task": second.pk,
                "attempt": 1,
                "seq": 9,
                "kind": "heartbeat",
                "at": beat,
                "cpu": 87.5,
                "tails": {"stdout_tail": "Fra:4 Mem:12M", "secret_column": "x"},
            }
        ),
        signed({"task": second.pk, "attempt": 0, "seq": 1, "kind": "frame_done", "frame": 5}),
        {"task": second.pk, "kind": "frame_done"},  # not an event
    ]

    with django_assert_max_num_queries(12):
        applied = apply_events(batch)

    assert (applied.events, applied.stale, applied.invalid, applied.frames_done) == (9, 1, 1, 4)
    job.refresh_from_db()
    assert job.frames_done == 4 and job.render_seconds == 8.0
    done = job.frame_set.filter(state=FrameState.DONE).order_by("number")
    assert [f.number for f in done] == [1, 2, 3, 4]
    # The URLs are the manager's, made from the job's output folder and the tail reported.
    assert done[0].output_url == storage.join(job.output_url, "shot_0001.png")
    assert done[0].thumbnail_url == storage.join(job.output_url, "_thumbs/shot_0001.jpg")
    second.refresh_from_db()
    assert second.cpu_percent == 87.5 and second.stdout_tail == "Fra:4 Mem:12M"
    assert second.heartbeat_at is not None

    # Delivered again (a broker after a crash): nothing changes, nothing is counted twice.
    older = {**batch[-3], "at": beat - 60}  # and an older heartbeat never moves it back
    again = apply_events([*batch, older])
    assert again.frames_done == 0
    job.refresh_from_db()
    assert job.frames_done == 4
    assert Task.objects.get(pk=second.pk).heartbeat_at == second.heartbeat_at


@pytest.mark.django_db
def test_the_queries_of_a_batch_do_not_grow_with_it(
    project: Any,
    fake_software: Any,
    cluster: Any,
    storage_root: Path,
    django_assert_max_num_queries: Any,
) -> None:
    (storage_root / "scenes").mkdir(parents=True, exist_ok=True)
    (storage_root / "scenes" / "shot.blend").write_bytes(b"BLENDER-v304 a stand-in")
    big = running_job(project, fake_software, cluster, chunks=20, frames=10)
    batch = [e for task in big.tasks.all() for e in events_for(task, task.frames)]
    # The node said its cores and slots: the frames' full-node costs are worked out too.
    ClusterNode.objects.create(cluster=cluster, name="node-x", cpu_count=2, concurrency=2)
    # Started well before the frames (two seconds each, taken to end as the batch comes):
    # a batch applied within two seconds of the chunks' start would find fewer running.
    began = timezone.now() - timedelta(minutes=1)
    for task in big.tasks.all():
        TaskAttempt.objects.create(task=task, job=big, number=1, node="node-x", started_at=began)

    # Per kind one statement, and three for the frames' costs, whatever the chunks.
    with django_assert_max_num_queries(11):
        applied = apply_events(batch)

    assert applied.frames_done == 200
    big.refresh_from_db()
    assert big.frames_done == 200
    # Twenty chunks on a node of two slots: each frame had a full node's share.
    assert set(big.frame_set.values_list("cost_seconds", flat=True)) == {2.0}


def test_events_from_many_nodes_through_the_broker_arrive_once_each(
    job: RenderJob, settings: Any, transactional_db: Any
) -> None:
    tasks = list(job.tasks.order_by("index"))
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    # Two drains side by side, each with its own name.
    with running_drain(settings, "a") as first, running_drain(settings, "b") as second:
        senders = []
        for task in tasks:  # one node per chunk, each on its own connection
            connection = events_connection(settings.CELERY_BROKER_URL, options)
            sender = EventSender(connection, f"node-{task.index}", flush_every=0.05)
            sender.authorize(task.pk, 1, token(task.pk, 1))
            sender.start()
            senders.append((sender, connection))
            for number in task.frames:
                sender.event(task.pk, 1, "frame_started", frame=number)
                sender.event(task.pk, 1, "progress", frame=number, percent=50)
                sender.event(task.pk, 1, "frame_done", frame=number, seconds=1.0)
        for sender, connection in senders:
            sender.close()
            connection.release()
        wait_for(lambda: frames_done(job) == job.frame_count, timeout=30, what="every frame")

    batches = first + second
    # Each event says when it left its node: what the fleet bench's publish-to-row reads.
    assert sum(len(a.transits) for a in batches) == sum(a.events + a.stale for a in batches)
    assert job.frames_done == job.frame_count == 6
    assert sum(a.frames_done for a in batches) == 6  # none twice
    assert sum(a.events + a.stale for a in batches) == sum(s.sent for s, _ in senders)


def test_the_command_applies_events_until_stopped(
    job: RenderJob, settings: Any, transactional_db: Any, tmp_path: Path
) -> None:
    env = process_env(settings)
    out = open(tmp_path / "node_events.log", "wb")  # noqa: SIM115
    command = subprocess.Popen(
        [sys.executable, "manage.py", "node_events"], cwd=ROOT, env=env, stdout=out, stderr=out
    )
    try:
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        with events_connection(settings.CELERY_BROKER_URL, options) as connection:
            sender = EventSender(connection, "node-a")
            task = job.tasks.order_by("index").first()
            assert task is not None
            sender.authorize(task.pk, 1, token(task.pk, 1))
            for number in task.frames:
                sender.event(task.pk, 1, "frame_done", frame=number, seconds=1.0)
            sender.flush()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and job.frames_done < 3:
            time.sleep(0.2)
            job.refresh_from_db()
        assert job.frames_done == 3
    finally:
        command.terminate()
        code = command.wait(timeout=30)
        out.close()
    assert code == 0, (tmp_path / "node_events.log").read_text()


@pytest.mark.django_db
def test_a_chunk_ends_after_its_frames_of_the_same_batch_and_only_once(job: RenderJob) -> None:
    first, second = job.tasks.order_by("index")
    finished = signed(
        {
            "task": first.pk,
            "attempt": 1,
            "seq": 99,
            "kind": "finished",
            "status": "success",
            "exit_code": 0,
            "at": time.time(),
        }
    )
    batch = [finished, *events_for(first, first.frames)]  # finished first in the list

    apply_events(batch)

    first.refresh_from_db()
    assert first.state == TaskState.DONE
    assert first.frame_set.filter(state=FrameState.DONE).count() == 3
    attempts = list(first.history.values_list("state", flat=True))
    apply_events(batch)  # again: the chunk does not end twice
    assert list(first.history.values_list("state", flat=True)) == attempts

    # A renderer's failure another node may cure: the chunk is queued again, frames kept.
    failed = signed(
        {
            "task": second.pk,
            "attempt": 1,
            "seq": 5,
            "kind": "finished",
            "status": "renderer_failed",
            "reason": "Blender quit",
            "exit_code": 4,
            "at": 0,
        }
    )
    apply_events([*events_for(second, second.frames[:1]), failed])
    second.refresh_from_db()
    assert (second.state, second.failure_reason) == (TaskState.QUEUED, "Blender quit")
    assert second.frame_set.filter(state=FrameState.DONE).count() == 1


def test_a_message_that_is_not_json_is_dropped_and_the_drain_goes_on(
    job: RenderJob, settings: Any, transactional_db: Any
) -> None:
    from renderhub.node_events import EVENTS_EXCHANGE, EVENTS_QUEUE, events_queue

    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    task = job.tasks.order_by("index").first()
    assert task is not None
    with events_connection(settings.CELERY_BROKER_URL, options) as node:
        producer = node.Producer()
        producer.publish(  # what a hostile node might send: not JSON
            b"\x80\x04not json",
            exchange=EVENTS_EXCHANGE,
            routing_key=EVENTS_QUEUE,
            declare=[events_queue()],
            content_type="application/x-python-serialize",
            content_encoding="binary",
        )
        sender = EventSender(node, "node-a")
        sender.authorize(task.pk, 1, token(task.pk, 1))
        sender.event(task.pk, 1, "frame_done", frame=task.frames[0], seconds=1.0)
        sender.flush()
    with running_drain(settings):
        wait_for(lambda: frames_done(job) == 1, timeout=30, what="the good message's frame")
    assert job.frames_done == 1


def test_a_batch_taken_by_a_drain_that_died_is_applied_when_it_starts_again(
    job: RenderJob, settings: Any, transactional_db: Any
) -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("the taken list is the Redis drain's")
    import redis

    from jobs.event_drain import TAKE, taken_keys

    task = job.tasks.order_by("index").first()
    assert task is not None
    queue, taken = taken_keys()
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    with events_connection(settings.CELERY_BROKER_URL) as node:
        sender = EventSender(node, "node-a")
        sender.authorize(task.pk, 1, token(task.pk, 1))
        for number in task.frames:
            sender.event(task.pk, 1, "frame_done", frame=number, seconds=1.0)
            sender.flush()  # one message per frame
    # A drain took the three messages and died before applying them: the queue is empty.
    assert len(client.register_script(TAKE)(keys=[queue, taken], args=[500])) == 3
    assert client.llen(queue) == 0 and client.llen(taken) == 3

    with running_drain(settings) as batches:
        wait_for(lambda: not client.llen(taken), timeout=30, what="the taken list applied")
    job.refresh_from_db()
    assert job.frames_done == len(task.frames) == 3
    assert sum(a.frames_done for a in batches) == 3
    assert client.llen(taken) == 0


def test_a_second_drain_under_a_name_in_use_is_refused(
    settings: Any, transactional_db: Any, monkeypatch: Any
) -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("names keep the Redis drain's taken lists apart")
    from jobs import event_drain

    monkeypatch.setattr(event_drain, "NAME_LOCK_SECONDS", 2)  # how long it waits, too
    import redis

    lock = event_drain.taken_keys("night")[1] + ".lock"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    with running_drain(settings, "night"):
        wait_for(lambda: client.exists(lock), timeout=5, what="the first drain holds the name")
        refused = pytest.raises(event_drain.DrainNameTaken, match="'night' is running")
        with events_connection(settings.CELERY_BROKER_URL) as second, refused:
            drain(second, threading.Event(), name="night")
    assert not client.exists(lock)  # stopped, the first one let the name go
