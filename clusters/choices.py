from __future__ import annotations

from django.db import models


class Backend(models.TextChoices):
    CELERY = "celery", "Own machines (Celery workers)"
    BATCHCOMPUTE = "batchcompute", "Alibaba Cloud BatchCompute"


class ClusterState(models.TextChoices):
    ACTIVE = "active", "Active"
    CREATING = "creating", "Creating"
    RESIZING = "resizing", "Resizing"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    ERROR = "error", "Error"


class NodeState(models.TextChoices):
    STARTING = "starting", "Starting"
    IDLE = "idle", "Idle"
    BUSY = "busy", "Busy"
    OFFLINE = "offline", "Offline"
    FAILED = "failed", "Failed"
