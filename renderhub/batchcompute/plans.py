"""What to create on BatchCompute, as plain data (the client turns it into SDK objects)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Names go into URL paths unescaped (SDK pitfall) and must not start with a digit.
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
TAG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Mount:
    source: str  # oss://bucket/folder/
    destination: str  # /node/path/
    writable: bool = False


@dataclass(frozen=True)
class Machines:
    """VMs for an AutoCluster task or a cluster's instance group."""

    image_id: str  # img-… (a BatchCompute image) or m-… (an ECS image)
    instance_type: str
    spot: bool = False
    spot_price_limit: float | None = None  # None: pay the going spot price
    disk_type: str = ""
    disk_size_gb: int = 40


@dataclass(frozen=True)
class TaskPlan:
    instance_count: int
    command_line: str
    package_url: str
    log_url: str  # OSS folder for stdout.<job>.<task>.<instance> and stderr.…
    timeout: int
    max_retries: int
    cluster_id: str = ""  # a standing cluster, or …
    auto: Machines | None = None  # … VMs created for this task (AutoCluster)
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    output_mapping: dict[str, str] = field(default_factory=dict)  # node folder -> OSS folder
    log_mapping: dict[str, str] = field(default_factory=dict)  # node file -> OSS folder


@dataclass(frozen=True)
class JobPlan:
    name: str
    description: str
    priority: int  # 0-1000, higher first
    tasks: dict[str, TaskPlan]


@dataclass(frozen=True)
class AppJobPlan:
    """A job of a BatchCompute app (e.g. ``:cromwell``), what ``bcs asub`` submits."""

    name: str
    description: str
    app: str  # the app's name, e.g. ":cromwell"
    inputs: dict[str, str]
    outputs: dict[str, str]
    log_url: str  # OSS folder for the app's stdout and stderr
    config: dict[str, Any] = field(default_factory=dict)  # the app's Config overrides
    priority: int = 0
    fail_on_instance_fail: bool = True


@dataclass(frozen=True)
class ClusterPlan:
    name: str
    description: str
    machines: Machines
    nodes: int
