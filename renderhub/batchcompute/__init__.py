"""A Django-free client for Alibaba Cloud BatchCompute.

``client`` wraps the real ``batchcompute`` SDK (GPL-2.0, imported in that one module
only): signed requests with timeouts and bounded retries. Everything else here is plain
data: what to create (``plans``), what exists (``statuses``), errors and endpoints. The
caller passes the configuration (region, endpoint, AccessKey, timeouts); RenderHub builds
its client from settings in ``renderhub/cloud.py``.
"""

from __future__ import annotations

from .client import PAGE_SIZE, BatchCompute
from .endpoint import OFFICIAL_HOST_RE, REGION_RE, Endpoint, parse_endpoint
from .errors import BatchComputeError, Conflict, NotFound
from .plans import (
    NAME_RE,
    TAG_RE,
    AppJobPlan,
    ClusterPlan,
    JobPlan,
    Machines,
    Mount,
    TaskPlan,
)
from .statuses import (
    TERMINAL_STATES,
    ClusterStatus,
    InstanceStatus,
    InstanceType,
    JobStatus,
    Resources,
    State,
    VMState,
    VMStatus,
)

__all__ = [
    "NAME_RE",
    "OFFICIAL_HOST_RE",
    "PAGE_SIZE",
    "REGION_RE",
    "TAG_RE",
    "TERMINAL_STATES",
    "AppJobPlan",
    "BatchCompute",
    "BatchComputeError",
    "ClusterPlan",
    "ClusterStatus",
    "Conflict",
    "Endpoint",
    "InstanceStatus",
    "InstanceType",
    "JobPlan",
    "JobStatus",
    "Machines",
    "Mount",
    "NotFound",
    "Resources",
    "State",
    "TaskPlan",
    "VMState",
    "VMStatus",
    "parse_endpoint",
]
