"""What every compute backend does with a render job's chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from jobs.models import RenderJob, Task


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
