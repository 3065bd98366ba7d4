"""Cluster operations: create, resize, delete and sync. Admin, CLI and beat call these.

A BatchCompute cluster (``backend=batchcompute``, not ``auto_cluster``) is also a cluster
in the cloud, named ``<deployment tag>-<name>-<random>`` (``cloud_name``, also the create's
idempotent token: a reinstall under the same tag never gets the old install's cluster);
RenderHub only ever touches the cloud cluster whose id it recorded. Creating writes the row
first (state creating), so a process that dies before saving the cloud id is resumed by
:func:`sync`, which finds the cluster by that name instead of creating (and paying for) a
second one. An AutoCluster cluster has nothing in the cloud between jobs: each job gets
its own VMs. A cluster whose cloud jobs have not ended is not deleted unless forced.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from renderhub import batchcompute as bc
from renderhub.cloud import get_client, tagged
from renderhub.compute import ComputeError

from .choices import Backend, ClusterState, NodeState
from .cloud_choices import CloudChoices, cloud_choices, validate_cloud  # noqa: F401 (re-exported)
from .models import Cluster, ClusterNode, ClusterOperation, UnassignedWorker
from .suspension import resume as resume
from .suspension import suspend as suspend

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

RESUME_CREATE_AFTER = timedelta(seconds=60)
UNFINISHED_CLOUD_JOBS = ("submitting", "active")  # jobs.CloudJobState: not ended yet
NO_EMPTY_CLUSTERS = (
    "this region takes no cluster of 0 VMs (its documentation gives 1-65536): create it "
    "with 1 or more, or make it an AutoCluster cluster, which has VMs only while jobs run"
)
VM_STATES: dict[str, NodeState] = {  # a VM's state as the API reports it (a str)
    bc.VMState.PENDING: NodeState.STARTING,
    bc.VMState.STARTING: NodeState.STARTING,
    bc.VMState.RUNNING: NodeState.IDLE,
    bc.VMState.DELETING: NodeState.OFFLINE,
    bc.VMState.DELETED: NodeState.OFFLINE,
}
_LOG_LINE = re.compile(r"^\[(?P<at>[^\]]+)\](?:\[(?P<group>[^\]]*)\])?\s*(?P<message>.*)$", re.S)


def is_cloud(cluster: Cluster) -> bool:
    """Whether the cluster is (or will be) a standing cluster in BatchCompute."""
    return cluster.backend == Backend.BATCHCOMPUTE and not cluster.auto_cluster


def record(
    cluster: Cluster,
    action: str,
    message: str,
    user: User | None = None,
    *,
    source: str = "renderhub",
    at: datetime | None = None,
) -> ClusterOperation:
    """A line in the cluster's operation log."""
    return ClusterOperation.objects.create(
        cluster=cluster,
        at=at or timezone.now(),
        source=source,
        action=action,
        message=message[:5000],
        user=user if user is not None and user.is_authenticated else None,
    )


# --- operations ------------------------------------------------------------------------


def create(cluster: Cluster, user: User | None = None) -> Cluster:
    """Save a new cluster; a BatchCompute one is created in the cloud as well.

    Raises ValidationError for a bad cluster and ComputeError when BatchCompute refused
    it (the row then shows state error and the reason in its operation log).
    """
    cluster.full_clean()
    check_size(cluster, cluster.desired_nodes)
    validate_cloud(cluster)
    if not is_cloud(cluster):
        cluster.save()
        record(cluster, "create", f"created ({cluster.get_backend_display()})", user)
        return cluster
    cluster.state, cluster.cloud_cluster_id = ClusterState.CREATING, ""
    cluster.cloud_name = tagged(f"{cluster.name}-{secrets.token_hex(6)}")
    cluster.save()
    record(cluster, "create", f"creating {_describe(cluster)}", user)
    _create_in_cloud(cluster, user, look_first=False)
    return cluster


