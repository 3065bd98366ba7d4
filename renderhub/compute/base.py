from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from jobs.models import RenderJob, Task


class ComputeError(Exception):
    """The backend could not do what was asked; the message is meant for users."""


class ComputeBackend(Protocol):
    name: str

    def dispatch(self, job: RenderJob, tasks: list[Task]) -> None:
        """Start the given queued tasks of ``job``."""
        ...

    def cancel(self, job: RenderJob, tasks: list[Task]) -> None:
        """Stop the given tasks wherever they run (their rows are already cancelled)."""
        ...

    def poll(self, job: RenderJob) -> None:
        """Bring task states up to date from the backend (no-op when workers report)."""
        ...


def get_backend(name: str) -> ComputeBackend:
    if name == "celery":
        from .celery_backend import CeleryBackend

        return CeleryBackend()
    if name == "batchcompute":
        from .batchcompute import BatchComputeBackend

        return BatchComputeBackend()
    raise ComputeError(f"Compute backend {name!r} is not available in this version.")
