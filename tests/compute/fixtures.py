"""BatchCompute fixtures: a fake BatchCompute and a fake OSS per session, settings pointing
RenderHub at them, and a project whose storage and cluster live "in the cloud".

tests/compute/conftest.py makes them available there; test modules elsewhere import the
ones they use (``from tests.compute.fixtures import bc_settings  # noqa: F401``).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.batchcompute import FakeBatchCompute
from tests.fakes.oss import FakeOSS
from tests.jobs.conftest import make_fake_software


@pytest.fixture(scope="session")
def cloud_oss() -> Iterator[FakeOSS]:
    with FakeOSS() as server:
        yield server


@pytest.fixture(scope="session")
def cloud_bc(cloud_oss: FakeOSS) -> Iterator[FakeBatchCompute]:
    with FakeBatchCompute(oss=cloud_oss) as server:
        yield server


@pytest.fixture
def bucket(cloud_oss: FakeOSS) -> Iterator[str]:
    name = f"renders-{uuid.uuid4().hex[:10]}"
    cloud_oss.create_bucket(name)
    yield name
    cloud_oss.clear_faults()
    errors, cloud_oss.internal_errors[:] = list(cloud_oss.internal_errors), []
    assert not errors, f"the fake OSS server itself failed: {errors}"


@pytest.fixture
def fake_bc(cloud_bc: FakeBatchCompute) -> Iterator[FakeBatchCompute]:
    """The session's fake BatchCompute, emptied for this test (and checked after it)."""
    cloud_bc.reset()
    cloud_bc.max_parallel = 4
    yield cloud_bc
    cloud_bc.run_commands = False
    errors, cloud_bc.internal_errors[:] = list(cloud_bc.internal_errors), []
    cloud_bc.reset()
    assert not errors, f"the fake BatchCompute server itself failed: {errors}"


@pytest.fixture
def bc_settings(
    settings: Any, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS, bucket: str
) -> Iterator[Any]:
    """RenderHub configured for the fakes, with fast retries; yields the client."""
    from django.core.cache import cache

    from renderhub import cloud as bc
    from renderhub import storage

    settings.BATCHCOMPUTE_REGION = fake_bc.region
    settings.BATCHCOMPUTE_ENDPOINT = fake_bc.endpoint
    settings.BATCHCOMPUTE_ACCESS_KEY_ID = fake_bc.access_key_id
    settings.BATCHCOMPUTE_ACCESS_KEY_SECRET = fake_bc.access_key_secret
    settings.BATCHCOMPUTE_TIMEOUT = 2.0
    settings.BATCHCOMPUTE_RETRIES = 2
    settings.BATCHCOMPUTE_RELEASE_AFTER = 0
    settings.BATCHCOMPUTE_NODE_PYTHON = sys.executable
    settings.RENDERHUB_DEPLOYMENT_TAG = "rhtest"
    settings.OSS_ENDPOINT = cloud_oss.endpoint
    settings.OSS_ACCESS_KEY_ID = cloud_oss.access_key_id
    settings.OSS_ACCESS_KEY_SECRET = cloud_oss.access_key_secret
    settings.STORAGE_TIMEOUT = 2.0
    settings.STORAGE_RETRIES = 1
    bc.reset_clients()
    storage.reset_cache()
    cache.clear()
    client = bc.get_client()
    client.backoff, client.max_backoff = 0.001, 0.01
    yield client
    bc.reset_clients()


@pytest.fixture
def cloud_image(db: None) -> Any:
    from images.models import ComputeImage

    return ComputeImage.objects.create(name="cloud-linux", image_id="img-blender")


@pytest.fixture
def cloud_software(cloud_image: Any) -> Any:
    """The stand-in renderer (tests/jobs/fake_render.py) on the cloud image."""
    return make_fake_software(cloud_image)


@pytest.fixture
def cloud_project(cloud_image: Any, bucket: str, cloud_oss: FakeOSS, bc_settings: Any) -> Any:
    from projects.models import Project, StorageMapping

    project = Project.objects.create(
        name="cloudshots", image=cloud_image, output_prefix=f"oss://{bucket}/output/"
    )
    StorageMapping.objects.create(
        project=project, source=f"oss://{bucket}/scenes/", destination="/mnt/scenes/"
    )
    cloud_oss.put(bucket, "scenes/shot_a.blend", b"BLENDER-v304 not a real scene")
    cloud_oss.put(bucket, "scenes/textures/wood.png", b"texture")
    return project


@pytest.fixture
def cloud_cluster(cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute) -> Any:
    """A standing BatchCompute cluster with two running VMs."""
    from clusters import services
    from clusters.choices import Backend
    from clusters.models import Cluster

    cluster = services.create(
        Cluster(
            name=f"farm-{uuid.uuid4().hex[:6]}",
            backend=Backend.BATCHCOMPUTE,
            image=cloud_image,
            instance_type="bcs.a2.large",
            disk_type="cloud_ssd",
            disk_size_gb=50,
            desired_nodes=2,
            max_nodes=8,
        )
    )
    fake_bc.tick()
    fake_bc.tick()
    return cluster