def _describe(cluster: Cluster) -> str:
    kind = "spot" if cluster.spot else "on-demand"
    disk = f"{cluster.disk_size_gb} GB {cluster.disk_type or 'default'} disk"
    return (
        f"{cluster.desired_nodes} x {cluster.instance_type} ({kind}, {disk}) "
        f"on {cluster.image.image_id}"
    )


def _plan(cluster: Cluster) -> bc.ClusterPlan:
    return bc.ClusterPlan(
        name=cluster.cloud_name or tagged(cluster.name),
        description=f"RenderHub cluster {cluster.name}",
        machines=bc.Machines(
            image_id=cluster.image.image_id,
            instance_type=cluster.instance_type,
            spot=cluster.spot,
            spot_price_limit=float(cluster.spot_price_limit)
            if cluster.spot_price_limit is not None
            else None,
            disk_type=cluster.disk_type,
            disk_size_gb=cluster.disk_size_gb,
        ),
        nodes=cluster.desired_nodes,
    )


def _create_in_cloud(cluster: Cluster, user: User | None, look_first: bool) -> None:
    client = get_client()
    name = cluster.cloud_name or tagged(cluster.name)
    try:
        found = client.find_cluster(name) if look_first else None
        cloud_id = found or client.create_cluster(_plan(cluster))
    except bc.BatchComputeError as exc:
        if exc.transient:  # sync tries again, looking for it by name first
            Cluster.objects.filter(pk=cluster.pk).update(sync_error=str(exc)[:2000])
            record(cluster, "create", f"not created yet, will retry: {exc}", user)
            raise
        reason = f"BatchCompute refused the cluster: {exc}"
        if cluster.desired_nodes == 0 and "DesiredVMCount" in str(exc):
            reason += f" ({NO_EMPTY_CLUSTERS})"
        cluster.state = ClusterState.ERROR
        Cluster.objects.filter(pk=cluster.pk).update(
            state=ClusterState.ERROR, sync_error=reason[:2000]
        )
        record(cluster, "create", reason, user)
        raise bc.BatchComputeError(reason, status=exc.status, code=exc.code) from None
    cluster.cloud_cluster_id, cluster.state = cloud_id, ClusterState.ACTIVE
    Cluster.objects.filter(pk=cluster.pk).update(
        cloud_cluster_id=cloud_id, state=ClusterState.ACTIVE, sync_error=""
    )
    if found:
        what = f"BatchCompute cluster {cloud_id} found again as {name} (created, then interrupted)"
    else:
        what = f"BatchCompute cluster {cloud_id} created as {name}"
    record(cluster, "create", what, user)


def unassigned_workers() -> dict[str, list[UnassignedWorker]]:
    """Workers heard from lately whose queue names no cluster yet, by that cluster name."""
    cutoff = timezone.now() - timedelta(seconds=settings.NODE_OFFLINE_AFTER)
    waiting: dict[str, list[UnassignedWorker]] = {}
    for worker in UnassignedWorker.objects.filter(last_seen__gte=cutoff):
        waiting.setdefault(worker.cluster_name, []).append(worker)
    return waiting


@transaction.atomic
def create_for_workers(name: str, image: Any, user: User | None = None) -> Cluster:
    """The own-machines cluster that workers of queue ``render.<name>`` wait for; they show
    as its nodes at once (their next heartbeat keeps them fresh)."""
    waiting = unassigned_workers().get(name, [])
    cluster = Cluster(
        name=name,
        backend=Backend.CELERY,
        image=image,
        desired_nodes=max(1, len(waiting)),
        max_nodes=max(16, len(waiting)),
    )
    create(cluster, user)
    for worker in waiting:
        ClusterNode.objects.update_or_create(
            cluster=cluster,
            name=worker.hostname,
            defaults={
                "state": NodeState.IDLE,
                "cpu_count": worker.cpu_count,
                "concurrency": worker.concurrency,
                "ip_address": worker.ip_address,
                "last_seen": worker.last_seen,
            },
        )
    UnassignedWorker.objects.filter(cluster_name=name).delete()
    return cluster


