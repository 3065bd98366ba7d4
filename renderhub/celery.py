"""The Celery app: configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "renderhub.settings")

# DjangoTask gives every task delay_on_commit(): a worker never receives the id of a row
# whose transaction has not committed yet.
app = Celery("renderhub", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
