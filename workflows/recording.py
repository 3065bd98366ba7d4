"""What engines report: the one place a run's state and calls change.

miniwdl's runner calls :func:`record` every second from the worker, the beat task
``services.poll_runs`` after asking a remote engine.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from .choices import TERMINAL_RUN_STATES, RunState
from .engines import CallInfo, RunStatus
from .models import Call, WorkflowRun
from .signals import run_state_changed

log = logging.getLogger(__name__)


def record(run_id: int, status: RunStatus) -> bool:
    """Store what the engine says; returns whether the run should keep going."""
    now = timezone.now()
    with transaction.atomic():
        run = WorkflowRun.objects.select_for_update().get(pk=run_id)
        if status.calls is not None:
            _save_calls(run, status.calls)
        fields: dict[str, Any] = {"heartbeat_at": now, "polled_at": now, "poll_error": ""}
        if run.state in TERMINAL_RUN_STATES:
            WorkflowRun.objects.filter(pk=run_id).update(**fields)
            return False  # ended meanwhile (e.g. given up as lost): stop
        if status.engine_status:
            fields["engine_status"] = status.engine_status[:50]
        if new := [w for w in status.warnings or [] if w not in run.warnings]:
            fields["warnings"] = [*run.warnings, *_storable(new)]
        state = status.state
        if run.state == RunState.ABORTING and state in (RunState.SUBMITTED, RunState.RUNNING):
            state = RunState.ABORTING  # until the engine says it stopped
        fields["state"] = state
        if state != RunState.SUBMITTED and not run.started_at:
            fields["started_at"] = status.started_at or now
        if state in TERMINAL_RUN_STATES:
            fields["finished_at"] = status.finished_at or now
            fields["failure_message"] = _storable(status.failure_message[:20000])
            fields["pid"] = None
            if status.outputs is not None:
                fields["outputs"] = _storable(status.outputs)
        WorkflowRun.objects.filter(pk=run_id).update(**fields)
    if state != run.state:
        announce(run_id, run.state, state)
        if state in TERMINAL_RUN_STATES:
            reason = f": {status.failure_message[:500]}" if status.failure_message else ""
            log.info("workflow run %s %s%s", run_id, state, reason)
    return state in (RunState.SUBMITTED, RunState.RUNNING)


def _storable(value: Any) -> Any:
    """``value`` without NUL characters, which PostgreSQL refuses in text and JSON: a task
    that prints one (``/proc/*/environ`` has them) must not make recording its run fail."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def announce(run_id: int, old_state: str, new_state: str) -> None:
    def send() -> None:
        run_state_changed.send(
            sender=WorkflowRun, run_id=run_id, old_state=old_state, new_state=new_state
        )

    transaction.on_commit(send)


CALL_FIELDS = [
    "name",
    "shard",
    "attempt",
    "status",
    "backend_status",
    "started_at",
    "finished_at",
    "return_code",
    "stdout",
    "stderr",
    "backend_job_id",
    "cache_hit",
    "cached_from",
    "failure_message",
]


def _save_calls(run: WorkflowRun, calls: list[CallInfo]) -> None:
    """Insert new calls and update changed ones (by the engine's key)."""
    existing = {c.key: c for c in run.calls.all()}
    new: list[Call] = []
    changed: list[Call] = []
    for info in calls:
        values = {name: _storable(getattr(info, name)) for name in CALL_FIELDS}
        values["failure_message"] = values["failure_message"][:20000]
        current = existing.get(info.key)
        if current is None:
            new.append(Call(run=run, key=info.key[:500], **values))
        elif any(getattr(current, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(current, key, value)
            changed.append(current)
    if new:
        Call.objects.bulk_create(new, batch_size=500)
    if changed:
        Call.objects.bulk_update(changed, CALL_FIELDS, batch_size=500)


def end_run(run_id: int, state: str, message: str) -> None:
    """End the run in ``state`` (terminal) with ``message``, as if the engine said so."""
    record(run_id, RunStatus(state=state, engine_status=state, failure_message=message))
