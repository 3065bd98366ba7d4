"""The ``batchcompute`` compute backend: one BatchCompute job per dispatch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import cancel, poll, submit

if TYPE_CHECKING:
    from jobs.models import RenderJob, Task


class BatchComputeBackend:
    name = "batchcompute"

    def dispatch(self, job: RenderJob, tasks: list[Task]) -> None:
        submit.submit(job, tasks)

    def cancel(self, job: RenderJob, tasks: list[Task]) -> None:
        cancel.cancel(job)

    def poll(self, job: RenderJob) -> None:
        poll.poll_job(job)