def check_size(cluster: Cluster, nodes: int) -> None:
    """Refuse a node count outside 0..``max_nodes`` (and ``BATCHCOMPUTE_MAX_INSTANCES`` for
    BatchCompute): every VM costs money, so the bound holds for every caller."""
    if nodes < 0:
        raise ValidationError({"desired_nodes": "The node count cannot be negative."})
    limit, why = cluster.max_nodes, f"the max nodes of cluster {cluster}"
    cloud_limit = settings.BATCHCOMPUTE_MAX_INSTANCES
    if cluster.backend == Backend.BATCHCOMPUTE and cloud_limit < limit:
        limit, why = cloud_limit, "BATCHCOMPUTE_MAX_INSTANCES"
    if nodes > limit:
        raise ValidationError(
            {"desired_nodes": f"{nodes} nodes is more than {limit} ({why}); raise that first."}
        )


def resize(cluster: Cluster, nodes: int, user: User | None = None) -> Cluster:
    """Run ``nodes`` VMs (0 keeps the cluster but stops paying for VMs), at most
    ``max_nodes`` (see :func:`check_size`)."""
    check_size(cluster, nodes)
    if cluster.state in (ClusterState.DELETING, ClusterState.DELETED):
        raise ComputeError(f"Cluster {cluster} is {cluster.state}.")
    before = cluster.desired_nodes
    if is_cloud(cluster):
        if not cluster.cloud_cluster_id:
            raise ComputeError(f"Cluster {cluster} is not created in BatchCompute yet.")
        try:
            get_client().resize_cluster(cluster.cloud_cluster_id, nodes)
        except bc.BatchComputeError as exc:
            if nodes != 0 or exc.transient or exc.status != 400:
                raise
            # The docs disagree on whether 0 is allowed; where it is not, say so plainly.
            refused = (
                f"BatchCompute refuses 0 VMs for cluster {cluster} ({exc.code}): it keeps its "
                f"{before} VM(s), and their cost. To stop paying for them, delete the cluster "
                f"(manage.py cluster_delete {cluster.name}; RenderHub can create it again), "
                "or resize it to 1."
            )
            record(cluster, "resize", refused, user)
            raise ComputeError(refused) from None
        cluster.state = (
            ClusterState.ACTIVE if cluster.actual_nodes == nodes else ClusterState.RESIZING
        )
    cluster.desired_nodes = nodes
    Cluster.objects.filter(pk=cluster.pk).update(desired_nodes=nodes, state=cluster.state)
    if is_cloud(cluster):
        what = f"resized from {before} to {nodes} nodes"
    else:
        what = (
            f"default split changed from {before} to {nodes} nodes (no machine started or stopped)"
        )
    record(cluster, "resize", what, user)
    return cluster


def resize_message(cluster: Cluster) -> str:
    """What a resize did, for the person who asked: only a standing BatchCompute cluster
    gains or loses machines; otherwise the number is how many nodes a job is split over."""
    nodes = cluster.desired_nodes
    if is_cloud(cluster):
        return f"Resizing {cluster} to {nodes} nodes: BatchCompute starts or stops VMs to match."
    if cluster.backend == Backend.BATCHCOMPUTE:
        return f"Jobs on {cluster} now get up to {nodes} VMs each (AutoCluster)."
    return (
        f"Jobs on {cluster} are now split over {nodes} nodes by default. RenderHub does not "
        "start or stop your own machines: a machine joins by running a render worker for "
        f"queue {cluster.queue}."
    )


