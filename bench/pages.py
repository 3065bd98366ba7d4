"""Staff page benchmark: server time of the job pages with 10,000 jobs and 1,000,000 frames.

PostgreSQL (``--database-url``, default ``renderhub_bench`` on 127.0.0.1, created with
``createdb`` if missing) is filled once with bulk inserts and reused while its row counts
match. Requests go through Django's test ``Client`` in this process: the whole middleware
stack (sessions, auth, login required, CSRF), the view, its queries and the template, but
no HTTP server. Static files are collected first, so templates use the hashed names as
in production. The user is a project member (not a superuser), so every page pays the
membership filter.

Usage: ``python bench/pages.py [--repeat 50] [--rebuild]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/renderhub_bench"
BIG_FRAMES = 10_000
BIG_CHUNKS = 64
ACTIVE_JOBS = 300  # queued or running; the rest have ended


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--rebuild", action="store_true", help="refill even if counts match")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return parser.parse_args()


def ensure_database(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    command = ["createdb", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    command += ["-U", parts.username or "postgres", name]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode and "already exists" not in result.stderr:
        raise SystemExit(f"createdb failed: {result.stderr.strip()}")


def setup(args: argparse.Namespace) -> None:
    var = Path(tempfile.mkdtemp(prefix="renderhub-bench-pages-"))
    os.environ.update(
        RENDERHUB_VAR_DIR=str(var),
        DATABASE_URL=args.database_url,
        DJANGO_ALLOWED_HOSTS="testserver",
        DJANGO_SETTINGS_MODULE="renderhub.settings",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)


def fill(args: argparse.Namespace) -> Any:
    """The data set: one 10,000-frame running job, the other jobs sharing the rest."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from clusters.models import Cluster
    from images.models import ComputeImage, Software
    from jobs.choices import FrameState, JobState, TaskState
    from jobs.models import Frame, RenderJob, Task
    from projects.models import Project

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    if (
        not args.rebuild
        and RenderJob.objects.count() == args.jobs
        and Frame.objects.count() == args.frames
    ):
        return user, RenderJob.objects.get(name="big")
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_frame, jobs_task, jobs_renderjob RESTART IDENTITY CASCADE")
    image, _ = ComputeImage.objects.get_or_create(
        name="local-linux", defaults={"image_id": "local"}
    )
    software, _ = Software.objects.get_or_create(
        image=image, name="blender", defaults={"command_template": ["blender", "{scene}"]}
    )
    cluster, _ = Cluster.objects.get_or_create(name="bench", defaults={"image": image})
    projects = []
    for i in range(5):
        project, _ = Project.objects.get_or_create(
            name=f"bench-{i}", defaults={"image": image, "output_prefix": "file:///tmp/out/"}
        )
        project.members.add(user)
        projects.append(project)
    small = args.jobs - 1
    per_job, extra = divmod(args.frames - BIG_FRAMES, small)  # the first `extra` get one more
    now = timezone.now()
    counts = [BIG_FRAMES] + [per_job + (1 if i <= extra else 0) for i in range(1, args.jobs)]
    ended = [JobState.FINISHED] * 7 + [JobState.FAILED, JobState.CANCELLED]
    frame_states = [FrameState.DONE] * 6 + [FrameState.QUEUED] * 3 + [FrameState.FAILED]

    def done(i: int) -> int:
        """Frames done: all of an ended job, six in ten of an active one (as in frames())."""
        if i >= ACTIVE_JOBS:
            return counts[i]
        return sum(1 for n in range(1, counts[i] + 1) if frame_states[n % 10] == FrameState.DONE)

    def failed(i: int) -> int:
        return 0 if i >= ACTIVE_JOBS else sum(1 for n in range(1, counts[i] + 1) if n % 10 == 9)

    with transaction.atomic():
        jobs = RenderJob.objects.bulk_create(
            (
                RenderJob(
                    project=projects[i % len(projects)],
                    software=software,
                    cluster=cluster,
                    submitted_by=user,
                    name="big" if i == 0 else f"shot-{i:05d}",
                    scene_url=f"file:///tmp/scenes/shot-{i:05d}.blend",
                    frame_spec=f"1-{counts[i]}",
                    frame_count=counts[i],
                    node_count=BIG_CHUNKS if i == 0 else 1,
                    output_url=f"file:///tmp/out/{i}/",
                    state=JobState.RUNNING if i < ACTIVE_JOBS else ended[i % len(ended)],
                    failure_reason=(
                        "Out of memory"
                        if i >= ACTIVE_JOBS and ended[i % len(ended)] == JobState.FAILED
                        else ""
                    ),
                    frames_done=done(i),
                    frames_failed=failed(i),
                    render_seconds=2.0 * done(i),
                    started_at=now,
                    finished_at=None if i < ACTIVE_JOBS else now,
                )
                for i in range(args.jobs)
            ),
            batch_size=2000,
        )
        tasks: list[Task] = []
        for i, job in enumerate(jobs):
            count = job.frame_count
            chunks = BIG_CHUNKS if i == 0 else 1
            size = -(-count // chunks)
            for c in range(chunks):
                numbers = list(range(c * size + 1, min(count, (c + 1) * size) + 1))
                tasks.append(
                    Task(
                        job=job,
                        index=c,
                        frames=numbers,
                        state=TaskState.RUNNING if i < ACTIVE_JOBS else TaskState.DONE,
                        node=f"render@node-{c % 16}",
                        attempts=1,
                        cpu_percent=180.0,
                        current_frame=numbers[0],
                    )
                )
        tasks = Task.objects.bulk_create(tasks, batch_size=2000)

        def frames() -> Any:
            for task in tasks:
                active = task.job_id <= jobs[ACTIVE_JOBS - 1].pk
                for n in task.frames:
                    state = frame_states[n % 10] if active else FrameState.DONE
                    yield Frame(
                        job_id=task.job_id,
                        task_id=task.pk,
                        number=n,
                        state=state,
                        seconds=2.0 if state == FrameState.DONE else None,
                        failure_reason="Out of memory" if state == FrameState.FAILED else "",
                    )

        rows = frames()
        while batch := list(islice(rows, 20_000)):  # bulk_create would hold all 1M at once
            Frame.objects.bulk_create(batch, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"filled {args.jobs} jobs, {Frame.objects.count()} frames in "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    return user, jobs[0]


def measure(client: Any, url: str, repeat: int, **headers: str) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):  # warm: templates compiled, connection open, caches filled
        assert client.get(url, **headers).status_code == 200, url
    with CaptureQueriesContext(connection) as queries:
        client.get(url, **headers)
    query_count = len(queries.captured_queries)  # the next request resets the query log
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url, **headers)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    times.sort()
    return {
        "url": url,
        "queries": query_count,
        "bytes": len(response.content),
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
        "max_ms": round(times[-1], 1),
    }


def main() -> int:
    args = parse_args()
    ensure_database(args.database_url)
    setup(args)
    user, big = fill(args)
    from django.test import Client

    from jobs.models import Frame

    assert Frame.objects.filter(job=big).count() == BIG_FRAMES
    client = Client()
    client.force_login(user)
    load_before = os.getloadavg()
    pages = {
        "running jobs list": measure(client, "/jobs/", args.repeat),
        "finished jobs list": measure(client, "/jobs/finished/", args.repeat),
        "running list, filtered + search": measure(
            client, "/jobs/?q=shot-00&state=running", args.repeat
        ),
        "dashboard": measure(client, "/", args.repeat),
        "job detail, 10,000 frames": measure(client, f"/jobs/{big.pk}/", args.repeat),
        "job detail live partial (htmx poll)": measure(
            client, f"/jobs/{big.pk}/", args.repeat, HTTP_HX_REQUEST="true"
        ),
    }
    result = {
        "when": datetime.now().isoformat(timespec="seconds"),
        "jobs": args.jobs,
        "frames": args.frames,
        "repeat": args.repeat,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "pages": pages,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pages.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
