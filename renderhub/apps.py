from __future__ import annotations

from django.apps import AppConfig


class RenderHubConfig(AppConfig):
    name = "renderhub"
    verbose_name = "RenderHub"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
