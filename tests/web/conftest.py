"""Fixtures of the staff-page tests: logins, a job with frames in every state, real files.

Static files are served unhashed here: the hashed names need ``collectstatic``'s manifest,
which a fresh ``RENDERHUB_VAR_DIR`` (as in ``make test``) does not have.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from jobs import services
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import Frame, RenderJob, Task
from renderhub import storage

# The fake renderer of the render tests, reused as it is.
from tests.jobs.conftest import fake_software  # noqa: F401  (shared fixture)


@pytest.fixture
def as_alice(client: Any, alice: Any) -> Any:
    client.force_login(alice)
    return client


@pytest.fixture
def as_bob(client: Any, bob: Any) -> Any:
    client.force_login(bob)
    return client


@pytest.fixture
def as_charlie(client: Any, charlie: Any) -> Any:
    client.force_login(charlie)
    return client


def submit(project: Any, software: Any, cluster: Any, scene: str, **kw: Any) -> RenderJob:
    kw.setdefault("frames", "1-6")
    if "chunk_size" not in kw:  # nodes or a chunk size, never both
        kw.setdefault("nodes", 2)
    [job] = services.submit_render(
        services.RenderRequest(
            project=project, software=software, cluster=cluster, scenes=[scene], **kw
        )
    )
    return job


def write_png(url: str, color: tuple[int, int, int] = (200, 80, 40)) -> None:
    backend, key = storage.resolve(url)
    path = backend.local_path(key)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), color).save(path, "PNG" if url.endswith(".png") else "JPEG")


@pytest.fixture
def job(project: Any, fake_software: Any, cluster: Any, scene_url: str) -> RenderJob:  # noqa: F811
    """A running job of six frames: 1-2 done with outputs, 3 running, 4 failed, 5-6 queued.

    Built through the services the worker calls, so counters and rows agree.
    """
    job = submit(project, fake_software, cluster, scene_url)
    first, second = list(job.tasks.order_by("index"))
    Task.objects.filter(pk=first.pk).update(
        state=TaskState.RUNNING,
        node="render@node-a",
        attempts=1,
        cpu_percent=187.5,
        agent_log_tail="agent: started chunk 0\n",
        stdout_tail="Fra:3 Mem:1.00M | Sample 1/16\n",
        stderr_tail="",
    )
    services.task_started(first)
    for number in (1, 2):
        out = storage.join(job.output_url, f"shot_a_{number:04d}.png")
        thumb = storage.join(job.output_url, "_thumbs", f"shot_a_{number:04d}.jpg")
        write_png(out)
        write_png(thumb, (40, 80, 200))
        services.frame_started(first, number)
        services.frame_done(first, number, seconds=2.0, output_url=out, thumbnail_url=thumb)
    services.frame_started(first, 3)
    Task.objects.filter(pk=second.pk).update(
        state=TaskState.FAILED, node="render@node-b", attempts=3, failure_reason="Out of memory"
    )
    Frame.objects.filter(job=job, number=4).update(
        state=FrameState.FAILED, failure_reason="Out of memory while loading textures"
    )
    RenderJob.objects.filter(pk=job.pk).update(frames_failed=1)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.frames_done == 2
    return job


@pytest.fixture
def finished_job(job: RenderJob) -> RenderJob:
    """The same job, ended: logs published to storage, as the worker does at the end."""
    log_url = storage.join(job.output_url, "_logs", "task-0-attempt-1/")
    backend, prefix = storage.resolve(log_url)
    for name, text in (
        ("agent.log", "agent: full log\n"),
        ("stdout.log", "".join(f"Fra:{i} line {i}\n" for i in range(5000))),
        ("stderr.log", "warning: something\n"),
    ):
        backend.write(prefix + name, text.encode())
    Task.objects.filter(job=job, index=0).update(state=TaskState.DONE, log_url=log_url)
    Frame.objects.filter(job=job, state__in=(FrameState.RUNNING, FrameState.QUEUED)).update(
        state=FrameState.CANCELLED
    )
    RenderJob.objects.filter(pk=job.pk).update(
        state=JobState.FAILED, failure_reason="1 of 2 chunks failed; first: Out of memory"
    )
    job.refresh_from_db()
    return job


def bulk_jobs(
    project: Any, software: Any, cluster: Any, count: int, frames: int = 0
) -> list[RenderJob]:
    """``count`` jobs straight into the tables (no services): for query-count tests."""
    jobs = RenderJob.objects.bulk_create(
        RenderJob(
            project=project,
            software=software,
            cluster=cluster,
            name=f"bulk-{i}",
            scene_url=f"file:///x/{i}.blend",
            frame_spec=f"1-{max(frames, 1)}",
            frame_count=max(frames, 1),
            node_count=1,
            output_url=f"file:///x/out/{i}/",
            state=JobState.RUNNING if i % 2 else JobState.FINISHED,
            frames_done=i % 7,
        )
        for i in range(count)
    )
    return jobs


@pytest.fixture
def storage_tree(storage_root: Path) -> Path:
    """A mapped folder with sub-folders, scenes and other files."""
    scenes = storage_root / "scenes"
    for rel in (
        "shot_a.blend",
        "seq/shot_b.blend",
        "seq/shot_c.BLEND",
        "seq/notes.txt",
        "seq/deep/x.blend",
    ):
        path = scenes / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"BLENDER")
    (storage_root / "secret").mkdir(exist_ok=True)
    (storage_root / "secret" / "other.blend").write_bytes(b"other project")
    return scenes


# --- real browser ---------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for these tests (Debian's; Playwright cannot download one).

    Package scope: Playwright's sync API runs an event loop on this thread until it stops,
    and later tests (miniwdl's validation) call asyncio.run(), which a running loop breaks.
    """
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests make
    # between page actions are still synchronous, so Django's async guard does not apply.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def live(live_server: Any, settings: Any) -> Any:
    """The live server over plain http: session and CSRF cookies without the Secure flag."""
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    return live_server


@pytest.fixture
def open_page(browser: Any, live: Any, client: Any) -> Iterator[Any]:
    """``open_page(user)``: a fresh browser tab logged in as ``user`` (session cookie copied)."""
    contexts: list[Any] = []

    def open_as(user: Any | None) -> Any:
        context = browser.new_context(
            base_url=live.url, viewport={"width": 1280, "height": 900}, device_scale_factor=1
        )
        contexts.append(context)
        if user is not None:
            client.force_login(user)
            cookie = client.cookies["sessionid"]
            context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live.url}])
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield open_as
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str, **kw: Any) -> None:
    """Save docs/screenshots/<name>.png when RENDERHUB_SCREENSHOTS names a folder."""
    if folder := os.environ.get("RENDERHUB_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), **kw)
