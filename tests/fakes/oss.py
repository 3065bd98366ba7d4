"""An in-memory Alibaba OSS server that real oss2 can talk to.

It speaks enough of the wire protocol that tests exercise the real client: V1
signatures (header and presigned forms) are verified, keys arrive URL-encoded in
path-style URLs, listings and errors are the XML oss2 parses, and every response
carries CRC64 and request-id headers. Faults can be injected::

    fake = FakeOSS().start()
    fake.create_bucket("renders")
    fake.fail_next(2, status=503)        # the next two requests get 503 ServiceUnavailable
    fake.delay_next(1, 2.0)              # the next request answers after 2 s
    ...
    fake.stop()

Only stdlib plus oss2's own CRC64 helper; it binds 127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.etree import ElementTree

from .oss_buckets import bucket_op
from .oss_post import cors_headers, is_post_object, post_object, preflight
from .oss_store import (
    HOST_ID,
    MIN_PART_SIZE,
    RESPONSE_PARAMS,
    SIGNING_PARAMS,
    SUBRESOURCES,
    Bucket,
    OSSError,
    Part,
    StoredObject,
    Upload,
    add_text,
    crc64,
    http_date,
    iso8601,
    md5_hex,
    parse_date,
    parse_range,
    parse_xml,
    to_xml,
    user_meta,
)
from .server import FakeError, FakeHandler, FakeServer, Fault

__all__ = ["FakeOSS", "FakeRequest"]


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake saw it (after URL-decoding)."""

    method: str
    bucket: str
    key: str
    params: dict[str, str]
    headers: dict[str, str]  # lower-cased names


class _Handler(FakeHandler):
    server_version = "AliyunOSS"
    sys_version = ""

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:  # CORS preflights of browser uploads
        self._dispatch()

    def new_request_id(self) -> str:
        return uuid.uuid4().hex[:24].upper()

    def send_reply(self, reply: tuple[int, dict[str, str], bytes], request_id: str) -> None:
        self._send(*reply, request_id)

    def _send(self, status: int, headers: dict[str, str], body: bytes, request_id: str) -> None:
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **headers}
        if body and "Content-Type" not in headers:
            headers["Content-Type"] = "application/xml"
        headers["x-oss-request-id"] = request_id
        fake = self.server.fake
        assert isinstance(fake, FakeOSS)
        headers.update(cors_headers(fake, {k.lower(): v for k, v in self.headers.items()}))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def send_failure(self, exc: FakeError, request_id: str) -> None:
        root = ElementTree.Element("Error")
        add_text(root, "Code", exc.code)
        add_text(root, "Message", exc.message)
        add_text(root, "RequestId", request_id)
        add_text(root, "HostId", HOST_ID)
        for tag, value in exc.extra.items():
            add_text(root, tag, value)
        body = to_xml(root)
        if self.command == "HEAD":
            # HEAD has no body; OSS puts the error XML in a header instead.
            headers = {"Content-Length": "0", "x-oss-err": base64.b64encode(body).decode()}
            self._send(exc.status, headers, b"", request_id)
        else:
            self._send(exc.status, {"Content-Type": "application/xml"}, body, request_id)


