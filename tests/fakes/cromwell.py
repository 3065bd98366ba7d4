"""A fake Cromwell server speaking the REST API v1 over real HTTP (stdlib only).

    with FakeCromwell() as cromwell:            # http://127.0.0.1:<port>
        ... client submits ...
        cromwell.start(wf_id)                   # Submitted -> Running
        cromwell.set_call(wf_id, "w.t", shard=0, attempt=1, status="Running")
        cromwell.finish(wf_id, "Succeeded", outputs={"w.out": "/x"})

What it does like Cromwell (API v1, as in release 80): multipart submissions with
``workflowSource``/``workflowUrl``, ``workflowInputs`` (+ ``_2``…), ``workflowOptions``,
``labels``, ``workflowDependencies``, ``workflowType(Version)``, ``workflowOnHold`` and
``requestedWorkflowId``; ids validated as UUIDs (400) and looked up (404); status,
metadata with ``includeKey``/``excludeKey`` prefix filters (``shardIndex``/``attempt`` always
kept) and ``expandSubWorkflows``; outputs and abort (``Aborted`` at once when not
started, ``Aborting`` when running, 404 when ended); error bodies ``{"status": "fail"|"error",
"message": …}``. State changes are driven by the test. It can require an Authorization
header, inject failures (``fail_next``) and records every request.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
TERMINAL = {"Succeeded", "Failed", "Aborted"}
ALWAYS_KEPT = {"shardIndex", "attempt"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Workflow:
    id: str
    source: str
    inputs: dict[str, Any]
    options: dict[str, Any]
    labels: dict[str, str]
    dependencies: bytes | None
    type_version: str
    status: str = "Submitted"
    submission: str = field(default_factory=now)
    start: str = ""
    end: str = ""
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    name: str = ""

    def metadata(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "workflowName": self.name,
            "status": self.status,
            "submission": self.submission,
            "inputs": self.inputs,
            "outputs": self.outputs if self.status in TERMINAL else {},
            "labels": {**self.labels, "cromwell-workflow-id": f"cromwell-{self.id}"},
            "calls": self.calls,
            "submittedFiles": {
                "workflow": self.source,
                "inputs": json.dumps(self.inputs),
                "options": json.dumps(self.options),
                "labels": json.dumps(self.labels),
            },
            "actualWorkflowLanguage": "WDL",
        }
        if self.start:
            data["start"] = self.start
        if self.end:
            data["end"] = self.end
        if self.failures:
            data["failures"] = self.failures
        return data


def _filter_keys(data: dict[str, Any], include: list[str], exclude: list[str]) -> dict[str, Any]:
    """Cromwell's includeKey/excludeKey: prefixes matched at the top and in each call entry."""

    def keep(key: str) -> bool:
        if key in ALWAYS_KEPT:
            return True
        if include and not any(key.startswith(p) for p in include):
            return False
        return not any(key.startswith(p) for p in exclude)

    # The calls section stays; its entries are filtered by the same prefixes.
    result = {k: v for k, v in data.items() if k == "calls" or keep(k)}
    if "calls" in result:
        result["calls"] = {
            name: [{k: v for k, v in entry.items() if keep(k)} for entry in entries]
            for name, entries in data["calls"].items()
        }
    return result


