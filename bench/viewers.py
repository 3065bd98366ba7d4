"""Many logged-in viewers polling the live pages, against gunicorn and PostgreSQL.

Each viewer is a thread with its own session cookie, in load-generator processes separate
from the server (``--processes``). It polls like the page's script: the same URLs, the
headers htmx sends (``HX-Request``, ``HX-Current-URL``, ``HX-Target``) and the version it
holds (``If-None-Match``, from the last answer's ``ETag`` or the page's ``data-etag``),
every ``--interval`` seconds. In the ``pages`` mix, 4 in 5 viewers watch the big job's
live partial and the others move between the job, the running list and the dashboard
(a full page load when they move, then its partial); in the ``api`` mix each viewer
alternates the REST job list (running jobs) and the big job's detail, sending back the
ETag it last got as a well-behaved polling script does.

Optionally a writer moves the big job along (``--churn F``: F frames a second done, with
the counters and a chunk heartbeat, as the render workers write them), so polls also get
200s with deltas rather than only 304s.

The server is ``gunicorn renderhub.wsgi`` with ``--workers`` sync workers, started here
on a free port with a scratch ``RENDERHUB_VAR_DIR``. Reported per round: requests/s,
errors, median/p95/p99 latency, the share of 304s, and the CPU the server used per request
(gunicorn's processes and PostgreSQL's, read from /proc with psutil).

Usage: ``python bench/viewers.py [--jobs 10000 --frames 1000000 --big-frames 10000]
[--viewers 50,100] [--find-limit] [--mix pages|api] [--churn 0] [--duration 30]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.pages import ensure_database  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/renderhub_bench_viewers"
LIMIT_MS = 250.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--big-frames", type=int, default=10_000, help="the watched job")
    parser.add_argument("--viewers", default="50", help="comma-separated viewer counts")
    parser.add_argument(
        "--find-limit", action="store_true", help=f"then add viewers until p95 > {LIMIT_MS} ms"
    )
    parser.add_argument("--step", type=int, default=50, help="viewers added per --find-limit")
    parser.add_argument("--mix", choices=("pages", "api"), default="pages")
    parser.add_argument("--churn", type=int, default=0, help="big-job frames done per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per round")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    parser.add_argument(
        "--ramp", type=float, default=10.0, help="seconds over which viewers open their page"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--processes", type=int, default=4, help="load-generator processes")
    parser.add_argument("--rebuild", action="store_true", help="refill even if counts match")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return parser.parse_args()


# --- the server side: data, sessions, gunicorn ------------------------------------------


def setup(args: argparse.Namespace, var: Path, secret: str) -> dict[str, str]:
    env = {
        "RENDERHUB_VAR_DIR": str(var),
        "DATABASE_URL": args.database_url,
        "DJANGO_SECRET_KEY": secret,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "renderhub.settings",
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    return env


def data(args: argparse.Namespace) -> tuple[Any, Any]:
    from django.contrib.auth import get_user_model

    from bench.bigfill import fill
    from jobs.models import Frame, RenderJob

    user, _ = get_user_model().objects.get_or_create(username="viewer")  # a member, not staff
    big = RenderJob.objects.filter(name="big").first()
    if (
        args.rebuild
        or big is None
        or big.frame_count != args.big_frames
        or RenderJob.objects.count() != args.jobs
        or abs(Frame.objects.count() - args.frames) > args.jobs
    ):
        big = fill(args.jobs, args.frames, args.big_frames, user)
    return user, big


def sessions(user: Any, count: int) -> list[str]:
    """Session keys of ``user``, as a login would leave them (one per viewer)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    keys = []
    for _ in range(count):
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        keys.append(str(store.session_key))
    return keys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [str(ROOT / ".venv" / "bin" / "gunicorn"), "renderhub.wsgi"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "60"]
    server = subprocess.Popen(command, cwd=ROOT, env=os.environ | env)
    base = f"http://127.0.0.1:{port}"
    import requests

    for _ in range(100):
        try:
            if requests.get(f"{base}/login/", timeout=10).status_code == 200:
                return server, base
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("gunicorn did not start")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    import psutil

    found = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        found[pid] = times.user + times.system
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings; a process born in between counts whole."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def server_pids(server: subprocess.Popen[bytes]) -> list[int]:
    import psutil

    master = psutil.Process(server.pid)
    return [master.pid] + [child.pid for child in master.children(recursive=True)]


def postgres_pids() -> list[int]:
    """PostgreSQL's processes (its backends serve the server's persistent connections)."""
    import psutil

    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


# --- the viewers -----------------------------------------------------------------------

ETAG_IN_PAGE = re.compile(r'id="job-live" data-etag="(&quot;|")([0-9a-f]+)')


