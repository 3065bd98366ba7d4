"""Compute backends: where the chunks of a render job actually run.

``celery`` sends each chunk to a Celery queue consumed by render workers on your own
machines; ``batchcompute`` (arriving with the cloud issue) submits one BatchCompute job.
"""

from __future__ import annotations

from .base import ComputeBackend, ComputeError, get_backend

__all__ = ["ComputeBackend", "ComputeError", "get_backend"]