def delete(cluster: Cluster, user: User | None = None, *, force: bool = False) -> Cluster:
    """Delete the cluster (in BatchCompute too); it must have no active render jobs, and,
    unless ``force`` (which stops them first), no BatchCompute job that has not ended."""
    if cluster.state == ClusterState.DELETED:
        return cluster
    active = cluster.render_jobs.active().count()  # jobs sits above us: ask its queryset
    if active:
        raise ComputeError(
            f"Cluster {cluster} has {active} active render job(s); cancel them first."
        )
    unfinished = unfinished_cloud_jobs(cluster)
    if unfinished and not force:
        raise ComputeError(
            f"Cluster {cluster} still has {len(unfinished)} BatchCompute job(s) that have not "
            f"ended ({', '.join(unfinished[:5])}); RenderHub stops each at its next poll. "
            "Delete the cluster once they have ended, or force it (cluster_delete --force), "
            "which stops them now."
        )
    stopped = _stop_cloud_jobs(unfinished)
    if is_cloud(cluster) and cluster.cloud_cluster_id:
        gone = not get_client().delete_cluster(cluster.cloud_cluster_id)
        cluster.state = ClusterState.DELETED if gone else ClusterState.DELETING
        what = f"deleting BatchCompute cluster {cluster.cloud_cluster_id}"
    else:
        cluster.state = ClusterState.DELETED
        what = "deleted"
    if unfinished:
        what += f" (forced: stopped {stopped} of {len(unfinished)} unfinished BatchCompute jobs)"
    Cluster.objects.filter(pk=cluster.pk).update(state=cluster.state)
    record(cluster, "delete", what, user)
    return cluster


def unfinished_cloud_jobs(cluster: Cluster) -> list[str]:
    """The BatchCompute jobs of the cluster's render jobs that have not ended (their ids, or
    names while being submitted), however their render jobs ended."""
    if cluster.backend != Backend.BATCHCOMPUTE:
        return []
    rows = cluster.render_jobs.filter(cloud_jobs__state__in=UNFINISHED_CLOUD_JOBS).values_list(
        "cloud_jobs__cloud_id", "cloud_jobs__name"
    )
    return [cloud_id or name for cloud_id, name in rows]


def _stop_cloud_jobs(ids: list[str]) -> int:
    stopped = 0
    for cloud_id in (i for i in ids if i.startswith("job-")):
        try:
            get_client().stop_job(cloud_id)
            stopped += 1
        except bc.NotFound:
            stopped += 1
        except ComputeError as exc:  # deleting the cluster ends them anyway
            log.warning("stopping BatchCompute job %s failed: %s", cloud_id, exc)
    return stopped


def sync(cluster: Cluster) -> Cluster:
    """Cluster state, VM list and operation log from BatchCompute; resumes a creation."""
    if not is_cloud(cluster) or cluster.state in (ClusterState.DELETED, ClusterState.ERROR):
        return cluster
    if not cluster.cloud_cluster_id:
        if cluster.state == ClusterState.CREATING and (
            timezone.now() - cluster.updated_at >= RESUME_CREATE_AFTER
        ):
            _create_in_cloud(cluster, None, look_first=True)
        if not cluster.cloud_cluster_id:
            return cluster
    client = get_client()
    now = timezone.now()
    try:
        status = client.get_cluster(cluster.cloud_cluster_id)
    except bc.NotFound:
        gone = cluster.state == ClusterState.DELETING
        cluster.state = ClusterState.DELETED if gone else ClusterState.ERROR
        Cluster.objects.filter(pk=cluster.pk).update(
            state=cluster.state,
            actual_nodes=0,
            synced_at=now,
            sync_error="" if gone else "the BatchCompute cluster disappeared",
        )
        cluster.nodes.all().delete()
        record(cluster, "sync", "gone from BatchCompute", source="batchcompute")
        return cluster
    vms = client.cluster_vms(cluster.cloud_cluster_id)
    cluster.state = _state(cluster, status)
    cluster.actual_nodes = status.actual_nodes
    with transaction.atomic():
        Cluster.objects.filter(pk=cluster.pk).update(
            state=cluster.state, actual_nodes=status.actual_nodes, synced_at=now, sync_error=""
        )
        _sync_nodes(cluster, vms, now)
        _sync_log(cluster, status.operation_logs)
    return cluster


