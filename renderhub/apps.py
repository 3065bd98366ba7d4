from __future__ import annotations

from django.apps import AppConfig


class RenderHubConfig(AppConfig):
    name = "renderhub"
    verbose_name = "RenderHub"

    def ready(self) -> None:
        # Registers the system checks and the login-throttling receivers, and makes our
        # Celery app the current one so that shared_task.delay() in web and CLI processes
        # uses its broker settings.
        from . import auth, celery, checks  # noqa: F401