class FakeOSS(FakeServer):
    """The fake server. Use :meth:`start`/:meth:`stop` or a ``with`` block."""

    label = "fake OSS"
    handler = _Handler

    def __init__(
        self,
        access_key_id: str = "fake-access-key-id",
        access_key_secret: str = "fake-access-key-secret",  # noqa: S107 - a test credential
    ) -> None:
        super().__init__()
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.buckets: dict[str, Bucket] = {}
        self.requests: list[FakeRequest] = []
        #: The server's clock, for presigned-URL expiry; tests may replace it.
        self.clock: Callable[[], float] = time.time
        #: Origins the buckets' CORS rules allow ("*": any); none, as OSS without rules.
        self.cors_origins: list[str] = []

    # --- state and test hooks --------------------------------------------------------

    def create_bucket(self, name: str) -> None:
        with self._lock:
            self.buckets.setdefault(name, Bucket(name, time.time()))

    def reset(self) -> None:
        """Forget buckets, faults and the request log."""
        with self._lock:
            self.buckets.clear()
            self.requests.clear()
            self._faults.clear()
            self.internal_errors.clear()
            self.clock = time.time
            self.cors_origins = []

    def fail_next(
        self,
        n: int,
        status: int = 503,
        code: str | None = None,
        message: str = "injected fault",
        *,
        method: str | None = None,
        param: str | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``n`` matching requests with an error; the request is not
        carried out. A request matches when it has ``method`` and query ``param`` (None:
        any); the first ``after`` matching requests are let through."""
        default_codes = {403: "AccessDenied", 429: "TooManyRequests", 500: "InternalError"}
        code = code or default_codes.get(status, "ServiceUnavailable")
        self._add_fault(Fault(n, method, param, after, status=status, code=code, message=message))

    def delay_next(
        self,
        n: int,
        seconds: float,
        *,
        method: str | None = None,
        param: str | None = None,
        after: int = 0,
    ) -> None:
        """Hold the next ``n`` matching requests for ``seconds``, then handle them
        normally (so a client with a shorter timeout gives up while the server acts)."""
        self._add_fault(Fault(n, method, param, after, delay=seconds))

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Store an object directly, bypassing HTTP (for seeding tests)."""
        with self._lock:
            self.buckets[bucket].objects[key] = StoredObject(data, md5_hex(data), time.time())

    def get(self, bucket: str, key: str) -> StoredObject | None:
        with self._lock:
            return self.buckets[bucket].objects.get(key)

    def keys(self, bucket: str) -> list[str]:
        with self._lock:
            return sorted(self.buckets[bucket].objects)

    def count(
        self, method: str | None = None, param: str | None = None, *, bucket: str | None = None
    ) -> int:
        """How many logged requests match ``method``, carry query ``param`` and went to
        ``bucket`` (each None: any)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method)
                and (param is None or param in r.params)
                and (bucket is None or r.bucket == bucket)
            )

    # --- request handling ------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One request in, one response out; raises OSSError for error replies."""
        parts = urlsplit(raw_path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path.lstrip("/")
        raw_bucket, _, raw_key = path.partition("/")
        bucket_name, key = unquote(raw_bucket), unquote(raw_key)
        with self._lock:
            self.requests.append(FakeRequest(method, bucket_name, key, params, headers))

        self._inject_fault(method, params, lambda f: OSSError(f.status, f.code, f.message))

        if method == "OPTIONS":
            return preflight(self, headers)
        if is_post_object(method, key, headers):  # the form carries its own signature
            with self._lock:
                if (target := self.buckets.get(bucket_name)) is None:
                    raise OSSError(404, "NoSuchBucket", "The specified bucket does not exist.")
                return post_object(self, target, headers, body)
        self._authenticate(method, bucket_name, key, params, headers, body)
        params = {k: v for k, v in params.items() if k not in SIGNING_PARAMS}
        if not bucket_name:
            raise OSSError(400, "NotImplemented", "the fake does not list buckets")
        if method == "PUT" and not key and not params:
            self.create_bucket(bucket_name)
            return 200, {}, b""
        with self._lock:
            bucket = self.buckets.get(bucket_name)
            if bucket is None:
                raise OSSError(404, "NoSuchBucket", "The specified bucket does not exist.")
            if not key:
                return bucket_op(method, bucket, params, body)
            return self._object_op(method, bucket, key, params, headers, body)

    def _authenticate(
        self,
        method: str,
        bucket: str,
        key: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        if "OSSAccessKeyId" in params and "Signature" in params:
            access_key_id, signature = params["OSSAccessKeyId"], params["Signature"]
            expires = params.get("Expires", "")
            if not expires.isdigit():
                raise OSSError(403, "AccessDenied", "Expires must be a Unix time.")
            if int(expires) < self.clock():
                raise OSSError(403, "AccessDenied", "Request has expired.")
            date = expires
        else:
            authorization = headers.get("authorization", "")
            if not authorization:
                raise OSSError(403, "AccessDenied", "Anonymous access is forbidden.")
            if not authorization.startswith("OSS ") or ":" not in authorization:
                raise OSSError(
                    403, "AccessDenied", "Only V1 signatures ('OSS id:signature') are supported."
                )
            access_key_id, signature = authorization[4:].rsplit(":", 1)
            date = headers.get("x-oss-date") or headers.get("date", "")
        if access_key_id != self.access_key_id:
            raise OSSError(403, "InvalidAccessKeyId", "The OSS Access Key Id does not exist.")
        if "content-md5" in headers:
            digest = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324
            if digest != headers["content-md5"]:
                raise OSSError(400, "InvalidDigest", "The Content-MD5 you specified is invalid.")

        oss_headers = sorted((k, v) for k, v in headers.items() if k.startswith("x-oss-"))
        subresources = sorted((k, v) for k, v in params.items() if k in SUBRESOURCES)
        resource = f"/{bucket}/{key}" if bucket else "/"
        if subresources:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subresources)
        string_to_sign = "\n".join(
            [
                method,
                headers.get("content-md5", ""),
                headers.get("content-type", ""),
                date,
                "".join(f"{k}:{v}\n" for k, v in oss_headers) + resource,
            ]
        )
        expected = base64.b64encode(
            hmac.new(
                self.access_key_secret.encode(), string_to_sign.encode(), hashlib.sha1
            ).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise OSSError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                StringToSign=string_to_sign,
                OSSAccessKeyId=access_key_id,
            )

    def _object_op(
        self,
        method: str,
        bucket: Bucket,
        key: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        if len(key.encode()) > 1023:
            raise OSSError(400, "InvalidObjectName", "The object name is too long.")
        if "uploadId" in params:
            upload = bucket.uploads.get(params["uploadId"])
            if upload is None or upload.key != key:
                raise OSSError(404, "NoSuchUpload", "The specified upload does not exist.")
            if method == "PUT" and "partNumber" in params:
                return self._upload_part(upload, params, body)
            if method == "GET":
                return 200, {}, self._list_parts(bucket, upload, params)
            if method == "POST":
                return self._complete(bucket, upload, params, headers, body)
            if method == "DELETE":
                del bucket.uploads[params["uploadId"]]
                return 204, {}, b""
        elif method == "POST" and "uploads" in params:
            upload_id = uuid.uuid4().hex.upper()
            bucket.uploads[upload_id] = Upload(
                key,
                time.time(),
                headers.get("content-type", "application/octet-stream"),
                user_meta(headers),
            )
            root = ElementTree.Element("InitiateMultipartUploadResult")
            add_text(root, "Bucket", bucket.name)
            add_text(root, "Key", key)
            add_text(root, "UploadId", upload_id)
            return 200, {}, to_xml(root)
        elif method == "PUT" and not params:
            if headers.get("x-oss-forbid-overwrite") == "true" and key in bucket.objects:
                raise OSSError(409, "FileAlreadyExists", "The object you specified already exists.")
            obj = StoredObject(
                body,
                md5_hex(body),
                time.time(),
                headers.get("content-type", "application/octet-stream"),
                user_meta(headers),
            )
            bucket.objects[key] = obj
            return 200, {"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(obj.crc)}, b""
        elif method in ("GET", "HEAD") and set(params) <= {"objectMeta", *RESPONSE_PARAMS}:
            return self._get(bucket, key, params, headers, head=method == "HEAD")
        elif method == "DELETE" and not params:
            bucket.objects.pop(key, None)
            return 204, {}, b""
        raise OSSError(
            400, "NotImplemented", f"the fake does not implement {method} with {sorted(params)}"
        )

    def _get(
        self,
        bucket: Bucket,
        key: str,
        params: dict[str, str],
        headers: dict[str, str],
        *,
        head: bool,
    ) -> tuple[int, dict[str, str], bytes]:
        obj = bucket.objects.get(key)
        if obj is None:
            raise OSSError(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        etag = f'"{obj.etag}"'
        mtime = int(obj.mtime)
        if "if-match" in headers and headers["if-match"].strip('"') != obj.etag:
            raise OSSError(412, "PreconditionFailed", "At least one of the preconditions failed.")
        if "if-unmodified-since" in headers and mtime > parse_date(headers["if-unmodified-since"]):
            raise OSSError(412, "PreconditionFailed", "At least one of the preconditions failed.")
        not_modified = (
            "if-none-match" in headers and headers["if-none-match"].strip('"') == obj.etag
        ) or ("if-modified-since" in headers and mtime <= parse_date(headers["if-modified-since"]))
        reply = {
            "ETag": etag,
            "Last-Modified": http_date(obj.mtime),
            "Content-Type": obj.content_type,
            "x-oss-object-type": obj.object_type,
            "x-oss-storage-class": "Standard",
            "x-oss-hash-crc64ecma": str(obj.crc),
            "Accept-Ranges": "bytes",
            **{f"x-oss-meta-{k}": v for k, v in obj.meta.items()},
        }
        if not_modified:
            return 304, reply, b""
        if "objectMeta" in params:
            reply = {k: v for k, v in reply.items() if k in ("ETag", "Last-Modified")}
            reply["Content-Length"] = str(len(obj.data))
            return 200, reply, b""
        if "response-content-type" in params:
            reply["Content-Type"] = params["response-content-type"]
        if "response-content-disposition" in params:
            reply["Content-Disposition"] = params["response-content-disposition"]
        data, status = obj.data, 200
        byte_range = parse_range(headers.get("range", ""), len(data))
        if byte_range == "unsatisfiable":
            if headers.get("x-oss-range-behavior") == "standard":
                raise OSSError(416, "InvalidRange", "The requested range cannot be satisfied.")
        elif isinstance(byte_range, tuple):
            first, last = byte_range
            data, status = data[first : last + 1], 206
            reply["Content-Range"] = f"bytes {first}-{last}/{len(obj.data)}"
        reply["Content-Length"] = str(len(data))
        return status, reply, b"" if head else data

    def _upload_part(
        self, upload: Upload, params: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        number = int(params["partNumber"]) if params["partNumber"].isdigit() else 0
        if not 1 <= number <= 10000:
            raise OSSError(400, "InvalidArgument", "Part number must be between 1 and 10000.")
        part = Part(body, md5_hex(body), time.time())
        upload.parts[number] = part
        return 200, {"ETag": f'"{part.etag}"', "x-oss-hash-crc64ecma": str(crc64(body))}, b""

    def _list_parts(self, bucket: Bucket, upload: Upload, params: dict[str, str]) -> bytes:
        marker = int(params.get("part-number-marker") or 0)
        max_parts = int(params.get("max-parts") or 1000)
        numbers = sorted(n for n in upload.parts if n > marker)
        page, truncated = numbers[:max_parts], len(numbers) > max_parts
        root = ElementTree.Element("ListPartsResult")
        add_text(root, "Bucket", bucket.name)
        add_text(root, "Key", upload.key)
        add_text(root, "UploadId", params["uploadId"])
        add_text(root, "PartNumberMarker", str(marker))
        add_text(root, "NextPartNumberMarker", str(page[-1]) if page else "")
        add_text(root, "MaxParts", str(max_parts))
        add_text(root, "IsTruncated", "true" if truncated else "false")
        for number in page:
            part = upload.parts[number]
            node = ElementTree.SubElement(root, "Part")
            add_text(node, "PartNumber", str(number))
            add_text(node, "LastModified", iso8601(part.mtime))
            add_text(node, "ETag", f'"{part.etag}"')
            add_text(node, "HashCrc64ecma", str(crc64(part.data)))
            add_text(node, "Size", str(len(part.data)))
        return to_xml(root)

    def _complete(
        self,
        bucket: Bucket,
        upload: Upload,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        if headers.get("x-oss-complete-all") == "yes":
            chosen = [(n, upload.parts[n].etag) for n in sorted(upload.parts)]
        else:
            try:
                request = parse_xml(body)
            except ElementTree.ParseError:
                raise OSSError(
                    400, "MalformedXML", "The XML you provided was not well-formed."
                ) from None
            chosen = [
                (int(node.findtext("PartNumber") or 0), (node.findtext("ETag") or "").strip('"'))
                for node in request.findall("Part")
            ]
        numbers = [n for n, _ in chosen]
        if not chosen or numbers != sorted(set(numbers)):
            raise OSSError(400, "InvalidPartOrder", "Parts must be listed in ascending order.")
        for i, (number, etag) in enumerate(chosen):
            part = upload.parts.get(number)
            if part is None or part.etag.upper() != etag.upper():
                raise OSSError(400, "InvalidPart", f"Part {number} was not uploaded or differs.")
            if i < len(chosen) - 1 and len(part.data) < MIN_PART_SIZE:
                raise OSSError(400, "EntityTooSmall", "Every part but the last must be 100 KiB.")
        data = b"".join(upload.parts[n].data for n in numbers)
        digests = b"".join(bytes.fromhex(upload.parts[n].etag) for n in numbers)
        etag = f"{md5_hex(digests)}-{len(numbers)}"
        obj = StoredObject(data, etag, time.time(), upload.content_type, upload.meta, "Multipart")
        bucket.objects[upload.key] = obj
        del bucket.uploads[params["uploadId"]]
        root = ElementTree.Element("CompleteMultipartUploadResult")
        add_text(root, "Location", f"{self.endpoint}/{bucket.name}/{quote(upload.key, safe='')}")
        add_text(root, "Bucket", bucket.name)
        add_text(root, "Key", upload.key)
        add_text(root, "ETag", f'"{etag}"')
        return 200, {"ETag": f'"{etag}"', "x-oss-hash-crc64ecma": str(obj.crc)}, to_xml(root)
