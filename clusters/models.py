from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from .choices import Backend, ClusterState, NodeState

# Cluster names end up in queue names and cloud resource names: keep them plain.
CLUSTER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")


class Cluster(models.Model):
    name = models.CharField(
        max_length=50, unique=True, help_text="Letters, digits, '-' and '_' (used in queue names)."
    )
    backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.CELERY)
    image = models.ForeignKey(
        "images.ComputeImage", on_delete=models.PROTECT, related_name="clusters"
    )
    instance_type = models.CharField(max_length=60, blank=True)
    disk_type = models.CharField(max_length=30, blank=True)
    disk_size_gb = models.PositiveIntegerField(default=40)
    desired_nodes = models.PositiveIntegerField(
        default=1, help_text="Nodes to run; 0 keeps the cluster but stops paying for nodes."
    )
    max_nodes = models.PositiveIntegerField(
        default=16,
        validators=[MinValueValidator(1)],
        help_text="The most nodes the cluster may run, and one job may use.",
    )
    state = models.CharField(
        max_length=20, choices=ClusterState.choices, default=ClusterState.ACTIVE
    )
    suspended_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set while the cluster is suspended for maintenance: its nodes take no new "
        "chunks (running ones finish).",
    )
    cloud_cluster_id = models.CharField(max_length=100, blank=True)
    # The BatchCompute cluster's name, also its idempotent token: tag, name and a random
    # part, so another install under the same tag never gets (or finds) this cluster.
    cloud_name = models.CharField(max_length=128, blank=True, editable=False)
    hourly_price = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Price of one node for an hour, for cost estimates on the submit page.",
    )
    # BatchCompute: a standing cluster (cloud_cluster_id) or, with auto_cluster, a VM per
    # chunk created for each job from the image and instance type (at most max_nodes).
    auto_cluster = models.BooleanField(
        default=False,
        help_text="BatchCompute: no standing cluster; each job gets its own VMs (AutoCluster).",
    )
    spot = models.BooleanField(default=False, help_text="BatchCompute: spot (preemptible) VMs.")
    spot_price_limit = models.DecimalField(
        max_digits=8,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Highest hourly spot price; empty: pay the going spot price.",
    )
    # Set by clusters.node_users: the Redis user its render nodes connect as, which can
    # reach this cluster's keys and nothing else; the cluster's queue then lives under its
    # own key prefix (broker_prefix).
    broker_user = models.CharField(max_length=80, blank=True, editable=False)
    actual_nodes = models.PositiveIntegerField(null=True, editable=False)
    synced_at = models.DateTimeField(null=True, editable=False)
    sync_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not CLUSTER_NAME_RE.match(self.name or ""):
            raise ValidationError(
                {"name": "Use letters, digits, '-' and '_' only, starting with a letter or digit."}
            )
        if self.backend == Backend.BATCHCOMPUTE and not self.instance_type:
            raise ValidationError(
                {"instance_type": "A BatchCompute cluster needs an instance type."}
            )

    @property
    def queue(self) -> str:
        """The Celery queue its render workers consume (celery backend)."""
        return f"render.{self.name}"

    @property
    def broker_prefix(self) -> str:
        """The Redis key prefix of its queue: its own once it has a node user, else none."""
        return f"renderhub.cluster.{self.name}:" if self.broker_user else ""

    def online_nodes(self) -> models.QuerySet[ClusterNode]:
        cutoff = timezone.now() - timedelta(seconds=settings.NODE_OFFLINE_AFTER)
        return self.nodes.filter(last_seen__gte=cutoff).exclude(state=NodeState.OFFLINE)


class ClusterNode(models.Model):
    """A machine rendering for a cluster: a Celery worker, or a cloud instance."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=200, help_text="Worker hostname or cloud instance id.")
    state = models.CharField(max_length=20, choices=NodeState.choices, default=NodeState.IDLE)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    cpu_count = models.PositiveIntegerField(null=True, blank=True)
    concurrency = models.PositiveIntegerField(null=True, blank=True)
    render_threads = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Renderer threads per chunk, as the node reported (0: every core); "
        "unknown: the manager's RENDER_THREADS.",
    )
    cpu_percent = models.FloatField(null=True, blank=True)
    memory_percent = models.FloatField(null=True, blank=True)
    compiled_python = models.CharField(
        max_length=500,
        blank=True,
        help_text="Whether its renderers start with their Python compiled ahead "
        "(renderhub/agent/bytecode.py), as the node reported.",
    )
    error = models.TextField(blank=True)
    cloud_state = models.CharField(max_length=30, blank=True, help_text="As BatchCompute says.")
    launched_at = models.DateTimeField(null=True, blank=True, help_text="Cloud VM created.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], name="node_unique_name_per_cluster")
        ]

    def __str__(self) -> str:
        return self.name


class ClusterOperation(models.Model):
    """What was done to a cluster: by RenderHub (who, what) or reported by BatchCompute."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="operations")
    at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=20, default="renderhub")  # or "batchcompute"
    action = models.CharField(max_length=20, blank=True)  # create, resize, delete, sync, …
    message = models.TextField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.cluster_id} {self.at:%Y-%m-%d %H:%M:%S} {self.message[:60]}"


class UnassignedWorker(models.Model):
    """A render worker consuming ``render.<name>`` where no cluster is called ``name`` yet.

    Its heartbeat lands here instead of nowhere, so System status can show it and offer to
    create the cluster it is waiting for.
    """

    cluster_name = models.CharField(max_length=200)
    hostname = models.CharField(max_length=200)
    cpu_count = models.PositiveIntegerField(null=True, blank=True)
    concurrency = models.PositiveIntegerField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["cluster_name", "hostname"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster_name", "hostname"], name="unassigned_worker_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hostname} (render.{self.cluster_name})"

    @property
    def queue(self) -> str:
        return f"render.{self.cluster_name}"
