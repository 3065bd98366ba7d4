"""What a failed BatchCompute call raises (no SDK types: callers never see one)."""

from __future__ import annotations

from renderhub.compute import ComputeError


class BatchComputeError(ComputeError):
    """A failed call; ``transient`` ones persisted through our retries."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        request_id: str = "",
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.request_id = status, code, request_id
        self.transient = transient


class NotFound(BatchComputeError):
    pass


class Conflict(BatchComputeError):
    """409 StateConflict: the resource is not in a state that allows the operation."""
