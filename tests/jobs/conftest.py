from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jobs.choices import TERMINAL_JOB_STATES

FAKE_RENDER = Path(__file__).with_name("fake_render.py")


def make_fake_software(image: Any) -> Any:
    """A renderer on ``image`` whose behaviour a test picks with the ``mode`` parameter."""
    from images.models import Software

    return Software.objects.create(
        image=image,
        name="fakerender",
        scene_suffixes=".blend",
        command_template=[
            sys.executable,
            str(FAKE_RENDER),
            "{output_pattern}",
            "{frames}",
            "{mode}",
        ],
        parameters=[
            {
                "name": "mode",
                "type": "choice",
                "choices": ["ok", "fail", "slow", "steady"],
                "default": "ok",
            }
        ],
        progress_parser="blender",
    )


@pytest.fixture
def fake_software(image: Any) -> Any:
    return make_fake_software(image)


@contextmanager
def render_worker_for(cluster: Any, settings: Any, prefix: str = "test") -> Iterator[Any]:
    """A real Celery worker (two threads) consuming the cluster's queue on the configured
    broker, named ``<prefix>-<cluster>@localhost``; a context manager so a test can start
    it when it likes (e.g. after opening a page on a queued job)."""
    from celery.contrib.testing.worker import start_worker

    from clusters import heartbeat
    from renderhub.celery import app

    settings.RENDER_HEARTBEAT_SECONDS = 1
    settings.NODE_HEARTBEAT_SECONDS = 1
    # Private queues: a demo worker or another test run on this broker never steals ours.
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = f"renderhub-{cluster.name}"
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=2,
            queues=[cluster.queue, app.conf.task_default_queue],
            perform_ping_check=False,
            hostname=f"{prefix}-{cluster.name}@localhost",
            shutdown_timeout=30,
        ) as worker:
            yield worker
    finally:
        # Celery's test worker never sends worker_shutdown: stop its node heartbeat here,
        # or it would write to the database after the test tore it down.
        heartbeat.stop()
        app.conf.task_default_queue = default_queue


@pytest.fixture
def render_worker(cluster: Any, settings: Any) -> Iterator[Any]:
    with render_worker_for(cluster, settings) as worker:
        yield worker


def wait_for(job: Any, timeout: float = 120, states: tuple[str, ...] = TERMINAL_JOB_STATES) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.state in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} still {job.state} after {timeout} s")
