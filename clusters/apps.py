from __future__ import annotations

from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self) -> None:
        from . import heartbeat  # noqa: F401  (connects the worker signals)
