from __future__ import annotations

from django.db import models


class WebhookEvent(models.TextChoices):
    JOB_STATE_CHANGED = "job.state_changed", "Render job state changed"
    FRAME_FAILED = "frame.failed", "Frame failed"
    WORKFLOW_STATE_CHANGED = "workflow.state_changed", "Workflow state changed"


# Sent only by the admin's "send test event"; every active webhook receives it.
PING_EVENT = "ping"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
