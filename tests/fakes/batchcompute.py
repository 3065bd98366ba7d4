"""An in-memory Alibaba Cloud BatchCompute server that the real ``batchcompute`` SDK talks to.

It speaks the REST protocol the SDK 2.1.7 speaks (API 2015-11-11): the same paths and
methods, the ``acs`` HMAC-SHA1 signature verified over the raw request target with blank
query values kept, the JSON shapes the SDK parses (``Items`` + ``NextMarker`` lists, times
as ``%Y-%m-%dT%H:%M:%S.%fZ``), the status codes (201 create/stop/start, 200 get/modify,
204 delete, 404, 409 StateConflict) and error bodies ``{Code, Message, RequestId}`` with the
request id also in ``x-acs-request-id``. Creates honour ``IdempotentToken``.

Jobs, tasks, instances and clusters follow BatchCompute's state machines, driven by the
test::

    fake = FakeBatchCompute(oss=fake_oss).start()       # an OSS fake for packages and logs
    fake.start_instances(job_id)                        # Waiting -> Running
    fake.finish_instance(job_id, 0, exit_code=1)        # retried up to MaxRetryCount, then Failed
    fake.fail_job(job_id, "Quota exhausted")            # Failed, with Job.Message
    fake.tick()                                         # clusters converge, Deleting ones vanish
    fake.fail_next(2, status=503); fake.delay_next(1, 3.0)

With ``run_commands = True`` instances really run: the package (PackagePath) is fetched
from the OSS fake and unpacked into a work dir, Mounts and InputMapping are materialised
from the OSS fake under a per-instance node root (writable mounts are copied back while the
command runs), the CommandLine runs with the BATCH_COMPUTE_DAG_* environment (and
``node_root_env`` naming the node root), and afterwards OutputMapping, LogMapping, stdout
and stderr land in the OSS fake as BatchCompute names them. Failed instances are retried
up to MaxRetryCount. Only the standard library; binds 127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
import uuid
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .batchcompute_clusters import AVAILABLE, IMAGES, QUOTAS
from .batchcompute_runner import Runner
from .batchcompute_state import (
    MAX_SKEW,
    BCError,
    FakeRequest,
    Instance,
    Job,
    Task,
    cluster_json,
    job_json,
    now,
    route_of,
    task_json,
)
from .server import FakeError, FakeHandler, Fault

__all__ = ["BCError", "FakeBatchCompute", "FakeRequest", "Instance", "Job", "Task", "now"]


class _Handler(FakeHandler):
    disable_nagle_algorithm = True  # headers and body leave at once, no delayed-ACK stall

    def new_request_id(self) -> str:
        return str(uuid.uuid4()).upper()

    def send_failure(self, exc: FakeError, request_id: str) -> None:
        payload = {"Code": exc.code, "Message": exc.message, "RequestId": request_id}
        self.send_reply((exc.status, payload), request_id)

    def send_reply(self, reply: tuple[int, Any], request_id: str) -> None:
        status, payload = reply
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-acs-request-id", request_id)
        self.send_header("Connection", "close")
        self.end_headers()
        if data:
            self.wfile.write(data)
        self.close_connection = True


class FakeBatchCompute(Runner):
    """The fake server; its parts: clusters, jobs, the runner (``batchcompute_*``)."""

    handler = _Handler

    def background(self) -> tuple[Callable[[], None], ...]:
        return (self._schedule,)

    # --- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            for job in self.jobs.values():
                for _task, inst in job.instances():
                    self._kill(inst)
        super().stop()
        shutil.rmtree(self.work_root, ignore_errors=True)

    def reset(self) -> None:
        """Forget everything (running commands are killed)."""
        with self._lock:
            for job in self.jobs.values():
                for _task, inst in job.instances():
                    self._kill(inst)
            self.jobs.clear()
            self.clusters.clear()
            self.requests.clear()
            self._tokens.clear()
            self._faults.clear()
            self.internal_errors.clear()
            self.run_commands = False
            self.documented_readings()

    # --- faults and introspection --------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 503,
        code: str | None = None,
        message: str = "injected fault",
        *,
        method: str | None = None,
        route: str | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``n`` matching requests with an error (the request is not carried
        out). ``route`` is like ``"GET /jobs/{id}"``; the first ``after`` pass through."""
        codes = {429: "Throttling", 500: "InternalError", 503: "ServiceUnavailable"}
        code = code or codes.get(status, "InjectedFault")
        self._add_fault(Fault(n, method, route, after, status, code, message))

    def delay_next(
        self, n: int, seconds: float, *, method: str | None = None, route: str | None = None
    ) -> None:
        """Hold the next ``n`` matching requests for ``seconds``, then carry them out."""
        self._add_fault(Fault(n, method, route, 0, delay=seconds))

    def count(self, route: str | None = None, method: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (route is None or r.route == route) and (method is None or r.method == method)
            )

    def bodies(self, route: str) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests if r.route == route]

    # --- request handling --------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        parts = urlsplit(target)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items() if v}
        segments = [unquote(s) for s in parts.path.strip("/").split("/") if s]
        route = route_of(method, segments)
        if route == "GET /jobs/{id}" and "description" in params:
            route += "?description"
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body
        with self._lock:
            self.requests.append(FakeRequest(method, target, route, params, headers, body))
        self._inject_fault(method, [route], lambda f: BCError(f.status, f.code, f.message))
        self._authenticate(method, target, headers)
        if isinstance(body, bytes):
            raise BCError(400, "InvalidJsonFormat", "The request body has an invalid json format.")
        with self._lock:
            return self._dispatch(method, route, segments, params, body)

    def _authenticate(self, method: str, target: str, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        if not auth.startswith("acs ") or ":" not in auth:
            raise BCError(403, "Forbidden", "Missing or malformed Authorization header.")
        key_id, signature = auth[4:].rsplit(":", 1)
        if key_id != self.access_key_id or headers.get("x-acs-access-key-id") != key_id:
            raise BCError(403, "InvalidAccessKeyId.NotFound", "The AccessKey id does not exist.")
        date = headers.get("date", "")
        try:
            skew = abs(time.time() - parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError):
            raise BCError(400, "MissingDate", "Date is mandatory for this action.") from None
        if skew > MAX_SKEW:
            raise BCError(403, "RequestTimeTooSkewed", "The request time is too skewed.")
        if headers.get("x-acs-region-id") != self.region:
            raise BCError(400, "InvalidRegion", f"This endpoint serves {self.region}.")
        canonical = "".join(
            f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-acs-")
        )
        # The SDK leaves the MD5 slot empty (it sends "contentMd5", not Content-MD5).
        plain = "\n".join(
            [
                method,
                headers.get("accept", "").strip(),
                "",
                headers.get("content-type", "").strip(),
                date,
                canonical + target,
            ]
        )
        digest = hmac.new(self.access_key_secret.encode(), plain.encode(), hashlib.sha1).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), signature):
            raise BCError(400, "SignatureDoesNotMatch", "The request signature does not match.")

    def _dispatch(
        self, method: str, route: str, segments: list[str], params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        handlers = {
            "POST /jobs": lambda: self._create_job(params, body),
            "GET /jobs": lambda: self._list(
                sorted(self.jobs.values(), key=lambda j: j.created), params, job_json, "Id"
            ),
            "GET /jobs/{id}": lambda: (200, job_json(self._get_job(segments[1]))),
            "GET /jobs/{id}?description": lambda: (200, self._get_job(segments[1]).desc),
            "POST /jobs/{id}/stop": lambda: self._stop_job(segments[1]),
            "POST /jobs/{id}/start": lambda: self._start_job(segments[1]),
            "PUT /jobs/{id}": lambda: self._change_priority(segments[1], body),
            "DELETE /jobs/{id}": lambda: self._delete_job(segments[1]),
            "GET /jobs/{id}/tasks": lambda: self._list(
                list(self._get_job(segments[1]).tasks.values()), params, task_json, "TaskName"
            ),
            "GET /jobs/{id}/tasks/{task}": lambda: (
                200,
                task_json(self._job_task(segments[1], segments[3])[1]),
            ),
            "GET /jobs/{id}/tasks/{task}/instances": lambda: self._list_instances(segments, params),
            "GET /jobs/{id}/tasks/{task}/instances/{n}": lambda: self._get_instance(segments),
            "POST /clusters": lambda: self._create_cluster(params, body),
            "GET /clusters": lambda: self._list(
                sorted(self.clusters.values(), key=lambda c: c.created),
                params,
                cluster_json,
                "Id",
            ),
            "GET /clusters/{id}": lambda: (200, cluster_json(self._get_cluster(segments[1]))),
            "PUT /clusters/{id}": lambda: self._modify_cluster(segments[1], body),
            "DELETE /clusters/{id}": lambda: self._delete_cluster(segments[1]),
            "GET /clusters/{id}/groups/{group}/instances": lambda: self._list_vms(segments, params),
            "GET /quotas": lambda: (200, QUOTAS),
            "GET /available": lambda: (200, AVAILABLE),
            "GET /images": lambda: self._list(self._images(params), params, lambda i: i, "Id"),
        }
        handler = handlers.get(route)
        if handler is None:
            if route.startswith(("GET ", "POST ", "PUT ", "DELETE ")) and segments:
                raise BCError(400, "InvalidUrlPattern", "Specified url pattern is not valid.")
            raise BCError(400, "MethodNotAllowed", "The request http method is not supported.")
        return handler()

    def _images(self, params: dict[str, str]) -> list[dict[str, Any]]:
        if params.get("Type"):
            return [i for i in IMAGES if i["Type"] == params["Type"]]
        if self.images_need_type:
            return [i for i in IMAGES if i["Type"] != "System"]
        return list(IMAGES)

    def internal_error(self, exc: Exception) -> FakeError:
        return BCError(500, "InternalError", "The request processing has been failed (fake error).")