class Viewer:
    """One browser tab: a session, the page it is on, and the version each poll holds."""

    def __init__(self, base: str, key: str, plan: dict[str, Any], role: str) -> None:
        import requests

        self.http = requests.Session()
        self.http.cookies.set("sessionid", key)
        self.base, self.plan, self.role = base, plan, role
        self.etags: dict[str, str] = {}
        self.results: list[tuple[str, int, float, int]] = []  # kind, status, ms, bytes
        self.record_from = 0.0  # requests sent before this (time.monotonic) are not counted
        self.page = plan["job"]
        self.polls_here = 0

    def get(self, kind: str, path: str, headers: dict[str, str]) -> Any:
        if time.monotonic() < self.record_from:
            kind = "warmup"
        start = time.perf_counter()
        try:
            response = self.http.get(self.base + path, headers=headers, timeout=30)
        except Exception:  # a refused or timed-out request is an error
            self.results.append((kind, 0, (time.perf_counter() - start) * 1000, 0))
            return None
        elapsed = (time.perf_counter() - start) * 1000
        self.results.append((kind, response.status_code, elapsed, len(response.content)))
        return response

    def open(self, path: str) -> None:
        """A full page load, as when the viewer moves to the page."""
        response = self.get("page", path, {})
        self.etags.pop(path, None)
        if response is not None and (found := ETAG_IN_PAGE.search(response.text)):
            self.etags[path] = f'"{found.group(2)}"'

    def poll(self, path: str, target: str) -> None:
        headers = {"HX-Request": "true", "HX-Current-URL": self.base + path, "HX-Target": target}
        if etag := self.etags.get(path):
            headers["If-None-Match"] = etag
        response = self.get("poll", path, headers)
        if response is not None and response.status_code == 200 and response.headers.get("ETag"):
            self.etags[path] = response.headers["ETag"]

    def tick(self) -> None:
        plan = self.plan
        if self.role == "api":  # a script polling the job list and the job, with ETags
            path = plan["api_detail"] if self.polls_here % 2 else plan["api_list"]
            headers = {"Accept": "application/json"}
            if etag := self.etags.get(path):
                headers["If-None-Match"] = etag
            response = self.get("api", path, headers)
            if response is not None and response.status_code == 200:
                self.etags[path] = response.headers.get("ETag", "")
        elif self.role == "watcher":
            self.poll(plan["job"], "job-live")
        else:  # a mover: three polls on a page, then the next page
            if self.polls_here and self.polls_here % 3 == 0:
                pages = [plan["job"], plan["list"], plan["dashboard"]]
                self.page = pages[(pages.index(self.page) + 1) % len(pages)]
                self.open(self.page)
            target = {plan["job"]: "job-live", plan["list"]: "job-table"}
            self.poll(self.page, target.get(self.page, "running-panel"))
        self.polls_here += 1


