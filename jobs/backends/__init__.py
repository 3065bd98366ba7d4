"""Compute backends: where the chunks of a render job actually run.

``celery`` (:mod:`.celery`) sends each chunk to a Celery queue consumed by render workers
on your own machines; ``batchcompute`` (:mod:`.batchcompute`) submits one BatchCompute job
whose instances are the chunks. A cluster's ``backend`` field names its backend.
"""

from __future__ import annotations

from renderhub.compute import ComputeError

from .base import ComputeBackend

__all__ = ["ComputeBackend", "ComputeError", "get_backend"]


def get_backend(name: str) -> ComputeBackend:
    """The backend called ``name`` (a cluster's ``backend``)."""
    if name == "celery":
        from .celery import CeleryBackend

        return CeleryBackend()
    if name == "batchcompute":
        from .batchcompute.backend import BatchComputeBackend

        return BatchComputeBackend()
    raise ComputeError(f"Compute backend {name!r} is not available in this version.")
