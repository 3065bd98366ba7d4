"""System checks: inconsistent configuration fails at start, not in the middle of a render."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def storage_configuration(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
    url = settings.STORAGE_URL
    if url.startswith("oss://"):
        missing = [
            name
            for name in ("OSS_ENDPOINT", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET")
            if not getattr(settings, name)
        ]
        if missing:
            problems.append(
                Error(
                    f"STORAGE_URL is {url} but {', '.join(missing)} is not set.",
                    hint="Set the OSS endpoint and AccessKey, or use a file:// STORAGE_URL.",
                    id="renderhub.E001",
                )
            )
    elif url.startswith("file://"):
        from renderhub import storage

        try:
            storage.resolve(url if url.endswith("/") else url + "/")
        except storage.StorageError as exc:
            problems.append(
                Error(
                    f"STORAGE_URL {url} is not usable: {exc}",
                    hint="A file:// STORAGE_URL must lie inside LOCAL_STORAGE_ROOT.",
                    id="renderhub.E002",
                )
            )
    else:
        problems.append(
            Error(
                f"STORAGE_URL must start with file:// or oss://, not {url!r}.",
                id="renderhub.E003",
            )
        )
    return problems


@register()
def compute_configuration(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
    if settings.BATCHCOMPUTE_REGION and not (
        settings.BATCHCOMPUTE_ACCESS_KEY_ID and settings.BATCHCOMPUTE_ACCESS_KEY_SECRET
    ):
        problems.append(
            Error(
                "BATCHCOMPUTE_REGION is set but no BatchCompute AccessKey is.",
                hint="Set BATCHCOMPUTE_ACCESS_KEY_ID/SECRET (or the OSS_ ones they default to).",
                id="renderhub.E010",
            )
        )
    if settings.RENDER_STALE_AFTER < 2 * settings.RENDER_HEARTBEAT_SECONDS:
        problems.append(
            Error(
                "RENDER_STALE_AFTER must be at least twice RENDER_HEARTBEAT_SECONDS, or healthy "
                "renders would be requeued.",
                id="renderhub.E011",
            )
        )
    if settings.RENDER_MAX_NODES_PER_JOB < 1:
        problems.append(Error("RENDER_MAX_NODES_PER_JOB must be at least 1.", id="renderhub.E012"))
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith(("filesystem://", "redis://", "rediss://", "memory://")):
        problems.append(
            Warning(
                f"CELERY_BROKER_URL {broker.split('://')[0]}:// is untested with RenderHub.",
                hint="Use Redis in production (redis://…) or the embedded filesystem:// default.",
                id="renderhub.W020",
            )
        )
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    if visibility is not None and visibility <= settings.RENDER_TIMEOUT:
        problems.append(
            Error(
                "The Redis visibility timeout must exceed RENDER_TIMEOUT, or a long render is "
                "handed to a second worker while it still runs.",
                id="renderhub.E021",
            )
        )
    return problems


@register()
def sandbox_configuration(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """Renderers and WDL tasks run members' input: say so when nothing confines them."""
    from renderhub import sandbox_paths
    from renderhub.agent import sandbox

    problems: list[Error | Warning] = []
    for path in settings.RENDER_SANDBOX_PATHS:
        if (protected := sandbox_paths.exposes(path)) is not None:
            problems.append(
                Error(
                    f"RENDER_SANDBOX_PATHS entry {path} would let sandboxed programs read "
                    f"{protected}; it is left out of every sandbox.",
                    hint="Name only the folders renderers are installed in (e.g. /opt/blender).",
                    id="renderhub.E033",
                )
            )
    for name in ("RENDER_SANDBOX", "WORKFLOW_SANDBOX"):
        kind = getattr(settings, name, None)
        if kind is None:
            continue
        if kind not in sandbox.KINDS:
            problems.append(
                Error(
                    f"{name} must be one of {', '.join(sandbox.KINDS)}, not {kind!r}.",
                    id="renderhub.E030",
                )
            )
        elif kind == "none":
            problems.append(
                Warning(
                    f"{name} is 'none': what project members submit runs unconfined, with "
                    "the worker's file access.",
                    hint="Install bubblewrap (apt-get install bubblewrap) and set it to bwrap; "
                    "see docs/SECURITY.md.",
                    id="renderhub.W031",
                )
            )
        elif why := sandbox.problem(kind):
            problems.append(
                Warning(
                    f"{name} is {kind!r} but this machine cannot run it: {why}.",
                    hint="Render workers on this machine will fail every chunk until it can.",
                    id="renderhub.W032",
                )
            )
    return problems


@register()
def batchcompute_configuration(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    if not (settings.BATCHCOMPUTE_REGION or settings.BATCHCOMPUTE_ENDPOINT):
        return []  # not configured: don't load the (GPL) SDK at all
    from renderhub.cloud import check_configuration

    return check_configuration()
