"""RenderHub: a self-hosted control panel for batch rendering and genomics workflows."""

from __future__ import annotations

try:
    from .celery import app as celery_app
except ImportError:  # the node agent (renderhub.agent) runs on machines without Celery
    celery_app = None  # type: ignore[assignment]

__all__ = ["celery_app"]
