"""RenderHub's BatchCompute client, built from settings, and the check of those settings.

Foundation, not domain: clusters (create, resize, sync), render jobs and the Cromwell
workflow engine all use the one client, so it sits below all three.

One client per process and configuration (settings are part of the cache key, so a test
that changes them gets a new client); :func:`tagged` names every cloud resource RenderHub
creates with this deployment's tag.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from renderhub.batchcompute import (
    OFFICIAL_HOST_RE,
    REGION_RE,
    TAG_RE,
    BatchCompute,
    parse_endpoint,
)
from renderhub.compute import ComputeError

RELEASE_POLICIES = ("always", "succeeded", "never")

_client_lock = threading.Lock()
_clients: dict[tuple[Any, ...], BatchCompute] = {}


def get_client() -> BatchCompute:
    """The client for the current settings (cached; settings are part of the key)."""
    if not settings.BATCHCOMPUTE_REGION:
        raise ComputeError("BatchCompute is not configured (BATCHCOMPUTE_REGION is empty).")
    key = (
        settings.BATCHCOMPUTE_REGION,
        settings.BATCHCOMPUTE_ENDPOINT,
        settings.BATCHCOMPUTE_ACCESS_KEY_ID,
        settings.BATCHCOMPUTE_ACCESS_KEY_SECRET,
        settings.BATCHCOMPUTE_TIMEOUT,
        settings.BATCHCOMPUTE_RETRIES,
    )
    with _client_lock:
        if (client := _clients.get(key)) is None:
            client = _clients[key] = BatchCompute(
                parse_endpoint(settings.BATCHCOMPUTE_REGION, settings.BATCHCOMPUTE_ENDPOINT),
                settings.BATCHCOMPUTE_ACCESS_KEY_ID,
                settings.BATCHCOMPUTE_ACCESS_KEY_SECRET,
                timeout=settings.BATCHCOMPUTE_TIMEOUT,
                retries=settings.BATCHCOMPUTE_RETRIES,
            )
    return client


def reset_clients() -> None:
    with _client_lock:
        _clients.clear()


def ping() -> str:
    """For the status page: one cheap signed call (list one job)."""
    return get_client().ping()


def tagged(name: str) -> str:
    """``name`` prefixed with this deployment's tag (every cloud resource we create)."""
    return f"{settings.RENDERHUB_DEPLOYMENT_TAG}-{name}"


def check_configuration(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """BATCHCOMPUTE_REGION and _ENDPOINT agree, and the names we create will be valid."""
    region, endpoint = settings.BATCHCOMPUTE_REGION, settings.BATCHCOMPUTE_ENDPOINT
    if not region and not endpoint:
        return []
    problems: list[CheckMessage] = []
    if not region:
        problems.append(
            Error(
                "BATCHCOMPUTE_ENDPOINT is set but BATCHCOMPUTE_REGION is not.",
                hint="Requests carry the region id; set BATCHCOMPUTE_REGION, e.g. cn-hangzhou.",
                id="batchcompute.E001",
            )
        )
        return problems
    if not REGION_RE.match(region):
        problems.append(
            Error(f"BATCHCOMPUTE_REGION {region!r} is not a region id.", id="batchcompute.E002")
        )
    try:
        parsed = parse_endpoint(region, endpoint)
    except ComputeError as exc:
        problems.append(Error(str(exc), id="batchcompute.E003"))
    else:
        if parsed.https and parsed.port != 443:
            problems.append(
                Error(
                    f"BATCHCOMPUTE_ENDPOINT {endpoint!r}: the SDK speaks HTTPS on port 443 only.",
                    id="batchcompute.E004",
                )
            )
        official = OFFICIAL_HOST_RE.match(parsed.host)
        if endpoint and official and official.group(1) != region:
            problems.append(
                Error(
                    f"BATCHCOMPUTE_ENDPOINT {endpoint!r} is in region {official.group(1)}, "
                    f"but BATCHCOMPUTE_REGION is {region}.",
                    id="batchcompute.E005",
                )
            )
        local = parsed.host in ("localhost", "127.0.0.1", "::1")
        if not parsed.https and not local:
            problems.append(
                Warning(
                    f"BATCHCOMPUTE_ENDPOINT {endpoint!r} is plain HTTP.",
                    hint="Use https:// outside tests.",
                    id="batchcompute.W001",
                )
            )
    if not TAG_RE.match(settings.RENDERHUB_DEPLOYMENT_TAG):
        problems.append(
            Error(
                f"RENDERHUB_DEPLOYMENT_TAG {settings.RENDERHUB_DEPLOYMENT_TAG!r} cannot start "
                "BatchCompute names: use a letter, then letters, digits, '-' or '_' (<= 32).",
                id="batchcompute.E006",
            )
        )
    if settings.BATCHCOMPUTE_RELEASE not in RELEASE_POLICIES:
        problems.append(
            Error(
                f"BATCHCOMPUTE_RELEASE must be one of {', '.join(RELEASE_POLICIES)}.",
                id="batchcompute.E007",
            )
        )
    return problems
