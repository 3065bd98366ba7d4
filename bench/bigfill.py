"""Fill PostgreSQL with many jobs and frames in minutes: set-based SQL, no ORM loops.

One template row per table is saved through the ORM (so every column, including ones
added later, gets its model default); then ``INSERT … SELECT`` over ``generate_series``
copies it, overriding the columns that vary. 100,000 jobs and 10,000,000 frames take a
few minutes on a 2-core machine, most of it PostgreSQL building the frame indexes.

The shape follows ``bench/pages.py``: one "big" running job with ``big_frames`` frames in
64 chunks, ``ACTIVE_JOBS`` other running jobs, the rest finished, failed or cancelled;
frames of running jobs are 6 in 10 done, 1 running, 2 queued, 1 failed. Counters on the
job rows agree with their frames.
"""

from __future__ import annotations

import time
from typing import Any

ACTIVE_JOBS = 300
BIG_CHUNKS = 64


def _copy_sql(model: Any, template_pk: int, overrides: dict[str, str], source: str) -> str:
    """INSERT INTO model's table, every column from the template row ``t`` but the
    overridden ones (SQL expressions over ``source``'s aliases)."""
    columns = [f.column for f in model._meta.concrete_fields if not f.primary_key]
    values = [overrides.get(column, f"t.{column}") for column in columns]
    table = model._meta.db_table
    # Column names from the model and expressions written here: no outside input.
    insert = f"INSERT INTO {table} ({', '.join(columns)}) "
    select = f"SELECT {', '.join(values)} FROM {table} t {source} "  # noqa: S608
    return insert + select + f"WHERE t.id = {template_pk}"