class FakeCromwell:
    def __init__(self, auth_header: str = "") -> None:
        self.auth_header = auth_header
        self.workflows: dict[str, Workflow] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self._failures: list[tuple[int, dict[str, Any]]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeCromwell:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- driven by the test ----------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """The next ``count`` requests answer ``status`` (like a restarting server)."""
        body = {"status": "error", "message": "Service Unavailable: Cromwell is restarting"}
        self._failures += [(status, body)] * count

    def only(self) -> Workflow:
        (workflow,) = self.workflows.values()
        return workflow

    def start(self, workflow_id: str) -> None:
        with self.lock:
            wf = self.workflows[workflow_id]
            wf.status, wf.start = "Running", now()

    def set_call(
        self,
        workflow_id: str,
        name: str,
        *,
        shard: int = -1,
        attempt: int = 1,
        status: str = "Running",
        **extra: Any,
    ) -> dict[str, Any]:
        """Add or update one (shard, attempt) entry of a call, as Cromwell's metadata shows it."""
        with self.lock:
            wf = self.workflows[workflow_id]
            entries = wf.calls.setdefault(name, [])
            entry = next(
                (e for e in entries if e["shardIndex"] == shard and e["attempt"] == attempt), None
            )
            if entry is None:
                root = f"/cromwell-executions/{wf.name}/{wf.id}/call-{name.split('.')[-1]}"
                if shard >= 0:
                    root += f"/shard-{shard}"
                if attempt > 1:
                    root += f"/attempt-{attempt}"
                entry = {
                    "shardIndex": shard,
                    "attempt": attempt,
                    "backend": "Local",
                    "start": now(),
                    "callRoot": root,
                    "stdout": f"{root}/execution/stdout",
                    "stderr": f"{root}/execution/stderr",
                    "callCaching": {"allowResultReuse": True, "hit": False, "result": "Cache Miss"},
                    "executionEvents": [],
                }
                entries.append(entry)
            entry["executionStatus"] = status
            entry.update(extra)
            if status in ("Done", "Failed", "Aborted", "RetryableFailure") and "end" not in entry:
                entry["end"] = now()
            return entry

    def finish(
        self,
        workflow_id: str,
        status: str = "Succeeded",
        *,
        outputs: dict[str, Any] | None = None,
        failures: list[dict[str, Any]] | None = None,
    ) -> None:
        with self.lock:
            wf = self.workflows[workflow_id]
            wf.status, wf.end = status, now()
            wf.start = wf.start or wf.end
            wf.outputs = outputs or {}
            wf.failures = failures or []

    # --- HTTP ------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fail(self, status: int, message: str) -> None:
                kind = "error" if status >= 500 else "fail"
                self._send(status, {"status": kind, "message": message})

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _dispatch(self, method: str) -> None:
                body = self._body()
                parts = urlsplit(self.path)
                query = parse_qsl(parts.query, keep_blank_values=True)
                with fake.lock:
                    fake.requests.append((method, self.path, dict(self.headers)))
                    failure = fake._failures.pop(0) if fake._failures else None
                if failure:
                    self._send(*failure)
                    return
                if fake.auth_header and self.headers.get("Authorization") != fake.auth_header:
                    self._fail(401, "Unauthorized")
                    return
                try:
                    fake_route(fake, self, method, parts.path, query, body)
                except _HTTPError as exc:
                    self._fail(exc.status, exc.message)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

        return Handler


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    if not content_type.startswith("multipart/form-data"):
        raise _HTTPError(400, "Request must be multipart/form-data")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = part.get_payload(decode=True) or b""
    return fields


def _json_object(fields: dict[str, bytes], name: str) -> dict[str, Any]:
    if name not in fields:
        return {}
    try:
        value = json.loads(fields[name] or b"{}")
    except ValueError:
        raise _HTTPError(400, f"Error(s): Input file is not a valid yaml or json. {name}") from None
    if not isinstance(value, dict):
        raise _HTTPError(400, f"Error(s): {name} must be a JSON object")
    return value


def _workflow(fake: FakeCromwell, workflow_id: str) -> Workflow:
    if not UUID_RE.match(workflow_id):
        raise _HTTPError(400, f"Invalid workflow ID: '{workflow_id}'.")
    if workflow_id not in fake.workflows:
        raise _HTTPError(404, f"Unrecognized workflow ID: {workflow_id}")
    return fake.workflows[workflow_id]


def _submit(fake: FakeCromwell, handler: Any, body: bytes) -> None:
    fields = _multipart(handler.headers.get("Content-Type", ""), body)
    if "workflowSource" not in fields and "workflowUrl" not in fields:
        raise _HTTPError(400, "Error(s): Workflow source or URL must be provided")
    inputs: dict[str, Any] = {}
    for name in sorted(k for k in fields if k.startswith("workflowInputs")):
        inputs.update(_json_object(fields, name))  # later files override earlier keys
    labels = _json_object(fields, "labels")
    for key, value in labels.items():
        if not key or len(key) > 255 or not isinstance(value, str) or len(value) > 255:
            raise _HTTPError(400, f"Invalid label: {key}")
    requested = fields.get("requestedWorkflowId", b"").decode().strip()
    workflow_id = requested or str(uuid.uuid4())
    if requested and not UUID_RE.match(requested):
        raise _HTTPError(400, f"Invalid requested workflow ID: {requested}")
    source = fields.get("workflowSource", b"").decode()
    match = re.search(r"^\s*workflow\s+(\w+)", source, re.M)
    with fake.lock:
        if workflow_id in fake.workflows:
            raise _HTTPError(400, f"Workflow ID '{workflow_id}' is already in use")
        fake.workflows[workflow_id] = Workflow(
            id=workflow_id,
            source=source,
            inputs=inputs,
            options=_json_object(fields, "workflowOptions"),
            labels=labels,
            dependencies=fields.get("workflowDependencies"),
            type_version=fields.get("workflowTypeVersion", b"").decode(),
            status="On Hold" if fields.get("workflowOnHold") == b"true" else "Submitted",
            name=match.group(1) if match else "",
        )
    handler._send(201, {"id": workflow_id, "status": fake.workflows[workflow_id].status})


def fake_route(
    fake: FakeCromwell,
    handler: Any,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    body: bytes,
) -> None:
    api = "/api/workflows/v1"
    if path == api and method == "POST":
        _submit(fake, handler, body)
        return
    match = re.fullmatch(rf"{api}/([^/]+)/(\w+)", path)
    if not match:
        raise _HTTPError(404, f"The requested resource could not be found: {path}")
    workflow_id, action = match.groups()
    with fake.lock:
        wf = _workflow(fake, workflow_id)
        if action == "status" and method == "GET":
            handler._send(200, {"id": wf.id, "status": wf.status})
        elif action == "metadata" and method == "GET":
            include = [v for k, v in query if k == "includeKey"]
            exclude = [v for k, v in query if k == "excludeKey"]
            handler._send(200, _filter_keys(wf.metadata(), include, exclude))
        elif action == "outputs" and method == "GET":
            handler._send(200, {"id": wf.id, "outputs": wf.outputs})
        elif action == "abort" and method == "POST":
            if wf.status in TERMINAL or wf.status == "Aborting":
                raise _HTTPError(
                    404,
                    f"Couldn't abort {wf.id} because no workflow with that ID is in progress",
                )
            wf.status = "Aborted" if wf.status in ("Submitted", "On Hold") else "Aborting"
            if wf.status == "Aborted":
                wf.end = now()
            handler._send(200, {"id": wf.id, "status": wf.status})
        else:
            raise _HTTPError(405, f"HTTP method not allowed: {method} {path}")