@pytest.fixture
def auto_cluster(cloud_image: Any, bc_settings: Any) -> Any:
    from clusters import services
    from clusters.choices import Backend
    from clusters.models import Cluster

    return services.create(
        Cluster(
            name=f"auto-{uuid.uuid4().hex[:6]}",
            backend=Backend.BATCHCOMPUTE,
            auto_cluster=True,
            image=cloud_image,
            instance_type="bcs.a2.large",
            spot=True,
            desired_nodes=3,
            max_nodes=3,
        )
    )


@pytest.fixture
def unstoppable_cloud_job(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    fake_bc: FakeBatchCompute,
    django_capture_on_commit_callbacks: Any,
) -> Any:
    """A render job waiting on BatchCompute whose stop call fails (503) until the test
    calls ``fake_bc.clear_faults()``."""
    job = submit_cloud(
        cloud_project, cloud_software, cloud_cluster, capture=django_capture_on_commit_callbacks
    )
    fake_bc.fail_next(1000, status=503, route="POST /jobs/{id}/stop")
    return job


def assert_says_the_stop_is_retried(job: Any, warning: str) -> None:
    """The warning every caller shows when cancelling ``unstoppable_cloud_job``."""
    assert warning.startswith(
        f"Job #{job.pk} is cancelled in RenderHub, but its work on Alibaba Cloud BatchCompute "
        "could not be stopped yet: BatchCompute stop_job failed: HTTP 503 ServiceUnavailable"
    ), warning
    assert warning.endswith(
        "RenderHub tries again at every poll of its BatchCompute jobs until it has stopped."
    ), warning


def assert_stopped_by_the_poller(job: Any, fake_bc: FakeBatchCompute) -> None:
    """The cloud job of a cancelled render still runs; once BatchCompute answers again,
    the next poll stops it."""
    from jobs.backends.batchcompute import poll as cloud_poll
    from jobs.models import CloudJob

    cloud_id = CloudJob.objects.get(job=job).cloud_id
    assert fake_bc.jobs[cloud_id].state == "Waiting"
    fake_bc.clear_faults()
    cloud_poll.poll_all()
    assert fake_bc.jobs[cloud_id].state == "Stopped"


def submit_cloud(
    project: Any,
    software: Any,
    cluster: Any,
    frames: str = "1-6",
    *,
    nodes: int = 3,
    capture: Any,
    **fields: Any,
) -> Any:
    """submit_render as users do, running the on-commit dispatch (it talks to the fake)."""
    from jobs import services

    request = services.RenderRequest(
        project=project,
        software=software,
        cluster=cluster,
        scenes=[f"{project.mappings.get().source}shot_a.blend"],
        frames=frames,
        nodes=nodes,
        **fields,
    )
    with capture(execute=True):
        [job] = services.submit_render(request)
    job.refresh_from_db()
    return job


def write_events(
    oss: FakeOSS,
    cloud_job: Any,
    instance: int,
    events: list[dict[str, Any]],
    run: int = 1,
    *,
    uploaded: bool = True,
) -> None:
    """Append agent events to an instance's events file in OSS, as the node entry does;
    with ``uploaded`` the files its frame_done events name are put in the job's output
    folder too, as OutputMapping does when the instance ends (the tests end it later)."""
    bucket, _, prefix = cloud_job.log_url.removeprefix("oss://").partition("/")
    key = f"{prefix}events/{instance}.{run}.jsonl"
    old = oss.get(bucket, key)
    lines = b"".join(json.dumps({"time": time.time(), **e}).encode() + b"\n" for e in events)
    oss.put(bucket, key, (old.data if old else b"") + lines)
    output_prefix = cloud_job.job.output_url.removeprefix(f"oss://{bucket}/")
    for event in events if uploaded else ():
        for path in event.get("outputs") or () if event.get("event") == "frame_done" else ():
            oss.put(bucket, output_prefix + path.rsplit("/", 1)[-1], TINY_PNG)


TINY_PNG = (  # a 1x1 PNG
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00"
    b"\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92"
    b"\xef\x00\x00\x00\x00IEND\xaeB`\x82"
)


def cloud_job_of(job: Any) -> Any:
    from jobs.models import CloudJob

    return CloudJob.objects.get(job=job)


def render_events(frames: list[int], outputs: bool = True) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"event": "started", "pid": 1, "argv": ["fake"]}]
    for n in frames:
        events.append({"event": "frame_started", "frame": n})
        done = [f"/renderhub/publish/shot_a_{n:04d}.png"] if outputs else []
        events.append({"event": "frame_done", "frame": n, "outputs": done, "seconds": 1.5})
    return events


FINISHED_OK = {"event": "finished", "status": "success", "exit_code": 0, "reason": ""}


@pytest.fixture
def submitted(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
) -> Any:
    """Six frames in three chunks, submitted to the standing cluster."""
    return submit_cloud(
        cloud_project, cloud_software, cloud_cluster, capture=django_capture_on_commit_callbacks
    )
