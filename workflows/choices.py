from __future__ import annotations

from django.db import models


class Engine(models.TextChoices):
    MINIWDL = "miniwdl", "miniwdl (embedded, runs here)"
    CROMWELL = "cromwell", "Cromwell server"
    BATCHCOMPUTE_CROMWELL = "batchcompute-cromwell", "BatchCompute Cromwell app"


class RunState(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ABORTING = "aborting", "Aborting"
    ABORTED = "aborted", "Aborted"


class CallStatus(models.TextChoices):
    """Cromwell's executionStatus vocabulary, which every engine's calls are mapped onto."""

    NOT_STARTED = "NotStarted", "Not started"
    QUEUED = "QueuedInCromwell", "Queued"
    STARTING = "Starting", "Starting"
    RUNNING = "Running", "Running"
    ABORTING = "Aborting", "Aborting"
    RETRYABLE_FAILURE = "RetryableFailure", "Failed, retried"
    FAILED = "Failed", "Failed"
    DONE = "Done", "Done"
    BYPASSED = "Bypassed", "Bypassed"
    ABORTED = "Aborted", "Aborted"
    # Not Cromwell's: miniwdl stops the calls still running when another one fails.
    STOPPED = "Stopped", "Stopped (another call failed)"
    UNSTARTABLE = "Unstartable", "Unstartable"


ACTIVE_RUN_STATES = (RunState.SUBMITTED, RunState.RUNNING, RunState.ABORTING)
TERMINAL_RUN_STATES = (RunState.SUCCEEDED, RunState.FAILED, RunState.ABORTED)
TERMINAL_CALL_STATUSES = (
    CallStatus.DONE,
    CallStatus.FAILED,
    CallStatus.ABORTED,
    CallStatus.STOPPED,
    CallStatus.BYPASSED,
    CallStatus.UNSTARTABLE,
    CallStatus.RETRYABLE_FAILURE,
)
