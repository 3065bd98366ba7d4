"""The Celery app: configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "renderhub.settings")

# DjangoTask gives every task delay_on_commit(): a worker never receives the id of a row
# whose transaction has not committed yet.
app = Celery("renderhub", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@worker_process_init.connect
def _stacks_on_sigusr2(**kwargs: object) -> None:
    """``kill -USR2 <pid>`` writes every thread's stack of a worker process to its log:
    a worker that seems stuck says where (SIGUSR1 is Celery's own, in the main process)."""
    faulthandler.register(signal.SIGUSR2, file=sys.__stderr__ or sys.stderr, all_threads=True)