def _state(cluster: Cluster, status: bc.ClusterStatus) -> str:
    if status.state == "Deleting":
        return ClusterState.DELETING
    if status.state not in ("Active", ""):
        return ClusterState.ERROR
    if status.actual_nodes != cluster.desired_nodes:
        return ClusterState.RESIZING
    return ClusterState.ACTIVE


def _sync_nodes(cluster: Cluster, vms: list[bc.VMStatus], now: datetime) -> None:
    for vm in vms:
        failed = vm.error_code != 0 or vm.state not in VM_STATES
        ClusterNode.objects.update_or_create(
            cluster=cluster,
            name=vm.id,
            defaults={
                "state": NodeState.FAILED if failed else VM_STATES[vm.state],
                "cloud_state": vm.state[:30],
                "ip_address": vm.ip_address or None,
                "launched_at": vm.created,
                "error": f"{vm.error_code}: {vm.error_message}" if vm.error_code else "",
                "last_seen": now,
            },
        )
    cluster.nodes.exclude(name__in=[vm.id for vm in vms]).delete()


def _sync_log(cluster: Cluster, lines: list[str]) -> None:
    """BatchCompute's OperationLogs as operation rows (each line once)."""
    known = set(cluster.operations.filter(source="batchcompute").values_list("at", "message"))
    for line in lines:
        match = _LOG_LINE.match(line.strip())
        at = parse_datetime(match["at"]) if match else None
        if match is None or at is None:
            at, message = cluster.created_at, line.strip()
        else:
            group = f"[{match['group']}] " if match["group"] else ""
            message = group + match["message"].strip()
        if timezone.is_naive(at):
            at = timezone.make_aware(at, UTC)
        if (at, message) not in known:
            record(cluster, "cloud", message, source="batchcompute", at=at)
            known.add((at, message))


def sync_all() -> int:
    """Sync every BatchCompute cluster; one failing does not stop the others."""
    count = 0
    clusters = Cluster.objects.filter(backend=Backend.BATCHCOMPUTE, auto_cluster=False).exclude(
        state__in=(ClusterState.DELETED, ClusterState.ERROR)
    )
    for cluster in clusters.select_related("image"):
        try:
            sync(cluster)
            count += 1
        except ComputeError as exc:
            log.warning("syncing cluster %s failed: %s", cluster, exc)
            Cluster.objects.filter(pk=cluster.pk).update(sync_error=str(exc)[:2000])
    return count


def find(ident: str | int) -> Cluster:
    """A cluster by id or name (for the CLI)."""
    text = str(ident).lstrip("#")
    query = Cluster.objects.select_related("image")
    found = query.filter(pk=int(text)).first() if text.isdigit() else None
    if found is None:
        found = query.filter(name=text).first()
    if found is None:
        raise Cluster.DoesNotExist(f"No cluster {ident!r}.")
    return found


def summary(cluster: Cluster) -> dict[str, Any]:
    """What the CLI shows for one cluster."""
    mode = "-"
    if cluster.backend == Backend.BATCHCOMPUTE:
        mode = "auto" if cluster.auto_cluster else ("spot" if cluster.spot else "on-demand")
    nodes = f"{cluster.desired_nodes}"
    if is_cloud(cluster):
        nodes = f"{'?' if cluster.actual_nodes is None else cluster.actual_nodes}/{nodes}"
    return {
        "id": cluster.pk,
        "name": cluster.name,
        "backend": cluster.backend,
        "mode": mode,
        "state": cluster.state,
        "nodes": nodes,
        "instance type": cluster.instance_type or "-",
        "cloud id": cluster.cloud_cluster_id or "-",
    }