def fill(jobs: int, frames: int, big_frames: int, user: Any) -> Any:
    """Replace every render job with ``jobs`` jobs holding ``frames`` frames; returns the
    big job."""
    from django.db import connection, transaction
    from django.utils import timezone

    from clusters.models import Cluster
    from images.models import ComputeImage, Software
    from jobs.models import Frame, RenderJob, Task
    from projects.models import Project

    started = time.monotonic()
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
    per_job = max(1, (frames - big_frames) // max(1, jobs - 1))
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_frame, jobs_task, jobs_renderjob RESTART IDENTITY CASCADE")
    with transaction.atomic():
        big = RenderJob.objects.create(
            project=projects[0],
            software=software,
            cluster=cluster,
            submitted_by=user,
            name="big",
            scene_url="file:///tmp/scenes/big.blend",
            frame_spec=f"1-{big_frames}",
            frame_count=big_frames,
            node_count=BIG_CHUNKS,
            output_url="file:///tmp/out/big/",
            state="running",
            started_at=now,
        )
        project_ids = ",".join(str(p.pk) for p in projects)
        with connection.cursor() as cursor:
            # Every row is made from rows that exist: skip the foreign-key triggers (20
            # million checks, queued until COMMIT) when we may, as pg_restore does.
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if cursor.fetchone()[0]:
                cursor.execute("SET LOCAL session_replication_role = replica")
            # Jobs 2..N: every 300th of the first ones running, the rest ended 7:1:1
            # finished, failed, cancelled; created one second apart, newest last.
            ended = "(ARRAY['finished','finished','finished','finished','finished',"
            ended += "'finished','finished','failed','cancelled'])[i % 9 + 1]"
            state = f"CASE WHEN i <= {ACTIVE_JOBS} THEN 'running' ELSE {ended} END"
            cursor.execute(
                _copy_sql(
                    RenderJob,
                    big.pk,
                    {
                        "project_id": f"(ARRAY[{project_ids}])[i % 5 + 1]",
                        "submission": "md5(i::text)::uuid",
                        "name": "'shot-' || lpad(i::text, 6, '0')",
                        "scene_url": "'file:///tmp/scenes/shot-' || i || '.blend'",
                        "frame_spec": f"'1-{per_job}'",
                        "frame_count": str(per_job),
                        "node_count": "1",
                        "output_url": "'file:///tmp/out/' || i || '/'",
                        "state": state,
                        "failure_reason": (
                            f"CASE WHEN i > {ACTIVE_JOBS} AND i % 9 = 7 "
                            "THEN 'Out of memory' ELSE '' END"
                        ),
                        "created_at": f"t.created_at - ({jobs} - i) * interval '1 second'",
                        "finished_at": (
                            f"CASE WHEN i <= {ACTIVE_JOBS} THEN NULL "
                            f"ELSE t.created_at - ({jobs} - i) * interval '1 second' END"
                        ),
                    },
                    f"CROSS JOIN generate_series(2, {jobs}) i",
                )
            )
            # Chunks: 64 for the big job, one per other job; frames listed in each.
            template = Task.objects.create(job=big, index=10**9, frames=[1], attempts=1)
            size = -(-big_frames // BIG_CHUNKS)
            chunk_state = "CASE WHEN j.state = 'running' THEN 'running' ELSE 'done' END"
            cursor.execute(
                _copy_sql(
                    Task,
                    template.pk,
                    {
                        "job_id": "j.id",
                        "index": "c",
                        "frames": (
                            f"to_jsonb(ARRAY(SELECT generate_series(c * {size} + 1, "
                            f"least(j.frame_count, (c + 1) * {size}))))"
                        ),
                        "state": chunk_state,
                        "node": "'render@node-' || (c % 16)",
                        "cpu_percent": "180.0",
                        "current_frame": f"c * {size} + 1",
                        "started_at": "j.started_at",
                        "heartbeat_at": "j.started_at",
                    },
                    f"CROSS JOIN jobs_renderjob j CROSS JOIN LATERAL generate_series(0, "
                    f"CASE WHEN j.id = {big.pk} THEN {BIG_CHUNKS - 1} ELSE 0 END) c",
                )
            )
            cursor.execute("DELETE FROM jobs_task WHERE id = %s", [template.pk])
            first = Task.objects.filter(job=big).order_by("index").first()
            frame = Frame.objects.create(job=big, task=first, number=0)
            letter = (
                "CASE WHEN k.state <> 'running' THEN 'done' WHEN n % 10 <= 5 THEN 'done' "
                "WHEN n % 10 = 6 THEN 'running' WHEN n % 10 = 9 THEN 'failed' ELSE 'queued' END"
            )
            cursor.execute(
                _copy_sql(
                    Frame,
                    frame.pk,
                    {
                        "job_id": "k.job_id",
                        "task_id": "k.id",
                        "number": "n",
                        "state": letter,
                        "seconds": f"CASE WHEN ({letter}) = 'done' THEN 2.0 END",
                        "failure_reason": (
                            f"CASE WHEN ({letter}) = 'failed' THEN 'Out of memory' ELSE '' END"
                        ),
                    },
                    "CROSS JOIN jobs_task k CROSS JOIN LATERAL "
                    "jsonb_array_elements_text(k.frames::jsonb) AS f(v) "
                    "CROSS JOIN LATERAL (SELECT f.v::int) AS m(n)",
                )
            )
            cursor.execute("DELETE FROM jobs_frame WHERE id = %s", [frame.pk])
            # The counters the lists read, from the frames (running jobs only differ).
            cursor.execute(
                "UPDATE jobs_renderjob j SET frames_done = s.done, frames_failed = s.failed, "
                "render_seconds = 2.0 * s.done FROM (SELECT job_id, "
                "count(*) FILTER (WHERE state = 'done') AS done, "
                "count(*) FILTER (WHERE state = 'failed') AS failed "
                "FROM jobs_frame GROUP BY job_id) s WHERE s.job_id = j.id"
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_renderjob")
        cursor.execute("VACUUM ANALYZE jobs_task")
        cursor.execute("VACUUM ANALYZE jobs_frame")
    count = Frame.objects.count()
    print(f"filled {jobs} jobs, {count} frames in {time.monotonic() - started:.0f} s", flush=True)
    return big
