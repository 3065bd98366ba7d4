"""What exists on BatchCompute, as plain data with aware UTC times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """A BatchCompute job's, task's or instance's state, as the API spells it."""

    WAITING = "Waiting"
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"
    STOPPED = "Stopped"
    DELETED = "Deleted"  # RenderHub's word for a job gone from the API (never the API's)


class VMState(StrEnum):
    """A cluster VM's state."""

    PENDING = "Pending"
    STARTING = "Starting"
    RUNNING = "Running"
    DELETING = "Deleting"
    DELETED = "Deleted"


TERMINAL_STATES = frozenset({State.FINISHED, State.FAILED, State.STOPPED})


@dataclass(frozen=True)
class JobStatus:
    id: str
    name: str
    state: str
    message: str
    created: datetime | None
    started: datetime | None
    ended: datetime | None
    instance_metrics: dict[str, int]


@dataclass(frozen=True)
class InstanceStatus:
    index: int
    state: str
    retry_count: int
    node_ip: str
    exit_code: int | None
    error_code: str
    error_message: str
    detail: str
    stdout_path: str
    stderr_path: str
    started: datetime | None
    ended: datetime | None


@dataclass(frozen=True)
class ClusterStatus:
    id: str
    name: str
    state: str
    desired_nodes: int
    actual_nodes: int
    operation_logs: list[str]
    created: datetime | None


@dataclass(frozen=True)
class VMStatus:
    id: str
    state: str
    ip_address: str
    error_code: int
    error_message: str
    created: datetime | None


@dataclass(frozen=True)
class InstanceType:
    name: str
    cpus: int
    memory_gb: float


@dataclass(frozen=True)
class Resources:
    """What this account may use in the region (for form choices and validation)."""

    instance_types: list[InstanceType]
    spot_instance_types: list[str]
    disk_types: list[str]
    images: list[tuple[str, str]]  # (id, name)


def aware(value: Any) -> datetime | None:
    # The SDK turns "…Z" times into naive *local* datetimes; astimezone() undoes exactly that.
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def text(obj: Any, key: str) -> str:
    value = obj.get(key) if obj is not None else None
    return "" if value is None else str(value)


def instance_status(item: Any) -> InstanceStatus:
    """An instance as the SDK lists it (a dict-like resource) as plain data."""
    result, error = item.get("Result"), item.get("Error")
    exit_code = result.get("ExitCode") if result is not None else None
    return InstanceStatus(
        index=int(item.get("InstanceId") or 0),
        state=text(item, "State"),
        retry_count=int(item.get("RetryCount") or 0),
        node_ip=text(item, "NodeIp"),
        exit_code=None if exit_code is None or exit_code == "" else int(exit_code),
        error_code=text(result, "ErrorCode") or text(error, "Code"),
        error_message=text(result, "ErrorMessage") or text(error, "Message"),
        detail=text(result, "Detail"),
        stdout_path=text(item, "StdoutRedirectPath"),
        stderr_path=text(item, "StderrRedirectPath"),
        started=aware(item.get("StartTime")),
        ended=aware(item.get("EndTime")),
    )
