"""System checks of the jobs app: the BatchCompute backend's settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import register


@register()
def batchcompute_configuration(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    if not (settings.BATCHCOMPUTE_REGION or settings.BATCHCOMPUTE_ENDPOINT):
        return []  # not configured: don't load the (GPL) SDK at all
    from jobs.backends.batchcompute.config import check_configuration

    return check_configuration()
