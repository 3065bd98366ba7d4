"""Connectivity and configuration facts for /healthz and the admin's System status page."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

SECRET_SETTINGS = (
    "SECRET_KEY",
    "OSS_ACCESS_KEY_SECRET",
    "BATCHCOMPUTE_ACCESS_KEY_SECRET",
    "EMAIL_HOST_PASSWORD",
    "WEBHOOK_ENCRYPTION_KEYS",
    "CROMWELL_AUTH_HEADER",
)
SHOWN_SETTINGS = (
    "DEBUG",
    "ALLOWED_HOSTS",
    "VAR_DIR",
    "DATABASES",
    "CELERY_BROKER_URL",
    "STORAGE_URL",
    "LOCAL_STORAGE_ROOT",
    "OSS_ENDPOINT",
    "OSS_ACCESS_KEY_ID",
    "OSS_ACCESS_KEY_SECRET",
    "BATCHCOMPUTE_REGION",
    "BATCHCOMPUTE_ENDPOINT",
    "BATCHCOMPUTE_ACCESS_KEY_ID",
    "BATCHCOMPUTE_ACCESS_KEY_SECRET",
    "RENDERHUB_DEPLOYMENT_TAG",
    "RENDER_TIMEOUT",
    "RENDER_MAX_NODES_PER_JOB",
    "RENDER_TASK_MAX_ATTEMPTS",
    "RENDER_HEARTBEAT_SECONDS",
    "RENDER_STALE_AFTER",
    "RENDER_WORK_DIR",
    "RENDER_BYTECODE_DIR",
    "RENDER_SANDBOX",
    "RENDER_SANDBOX_PATHS",
    "RENDER_MAX_FILE_SIZE",
    "RENDER_MAX_PROCESSES",
    "RENDER_MAX_MEMORY",
    "WORKFLOW_SANDBOX",
    "AUTO_DOWNLOAD",
    "AUTO_DOWNLOAD_DIR",
    "SIGNED_URL_TTL",
    "CROMWELL_URL",
    "CROMWELL_AUTH_HEADER",
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def mask_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host``."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def effective_settings() -> list[tuple[str, str]]:
    rows = []
    for name in SHOWN_SETTINGS:
        value: Any = getattr(settings, name, "")
        if name in SECRET_SETTINGS:
            shown = "set (hidden)" if value else "not set"
        elif name == "DATABASES":
            db = value["default"]
            shown = (
                f"{db['ENGINE'].rsplit('.', 1)[-1]} {db.get('NAME')} @ {db.get('HOST') or 'local'}"
            )
        elif isinstance(value, str):
            shown = mask_url(value)
        else:
            shown = str(value)
        rows.append((name, shown))
    return rows


def _timed(name: str, fn: Any) -> Check:
    start = time.monotonic()
    try:
        detail = fn()
        ok = True
    except Exception as exc:  # a health check reports every failure, whatever it is
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return Check(name, ok, mask_url(str(detail)), round(time.monotonic() - start, 3))


def check_database() -> Check:
    def probe() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return connection.vendor

    return _timed("database", probe)


def check_broker() -> Check:
    def probe() -> str:
        from renderhub.celery import app

        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
            return conn.as_uri()

    return _timed("broker", probe)


def check_storage() -> Check:
    def probe() -> str:
        from renderhub import storage

        default = storage.default_storage()
        default.list("", limit=1)
        return default.root_url

    return _timed("storage", probe)


def check_batchcompute() -> Check | None:
    if not settings.BATCHCOMPUTE_REGION:
        return None

    def probe() -> str:
        from renderhub.cloud import ping

        return ping()

    return _timed("batchcompute", probe)


@dataclass
class SandboxRow:
    setting: str
    kind: str
    ok: bool
    detail: str


def sandbox_rows() -> list[SandboxRow]:
    """What confines renderers and WDL tasks started on this machine (docs/SECURITY.md)."""
    from renderhub.agent import sandbox

    rows = []
    for name in ("RENDER_SANDBOX", "WORKFLOW_SANDBOX"):
        kind = getattr(settings, name, None)
        if kind is None:
            continue
        if kind == "none":
            rows.append(SandboxRow(name, kind, False, "not confined: runs as the worker's user"))
        elif why := sandbox.problem(kind):
            rows.append(SandboxRow(name, kind, False, why))
        else:
            rows.append(SandboxRow(name, kind, True, f"{sandbox.bwrap_path()} works here"))
    return rows


@dataclass
class RefusedOutputDir:
    project: Any
    reason: str


def refused_output_dirs() -> list[RefusedOutputDir]:
    """Projects whose (Linux) node temp output dir the local worker refuses on this
    machine (``jobs.output_root``): saved before the rule, or the settings moved since.
    Their chunks fail on this machine's worker until a superuser changes the folder."""
    from images.choices import Platform
    from projects.models import Project
    from renderhub.sandbox_paths import output_root_refusal

    rows = []
    for project in Project.objects.exclude(image__platform=Platform.WINDOWS).order_by("name"):
        if reason := output_root_refusal(project.node_output_dir):
            rows.append(RefusedOutputDir(project, reason))
    return rows


def run_checks() -> list[Check]:
    checks = [check_database(), check_broker(), check_storage()]
    if (bc := check_batchcompute()) is not None:
        checks.append(bc)
    return checks
