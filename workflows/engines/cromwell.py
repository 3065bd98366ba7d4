"""A Cromwell server through its REST API v1 (``/api/workflows/v1``), with ``requests``.

Every request has a connect and a read timeout; idempotent ones are retried a bounded
number of times on connection errors, timeouts and 502/503/504. Submissions are
idempotent too: RenderHub picks the workflow id first (``requestedWorkflowId``), so a
retried POST finds the workflow it already created. The Authorization header
(``CROMWELL_AUTH_HEADER``) is a secret: it is sent, never logged or shown.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import requests
from django.conf import settings
from django.utils.dateparse import parse_datetime

from renderhub import storage

from .. import access, validation
from ..choices import CallStatus, RunState
from . import cromwell_servers
from .base import CallInfo, Engine, EngineError, RunStatus, Submission, read_dependencies

if TYPE_CHECKING:
    from projects.models import Project

    from ..models import WorkflowRun

log = logging.getLogger(__name__)

API = "/api/workflows/v1"
TIMEOUT = (5.0, 30.0)  # connect, read (seconds)
RETRIES = 3
BACKOFF = 0.5  # seconds, doubled after each retry
RETRY_STATUSES = {502, 503, 504}
# Enough for progress and the calls table, without submittedFiles or call-cache hashes.
SLIM_KEYS = (
    "id",
    "status",
    "start",
    "end",
    "failures",
    "executionStatus",
    "backendStatus",
    "jobId",
    "returnCode",
    "stdout",
    "stderr",
    "callCaching",
    "subWorkflowId",
    "callRoot",
)
STATES = {
    "On Hold": RunState.SUBMITTED,
    "Submitted": RunState.SUBMITTED,
    "Running": RunState.RUNNING,
    "Aborting": RunState.ABORTING,
    "Succeeded": RunState.SUCCEEDED,
    "Failed": RunState.FAILED,
    "Aborted": RunState.ABORTED,
}
CALL_STATUSES = set(CallStatus.values)


def engine() -> CromwellEngine:
    return CromwellEngine()


class CromwellClient:
    """The REST calls we use; errors become :class:`EngineError` with Cromwell's message."""

    def __init__(
        self,
        base_url: str,
        auth_header: str = "",
        *,
        timeout: tuple[float, float] | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout or TIMEOUT
        self.retries = RETRIES if retries is None else retries
        self.backoff = BACKOFF if backoff is None else backoff
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if auth_header:
            self.session.headers["Authorization"] = auth_header

    def _request(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> Any:
        url = self.base_url + path
        attempts = 1 + (self.retries if retry else 0)
        delay = self.backoff
        for attempt in range(1, attempts + 1):
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == attempts:
                    raise EngineError(
                        f"Cromwell at {self.base_url} did not answer: {type(exc).__name__}",
                        transient=True,
                    ) from None
            else:
                if response.status_code not in RETRY_STATUSES or attempt == attempts:
                    return self._result(response)
            log.info("Cromwell %s %s failed (attempt %d); retrying", method, path, attempt)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _result(self, response: requests.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.ok:
            if body is None:
                raise EngineError(f"Cromwell answered {response.status_code} without JSON.")
            return body
        message = ""
        if isinstance(body, dict):
            message = str(body.get("message") or "")
            if errors := body.get("errors"):
                message += " " + "; ".join(str(e) for e in errors)
        message = message.strip() or response.text[:300].strip() or response.reason
        raise EngineError(
            f"Cromwell: {message} (HTTP {response.status_code})",
            transient=response.status_code >= 500,
            status=response.status_code,
        )

    # --- the API ---------------------------------------------------------------------

    def submit(
        self,
        source: str,
        inputs: dict[str, Any],
        options: dict[str, Any],
        labels: dict[str, str],
        *,
        dependencies: bytes | None = None,
        requested_id: str = "",
    ) -> dict[str, Any]:
        parts: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
            ("workflowSource", ("workflow.wdl", source.encode(), "application/octet-stream")),
            ("workflowInputs", ("inputs.json", json.dumps(inputs), "application/json")),
            ("workflowOptions", ("options.json", json.dumps(options), "application/json")),
            ("labels", ("labels.json", json.dumps(labels), "application/json")),
            ("workflowType", (None, "WDL", "text/plain")),
        ]
        if dependencies:
            parts.append(
                ("workflowDependencies", ("dependencies.zip", dependencies, "application/zip"))
            )
        if requested_id:
            parts.append(("requestedWorkflowId", (None, requested_id, "text/plain")))
        # Retrying is safe only with a requested id (the server then refuses a duplicate).
        return self._request("POST", API, files=parts, retry=bool(requested_id))

    def status(self, workflow_id: str) -> str:
        return str(self._request("GET", f"{API}/{workflow_id}/status")["status"])

    def metadata(
        self,
        workflow_id: str,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        expand_subworkflows: bool = False,
    ) -> dict[str, Any]:
        params: list[tuple[str, str]] = [("includeKey", k) for k in include]
        params += [("excludeKey", k) for k in exclude]
        params.append(("expandSubWorkflows", "true" if expand_subworkflows else "false"))
        return self._request("GET", f"{API}/{workflow_id}/metadata", params=params)

    def outputs(self, workflow_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"{API}/{workflow_id}/outputs").get("outputs") or {})

    def abort(self, workflow_id: str) -> str:
        return str(self._request("POST", f"{API}/{workflow_id}/abort")["status"])


# --- mapping Cromwell's metadata ------------------------------------------------------


def _time(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) and value else None


def flatten_failures(failures: Any) -> str:
    """Cromwell's nested ``failures`` / ``causedBy`` lists as one readable text."""
    messages: list[str] = []

    def walk(items: Any) -> None:
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                if (message := str(item.get("message") or "").strip()) and message not in messages:
                    messages.append(message)
                walk(item.get("causedBy"))

    walk(failures)
    return "\n".join(messages)


def calls_from_metadata(metadata: dict[str, Any]) -> list[CallInfo]:
    calls = []
    for name, entries in (metadata.get("calls") or {}).items():
        for entry in entries if isinstance(entries, list) else []:
            shard = int(entry.get("shardIndex", -1))
            attempt = int(entry.get("attempt", 1))
            status = str(entry.get("executionStatus") or CallStatus.NOT_STARTED)
            caching = entry.get("callCaching") or {}
            return_code = entry.get("returnCode")
            calls.append(
                CallInfo(
                    key=f"{name}:{shard}:{attempt}",
                    name=name,
                    shard=shard,
                    attempt=attempt,
                    status=status if status in CALL_STATUSES else CallStatus.RUNNING,
                    backend_status=str(entry.get("backendStatus") or ""),
                    started_at=_time(entry.get("start")),
                    finished_at=_time(entry.get("end")),
                    return_code=int(return_code) if isinstance(return_code, int) else None,
                    stdout=str(entry.get("stdout") or ""),
                    stderr=str(entry.get("stderr") or ""),
                    backend_job_id=str(entry.get("jobId") or entry.get("subWorkflowId") or ""),
                    cache_hit=bool(caching.get("hit")) if isinstance(caching, dict) else False,
                    cache_source=_cache_source(caching),
                    failure_message=flatten_failures(entry.get("failures")),
                )
            )
    return calls


def _cache_source(caching: Any) -> str:
    """The workflow id in Cromwell's ``"Cache Hit: <workflow id>:<call>:<shard>"``."""
    result = caching.get("result") if isinstance(caching, dict) else None
    if not isinstance(result, str) or not result.startswith("Cache Hit: "):
        return ""
    return result.removeprefix("Cache Hit: ").split(":", 1)[0].strip()


def link_cache_sources(run: WorkflowRun, calls: list[CallInfo]) -> None:
    """Cached calls name the RenderHub run of the same project they came from, if any."""
    from ..models import WorkflowRun

    sources = {c.cache_source for c in calls if c.cache_source}
    if not sources:
        return
    runs = dict(
        WorkflowRun.objects.filter(
            project_id=run.project_id, engine=run.engine, engine_run_id__in=sources
        ).values_list("engine_run_id", "pk")
    )
    for call in calls:
        call.cached_from = runs.get(call.cache_source)


def status_from_metadata(metadata: dict[str, Any]) -> RunStatus:
    engine_status = str(metadata.get("status") or "")
    state = STATES.get(engine_status, RunState.RUNNING)
    return RunStatus(
        state=state,
        engine_status=engine_status,
        calls=calls_from_metadata(metadata),
        failure_message=flatten_failures(metadata.get("failures")),
        started_at=_time(metadata.get("start")),
        finished_at=_time(metadata.get("end")),
    )


def effective_options(run: WorkflowRun) -> dict[str, Any]:
    """The run's options, with outputs and logs going to its folders unless it says otherwise.

    Folders it names itself were checked to be in its project (workflows.access) and are
    sent like the run's own: file:// URLs as the local paths Cromwell writes to.
    """
    options = cromwell_servers.cache_options(run, dict(run.options or {}))
    for key, value in options.items():
        if key.startswith(access.PATH_OPTION_PREFIX) and isinstance(value, str):
            options[key] = _folder(access.as_url(value))
    if url_path := _folder(run.outputs_dir):
        options.setdefault("final_workflow_outputs_dir", url_path)
    if url_path := _folder(run.working_dir):
        options.setdefault("final_call_logs_dir", url_path + "call_logs/")
        options.setdefault("final_workflow_log_dir", url_path + "workflow_logs/")
    return options


def _folder(url: str) -> str:
    """What Cromwell is given for a storage URL: a file:// URL as the local path it names
    (Cromwell must then share the local storage's disk), any other URL as it is."""
    if not url.startswith("file://"):
        return url
    storage.resolve(url)  # inside LOCAL_STORAGE_ROOT, no '..' (checked at submission too)
    return unquote(urlsplit(url).path)


def engine_inputs(run: WorkflowRun, dependencies: bytes | None) -> dict[str, Any]:
    """The run's inputs with each File and Directory value as Cromwell reads it."""
    if "file://" not in json.dumps(run.inputs):
        return dict(run.inputs)
    import WDL

    try:
        exe = validation.executable(validation.load(run.wdl_source, dependencies))
        values = WDL.values_from_json(run.inputs, exe.available_inputs, namespace=exe.name)
        values = WDL.Value.rewrite_env_paths(values, lambda item: _folder(item.value))
    except (validation.WorkflowInvalid, storage.StorageError) as exc:
        raise EngineError(f"The inputs cannot be sent: {exc}") from None
    return WDL.values_to_json(values, namespace=exe.name)


def task_only_problems(doc: Any) -> list[str]:
    """Cromwell runs workflows only: a WDL with tasks and no workflow is refused up front."""
    if doc is None or getattr(doc, "workflow", None) is not None or not doc.tasks:
        return []
    names = ", ".join(t.name for t in doc.tasks)
    return [
        f"Cromwell runs workflows only, and this WDL has no workflow (its tasks: {names}). "
        f"Call the task from a workflow (workflow run_{doc.tasks[0].name} "
        f"{{ call {doc.tasks[0].name} }}), or run it with the miniwdl engine."
    ]


class CromwellEngine(Engine):
    name = "cromwell"
    requested_id = True

    def configuration_problems(self) -> list[str]:
        if not settings.CROMWELL_URL and not cromwell_servers.project_urls():
            return ["The Cromwell engine needs the CROMWELL_URL setting, which is not set."]
        return []

    def project_notes(self, project: Project, doc: Any) -> tuple[list[str], list[str]]:
        problems, warnings = cromwell_servers.submission_notes(project)
        return [*problems, *task_only_problems(doc)], warnings

    def client(self, run: WorkflowRun) -> CromwellClient:
        return CromwellClient(cromwell_servers.server_of(run), settings.CROMWELL_AUTH_HEADER)

    def start(self, run: WorkflowRun) -> Submission:
        from ..models import WorkflowRun

        labels = {**(run.labels or {}), "renderhub-run": str(run.pk)}
        if not run.engine_url:  # kept: later polls go where the run went
            run.engine_url = cromwell_servers.server_for(run.project)[0]
            WorkflowRun.objects.filter(pk=run.pk).update(engine_url=run.engine_url)
        client = self.client(run)
        dependencies = read_dependencies(run.dependencies_url)
        try:
            answer = client.submit(
                run.wdl_source,
                engine_inputs(run, dependencies),
                effective_options(run),
                labels,
                dependencies=dependencies,
                requested_id=run.engine_run_id,
            )
        except EngineError as exc:
            # A retried POST whose first try got through: the id exists already.
            if exc.status != 400 or not run.engine_run_id:
                raise
            try:
                status = client.status(run.engine_run_id)
            except EngineError:
                raise exc from None
            return Submission(run.engine_run_id, status)
        return Submission(str(answer["id"]), str(answer.get("status") or "Submitted"))

    def poll(self, run: WorkflowRun) -> RunStatus:
        client = self.client(run)
        metadata = client.metadata(run.engine_run_id, include=SLIM_KEYS)
        status = status_from_metadata(metadata)
        link_cache_sources(run, status.calls or [])
        if status.state in (RunState.SUCCEEDED, RunState.FAILED, RunState.ABORTED):
            status.outputs = client.outputs(run.engine_run_id)
        return status

    def abort(self, run: WorkflowRun) -> None:
        try:
            self.client(run).abort(run.engine_run_id)
        except EngineError as exc:
            if exc.status != 404:  # 404: it ended already; the next poll records how
                raise
