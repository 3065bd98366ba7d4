"""The BatchCompute client: the real SDK over HTTP against the fake, with our timeouts,
retries and plain-data results."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs.backends.batchcompute import package
from renderhub import batchcompute as bc
from renderhub import cloud as config
from renderhub.compute import ComputeError
from tests.fakes.batchcompute import FakeBatchCompute


def make_client(fake: FakeBatchCompute, **options: Any) -> bc.BatchCompute:
    options = {"timeout": 1.0, "retries": 2, "backoff": 0.001, "max_backoff": 0.01, **options}
    secret = options.pop("secret", fake.access_key_secret)
    return bc.BatchCompute(
        bc.parse_endpoint(fake.region, fake.endpoint), fake.access_key_id, secret, **options
    )


@pytest.fixture
def client(fake_bc: FakeBatchCompute) -> bc.BatchCompute:
    return make_client(fake_bc)


def plan(name: str = "rh-r1-c1", count: int = 3, cluster_id: str = "") -> bc.JobPlan:
    auto = None if cluster_id else bc.Machines("img-ubuntu", "bcs.a2.large", disk_size_gb=40)
    task = bc.TaskPlan(
        instance_count=count,
        command_line="python3 renderhub_node.py",
        package_url="oss://b/pkg.tar.gz",
        log_url="oss://b/logs/",
        timeout=600,
        max_retries=1,
        cluster_id=cluster_id,
        auto=auto,
        env={"A": "1"},
    )
    return bc.JobPlan(name=name, description="test", priority=500, tasks={"render": task})


# --- the wire ----------------------------------------------------------------------------


def test_requests_are_signed_and_the_fake_checks_the_signature(
    fake_bc: FakeBatchCompute,
) -> None:
    client = make_client(fake_bc, secret="not-the-secret")
    with pytest.raises(bc.BatchComputeError, match="SignatureDoesNotMatch") as caught:
        client.ping()
    assert caught.value.status == 400 and not caught.value.transient
    assert client.calls["list_jobs"] == 1  # a 4xx is not retried
    assert caught.value.request_id  # from the x-acs-request-id header


def test_blank_query_values_are_sent_as_bare_keys(
    client: bc.BatchCompute, fake_bc: FakeBatchCompute
) -> None:
    client.ping()
    [request] = fake_bc.requests
    assert request.target == "/jobs?Marker&MaxItemCount=1"
    assert request.params == {"Marker": "", "MaxItemCount": "1"}
    assert request.headers["x-acs-region-id"] == fake_bc.region
    assert request.headers["authorization"].startswith(f"acs {fake_bc.access_key_id}:")


def test_a_cluster_job_carries_no_autocluster_and_an_auto_job_does(
    client: bc.BatchCompute, fake_bc: FakeBatchCompute
) -> None:
    cluster_id = client.create_cluster(
        bc.ClusterPlan("rh-farm", "d", bc.Machines("img-ubuntu", "bcs.a2.large"), 1)
    )
    client.create_job(plan("rh-a", cluster_id=cluster_id))
    client.create_job(plan("rh-b"))
    first, second = fake_bc.bodies("POST /jobs")
    assert first["Priority"] == 500 and first["Type"] == "DAG"  # never routed as an App job
    assert first["DAG"]["Tasks"]["render"]["ClusterId"] == cluster_id
    assert "AutoCluster" not in first["DAG"]["Tasks"]["render"]
    auto = second["DAG"]["Tasks"]["render"]["AutoCluster"]
    assert auto["ImageId"] == "img-ubuntu" and auto["ResourceType"] == "OnDemand"
    assert auto["Configs"]["Disks"]["SystemDisk"] == {"Size": 40}


def test_create_is_idempotent_by_name(client: bc.BatchCompute, fake_bc: FakeBatchCompute) -> None:
    first = client.create_job(plan())
    assert client.create_job(plan()) == first
    assert len(fake_bc.jobs) == 1
    [request, _] = [r for r in fake_bc.requests if r.route == "POST /jobs"]
    assert request.params == {"IdempotentToken": "rh-r1-c1"}


def test_a_name_that_is_not_url_safe_is_refused_before_sending(
    client: bc.BatchCompute, fake_bc: FakeBatchCompute
) -> None:
    with pytest.raises(ComputeError, match="not a valid BatchCompute job name"):
        client.create_job(plan("rh job/1"))
    assert not fake_bc.requests


def test_results_are_plain_data_with_aware_utc_times(
    client: bc.BatchCompute, fake_bc: FakeBatchCompute
) -> None:
    job_id = client.create_job(plan())
    fake_bc.start_instances(job_id)
    fake_bc.finish_instance(job_id, 1, exit_code=0)
    status = client.get_job(job_id)
    assert status.state == "Running" and status.name == "rh-r1-c1"
    assert status.created is not None and status.created.tzinfo is UTC
    assert abs(status.created - datetime.now(UTC)) < timedelta(seconds=30)
    assert status.instance_metrics["RunningCount"] == 2
    items, marker = client.list_instances(job_id, "render")
    assert marker is None
    assert [(i.index, i.state) for i in items] == [(0, "Running"), (1, "Finished"), (2, "Running")]
    done = items[1]
    assert done.exit_code == 0 and done.ended is not None and done.ended.tzinfo is UTC
    assert done.stdout_path == f"oss://b/logs/stdout.{job_id}.render.1"


def test_instance_lists_page_with_next_marker(
    client: bc.BatchCompute, fake_bc: FakeBatchCompute
) -> None:
    job_id = client.create_job(plan(count=250))
    first, marker = client.list_instances(job_id, "render", 0)
    assert (len(first), marker) == (100, 100)
    second, marker = client.list_instances(job_id, "render", marker)
    third, marker = client.list_instances(job_id, "render", marker)
    assert (second[0].index, len(third), marker) == (100, 50, None)


def test_find_job_looks_through_pages_newest_first(
    client: bc.BatchCompute, fake_bc: FakeBatchCompute
) -> None:
    ids = [client.create_job(plan(f"rh-r{i}-c1", count=1)) for i in range(150)]
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert client.find_job("rh-r3-c1", since) == ids[3]
    assert client.calls["list_jobs"] == 2  # 100 per page, newest first
    assert client.find_job("rh-r999-c1", since) is None
    assert client.find_job("rh-r3-c1", datetime.now(UTC) + timedelta(minutes=5)) is None


def test_not_found_and_state_conflicts_have_their_own_errors(
    client: bc.BatchCompute, fake_bc: FakeBatchCompute
) -> None:
    job_id = client.create_job(plan())
    with pytest.raises(bc.Conflict, match="StateConflict"):
        client.delete_job(job_id)  # still Waiting
    assert client.stop_job(job_id) is True
    assert client.stop_job(job_id) is False  # stopped already
    assert client.delete_job(job_id) is True
    assert client.delete_job(job_id) is False  # gone already
    with pytest.raises(bc.NotFound):
        client.get_job(job_id)


# --- faults --------------------------------------------------------------------------------


def test_a_burst_of_5xx_is_retried(client: bc.BatchCompute, fake_bc: FakeBatchCompute) -> None:
    fake_bc.fail_next(2, status=503)
    client.ping()
    assert client.calls["list_jobs"] == 3


def test_throttling_is_retried_whatever_its_status(
    client: bc.BatchCompute, fake_bc: FakeBatchCompute
) -> None:
    fake_bc.fail_next(1, status=400, code="Throttling.User")
    fake_bc.fail_next(1, status=429)
    client.ping()
    assert client.calls["list_jobs"] == 3


def test_retries_are_bounded(client: bc.BatchCompute, fake_bc: FakeBatchCompute) -> None:
    fake_bc.fail_next(5, status=500)
    with pytest.raises(bc.BatchComputeError, match="after 3 attempts") as caught:
        client.ping()
    assert caught.value.transient and caught.value.code == "InternalError"


def test_a_hung_server_times_out_and_is_retried(fake_bc: FakeBatchCompute) -> None:
    client = make_client(fake_bc, timeout=0.3)
    fake_bc.delay_next(1, 2.0)
    started = time.monotonic()
    client.ping()
    assert time.monotonic() - started < 1.5
    assert client.calls["list_jobs"] == 2


def test_a_refused_connection_is_retried_then_reported(fake_bc: FakeBatchCompute) -> None:
    endpoint = bc.parse_endpoint(fake_bc.region, "http://127.0.0.1:9")  # nobody listens
    client = bc.BatchCompute(endpoint, "id", "secret", retries=1, backoff=0.001)
    with pytest.raises(bc.BatchComputeError, match="ConnectionRefused") as caught:
        client.ping()
    assert caught.value.transient
    assert client.calls["list_jobs"] == 2


def test_the_secret_is_never_in_reprs_or_logs(
    fake_bc: FakeBatchCompute, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(fake_bc)
    fake_bc.fail_next(1, status=503)
    client.ping()
    with pytest.raises(bc.BatchComputeError) as caught:
        make_client(fake_bc, secret="a-wrong-secret-value", retries=0).ping()
    for text in (repr(client), caplog.text, str(caught.value)):
        assert fake_bc.access_key_secret not in text
        assert "a-wrong-secret-value" not in text


def test_the_endpoint_setting_overrides_the_region_host() -> None:
    assert (
        bc.parse_endpoint("cn-hangzhou", "").url == "https://batchcompute.cn-hangzhou.aliyuncs.com"
    )
    local = bc.parse_endpoint("cn-test", "http://127.0.0.1:8888")
    assert (local.https, local.host, local.port) == (False, "127.0.0.1", 8888)
    assert bc.parse_endpoint("cn-x", "batchcompute-vpc.cn-x.aliyuncs.com").https
    with pytest.raises(ComputeError):
        bc.parse_endpoint("cn-x", "ftp://host")


# --- clusters and resources ---------------------------------------------------------------


def test_cluster_lifecycle(client: bc.BatchCompute, fake_bc: FakeBatchCompute) -> None:
    machines = bc.Machines("img-ubuntu", "bcs.a2.large", spot=True, spot_price_limit=0.5)
    cluster_id = client.create_cluster(bc.ClusterPlan("rh-farm", "d", machines, 2))
    group = fake_bc.bodies("POST /clusters")[0]["Groups"]["group"]
    assert group == {
        "DesiredVMCount": 2,
        "InstanceType": "bcs.a2.large",
        "ResourceType": "Spot",
        "SpotStrategy": "SpotWithPriceLimit",
        "SpotPriceLimit": 0.5,
    }
    assert client.find_cluster("rh-farm") == cluster_id
    fake_bc.tick()
    fake_bc.tick()
    status = client.get_cluster(cluster_id)
    assert (status.state, status.desired_nodes, status.actual_nodes) == ("Active", 2, 2)
    assert "Creating instance group successfully" in status.operation_logs[0]
    vms = client.cluster_vms(cluster_id)
    assert [vm.state for vm in vms] == ["Running", "Running"] and vms[0].ip_address
    client.resize_cluster(cluster_id, 0)
    fake_bc.tick()
    assert client.get_cluster(cluster_id).desired_nodes == 0
    assert client.delete_cluster(cluster_id) is True
    with pytest.raises(bc.Conflict):
        client.delete_cluster(cluster_id)  # Deleting already
    fake_bc.tick()
    assert client.delete_cluster(cluster_id) is False
    assert client.find_cluster("rh-farm") is None


def test_resources_come_from_the_available_resource_call(client: bc.BatchCompute) -> None:
    resources = client.resources()
    assert bc.InstanceType("bcs.a2.large", 4, 8.0) in resources.instance_types
    assert resources.spot_instance_types == ["bcs.a2.large"]
    assert resources.disk_types == ["cloud_efficiency", "cloud_ssd"]
    assert ("img-blender", "Blender 3.4") in resources.images


def test_the_node_package_is_reproducible_and_holds_the_agent() -> None:
    import io
    import tarfile

    data, name = package.node_package()
    package._package = None
    assert package.node_package() == (data, name)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        entry = tar.extractfile("renderhub_node.py")
        assert entry is not None and entry.read() == package.NODE_ENTRY_FILE.read_bytes()
    assert "renderhub_node.py" in names and "renderhub/__init__.py" in names
    assert "renderhub/agent/__main__.py" in names and "renderhub/agent/runner.py" in names
    assert name.startswith("renderhub-node-") and name.endswith(".tar.gz")


def test_get_client_needs_configuration(settings: Any) -> None:
    settings.BATCHCOMPUTE_REGION = ""
    with pytest.raises(ComputeError, match="not configured"):
        config.get_client()


def test_ping_for_the_status_page(bc_settings: Any, fake_bc: FakeBatchCompute) -> None:
    from ops import status

    check = status.check_batchcompute()
    assert check is not None and check.ok
    assert f"127.0.0.1:{fake_bc.port}" in check.detail
    fake_bc.fail_next(5, status=503)
    check = status.check_batchcompute()
    assert check is not None and not check.ok and "ServiceUnavailable" in check.detail
