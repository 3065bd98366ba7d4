"""The error that compute backends and the BatchCompute client raise, meant for users.

The backends themselves (where the chunks of a render job actually run) are domain code:
``jobs/backends/`` holds the celery backend, the BatchCompute backend and the registry
that maps a cluster to its backend. The Django-free BatchCompute client is
:mod:`renderhub.batchcompute`.
"""

from __future__ import annotations


class ComputeError(Exception):
    """The backend could not do what was asked; the message is meant for users."""


__all__ = ["ComputeError"]