def run_viewers(
    base: str,
    keys: list[str],
    roles: list[str],
    plan: dict[str, Any],
    seconds: float,
    every: float,
    ramp: float,
) -> list[tuple[str, int, float, int]]:
    """One load-generator process: a thread per viewer, polling every ``every`` seconds.

    Viewers open their page at moments spread over ``ramp`` seconds (people do not open
    their tabs in the same instant); requests are counted from then on for ``seconds``.
    """
    viewers = [Viewer(base, key, plan, role) for key, role in zip(keys, roles, strict=True)]
    start = time.monotonic()
    for viewer in viewers:
        viewer.record_from = start + ramp + every
    stop = start + ramp + every + seconds

    def loop(viewer: Viewer) -> None:
        time.sleep(random.uniform(0, ramp))
        if viewer.role != "api":
            viewer.open(viewer.page)
        next_at = time.monotonic()
        while time.monotonic() < stop:
            next_at += every
            time.sleep(max(0.0, next_at - time.monotonic()))
            viewer.tick()

    threads = [threading.Thread(target=loop, args=(v,)) for v in viewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [row for viewer in viewers for row in viewer.results if row[0] != "warmup"]


def churn(url: str, big_id: int, per_second: int, stop: Any) -> None:
    """The render workers' writes on the big job: frames done, counters, a heartbeat."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            with conn.transaction():
                done = conn.execute(
                    "UPDATE jobs_frame SET state = 'done', seconds = 2.0, finished_at = now() "
                    "WHERE id IN (SELECT id FROM jobs_frame WHERE job_id = %s AND state IN "
                    "('queued', 'running') ORDER BY number LIMIT %s)",
                    [big_id, per_second],
                ).rowcount
                conn.execute(
                    "UPDATE jobs_renderjob SET frames_done = frames_done + %s WHERE id = %s",
                    [done, big_id],
                )
                conn.execute(
                    "UPDATE jobs_task SET heartbeat_at = now() WHERE id = (SELECT id FROM "
                    "jobs_task WHERE job_id = %s ORDER BY random() LIMIT 1)",
                    [big_id],
                )
            stop.wait(1.0)


def percentile(values: list[float], share: float) -> float:
    return values[max(0, min(len(values) - 1, round(share * len(values)) - 1))]


def one_round(
    args: argparse.Namespace, base: str, server: Any, keys: list[str], plan: dict[str, Any]
) -> dict[str, Any]:
    count = len(keys)
    if args.mix == "api":
        roles = ["api"] * count
    else:
        roles = ["mover" if i % 5 == 4 else "watcher" for i in range(count)]
    groups = max(1, min(args.processes, count))
    context = multiprocessing.get_context("spawn")
    with context.Pool(groups) as pool:
        pending = pool.starmap_async(
            run_viewers,
            [
                (
                    base,
                    keys[g::groups],
                    roles[g::groups],
                    plan,
                    args.duration,
                    args.interval,
                    args.ramp,
                )
                for g in range(groups)
            ],
        )
        # The steady part only: from when every viewer has its page open (the processes
        # take a moment to start; their clocks begin a little after this one's).
        time.sleep(args.ramp + args.interval + 1.0)
        app_before, db_before = cpu_seconds(server_pids(server)), cpu_seconds(postgres_pids())
        started = time.monotonic()
        parts = pending.get()
        wall = time.monotonic() - started
        app_cpu = cpu_used(app_before, cpu_seconds(server_pids(server)))
        db_cpu = cpu_used(db_before, cpu_seconds(postgres_pids()))
    rows = [row for part in parts for row in part]
    rate = len(rows) / args.duration
    times = sorted(ms for _, status, ms, _ in rows if status in (200, 304))
    errors = sum(1 for _, status, _, _ in rows if status not in (200, 304))
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({row[0] for row in rows}):
        mine = sorted(ms for k, status, ms, _ in rows if k == kind and status in (200, 304))
        by_kind[kind] = {
            "requests": sum(1 for row in rows if row[0] == kind),
            "not_modified": sum(1 for row in rows if row[0] == kind and row[1] == 304),
            "median_ms": round(statistics.median(mine), 1) if mine else None,
            "p95_ms": round(percentile(mine, 0.95), 1) if mine else None,
            "mean_bytes": round(statistics.mean(r[3] for r in rows if r[0] == kind)),
        }
    return {
        "viewers": count,
        "requests": len(rows),
        "requests_per_s": round(len(rows) / args.duration, 1),
        "errors": errors,
        "not_modified_share": round(sum(1 for r in rows if r[1] == 304) / max(1, len(rows)), 3),
        "median_ms": round(statistics.median(times), 1) if times else None,
        "p95_ms": round(percentile(times, 0.95), 1) if times else None,
        "p99_ms": round(percentile(times, 0.99), 1) if times else None,
        # CPU over the measured window (its requests: rate x window length).
        "server_cpu_ms_per_request": round(app_cpu * 1000 / max(1.0, rate * wall), 2),
        "postgres_cpu_ms_per_request": round(db_cpu * 1000 / max(1.0, rate * wall), 2),
        "by_kind": by_kind,
    }


def main() -> int:
    args = parse_args()
    ensure_database(args.database_url)
    var = Path(tempfile.mkdtemp(prefix="renderhub-bench-viewers-"))
    env = setup(args, var, secrets.token_urlsafe(40))
    user, big = data(args)
    counts = [int(n) for n in args.viewers.split(",") if n.strip()]
    keys = sessions(user, max(counts) + (1000 if args.find_limit else 0))
    plan = {
        "job": f"/jobs/{big.pk}/",
        "list": "/jobs/",
        "dashboard": "/",
        "api_list": "/api/jobs/?state=running",
        "api_detail": f"/api/jobs/{big.pk}/",
    }
    server, base = start_server(env, args.workers)
    stop = multiprocessing.Event()
    writer = None
    if args.churn:
        writer = multiprocessing.Process(
            target=churn, args=(args.database_url, big.pk, args.churn, stop)
        )
        writer.start()
    rounds = []
    try:
        for count in counts:
            rounds.append(one_round(args, base, server, keys[:count], plan))
            print(json.dumps(rounds[-1]), flush=True)
        while args.find_limit and (rounds[-1]["p95_ms"] or 0) <= LIMIT_MS:
            count = rounds[-1]["viewers"] + args.step
            if count > len(keys):
                break
            rounds.append(one_round(args, base, server, keys[:count], plan))
            print(json.dumps(rounds[-1]), flush=True)
    finally:
        stop.set()
        if writer is not None:
            writer.join(timeout=10)
        server.terminate()
        server.wait(timeout=30)
    name = urlsplit(args.database_url).path.lstrip("/")
    result = {
        "when": datetime.now().isoformat(timespec="seconds"),
        "database": name,
        "jobs": args.jobs,
        "frames": args.frames,
        "big_frames": args.big_frames,
        "mix": args.mix,
        "churn_frames_per_s": args.churn,
        "workers": args.workers,
        "interval_s": args.interval,
        "duration_s": args.duration,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "rounds": rounds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"viewers-{args.mix}-{args.jobs}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
