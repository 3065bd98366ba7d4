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
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.etree import ElementTree

from oss2.auth import ProviderAuth
from oss2.utils import Crc64

__all__ = ["FakeOSS", "FakeRequest"]

# The query parameters that take part in a V1 signature: the same list the OSS
# service documents (oss2 carries it verbatim).
SUBRESOURCES = ProviderAuth._subresource_key_set

MIN_PART_SIZE = 100 * 1024  # every part but the last, as on OSS
HOST_ID = "fake-oss.127.0.0.1"


def crc64(data: bytes) -> int:
    c = Crc64()
    c.update(data)
    return c.crc


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest().upper()  # noqa: S324 - OSS ETags are MD5


def iso8601(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


@dataclass
class StoredObject:
    data: bytes
    etag: str
    mtime: float
    content_type: str = "application/octet-stream"
    meta: dict[str, str] = field(default_factory=dict)
    object_type: str = "Normal"

    @property
    def crc(self) -> int:
        return crc64(self.data)


@dataclass
class Part:
    data: bytes
    etag: str
    mtime: float


@dataclass
class Upload:
    key: str
    initiated: float
    content_type: str
    meta: dict[str, str]
    parts: dict[int, Part] = field(default_factory=dict)


@dataclass
class Bucket:
    name: str
    created: float
    objects: dict[str, StoredObject] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake saw it (after URL-decoding)."""

    method: str
    bucket: str
    key: str
    params: dict[str, str]
    headers: dict[str, str]  # lower-cased names


@dataclass
class _Fault:
    remaining: int
    method: str | None
    param: str | None
    after: int  # matching requests to let through first
    status: int = 0
    code: str = ""
    message: str = ""
    delay: float = 0.0


class OSSError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.extra = status, code, message, extra


class FakeOSS:
    """The fake server. Use :meth:`start`/:meth:`stop` or a ``with`` block."""

    def __init__(
        self,
        access_key_id: str = "fake-access-key-id",
        access_key_secret: str = "fake-access-key-secret",  # noqa: S107 - a test credential
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.buckets: dict[str, Bucket] = {}
        self.requests: list[FakeRequest] = []
        #: Exceptions raised inside the fake itself; a test fixture should assert it is empty.
        self.internal_errors: list[BaseException] = []
        #: The server's clock, for presigned-URL expiry; tests may replace it.
        self.clock: Callable[[], float] = time.time
        self._faults: deque[_Fault] = deque()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeOSS:
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in delay_next
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOSS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake OSS server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

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
        fault = _Fault(n, method, param, after, status=status, code=code, message=message)
        with self._lock:
            self._faults.append(fault)

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
        with self._lock:
            self._faults.append(_Fault(n, method, param, after, delay=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

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

    def _take_fault(self, method: str, params: dict[str, str]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method not in (None, method) or fault.param not in (None, *params):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

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

        fault = self._take_fault(method, params)
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        if fault is not None and fault.status:
            raise OSSError(fault.status, fault.code, fault.message)

        self._authenticate(method, bucket_name, key, params, headers, body)
        params = {k: v for k, v in params.items() if k not in _SIGNING_PARAMS}
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
                return self._bucket_op(method, bucket, params, body)
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

    # --- bucket operations -------------------------------------------------------------

    def _bucket_op(
        self, method: str, bucket: Bucket, params: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if method == "GET" and "bucketInfo" in params:
            return 200, {}, self._bucket_info(bucket)
        if method == "GET" and "uploads" not in params:
            return 200, {}, self._list(bucket, params)
        if method == "POST" and "delete" in params:
            return 200, {}, self._batch_delete(bucket, params, body)
        raise OSSError(400, "NotImplemented", f"the fake does not implement {method} on a bucket")

    def _list(self, bucket: Bucket, params: dict[str, str]) -> bytes:
        v2 = params.get("list-type") == "2"
        prefix = params.get("prefix", "")
        delimiter = params.get("delimiter", "")
        try:
            max_keys = int(params.get("max-keys", "100"))
        except ValueError:
            raise OSSError(400, "InvalidArgument", "max-keys must be an integer.") from None
        if not 1 <= max_keys <= 1000:
            raise OSSError(400, "InvalidArgument", "max-keys must be between 1 and 1000.")
        url = params.get("encoding-type") == "url"

        def enc(text: str) -> str:
            return quote(text, safe="") if url else text

        if v2:
            token = params.get("continuation-token", "")
            after = _decode_token(token) if token else params.get("start-after", "")
        else:
            after = params.get("marker", "")
        items = list(_iter_listing(sorted(bucket.objects), prefix, delimiter, after))
        page, truncated = items[:max_keys], len(items) > max_keys

        root = ElementTree.Element("ListBucketResult")
        _text(root, "Name", bucket.name)
        _text(root, "Prefix", enc(prefix))
        if v2:
            if "start-after" in params:
                _text(root, "StartAfter", enc(params["start-after"]))
            if "continuation-token" in params:
                _text(root, "ContinuationToken", params["continuation-token"])
        else:
            _text(root, "Marker", enc(after))
        _text(root, "MaxKeys", str(max_keys))
        _text(root, "Delimiter", enc(delimiter))
        _text(root, "IsTruncated", "true" if truncated else "false")
        if truncated:
            last = page[-1][1]
            if v2:
                _text(root, "NextContinuationToken", enc(_encode_token(last)))
            else:
                _text(root, "NextMarker", enc(last))
        if v2:
            _text(root, "KeyCount", str(len(page)))
        if url:
            _text(root, "EncodingType", "url")
        for kind, name in page:
            if kind == "prefix":
                _text(ElementTree.SubElement(root, "CommonPrefixes"), "Prefix", enc(name))
                continue
            obj = bucket.objects[name]
            node = ElementTree.SubElement(root, "Contents")
            _text(node, "Key", enc(name))
            _text(node, "LastModified", iso8601(obj.mtime))
            _text(node, "ETag", f'"{obj.etag}"')
            _text(node, "Type", obj.object_type)
            _text(node, "Size", str(len(obj.data)))
            _text(node, "StorageClass", "Standard")
            if not v2 or params.get("fetch-owner") == "true":
                owner = ElementTree.SubElement(node, "Owner")
                _text(owner, "ID", "fake-owner")
                _text(owner, "DisplayName", "fake-owner")
        return _xml(root)

    def _batch_delete(self, bucket: Bucket, params: dict[str, str], body: bytes) -> bytes:
        try:
            request = _parse_xml(body)
        except ElementTree.ParseError:
            raise OSSError(
                400, "MalformedXML", "The XML you provided was not well-formed."
            ) from None
        quiet = (request.findtext("Quiet") or "false").lower() == "true"
        keys = [node.findtext("Key") or "" for node in request.findall("Object")]
        if not keys or len(keys) > 1000:
            raise OSSError(400, "MalformedXML", "Delete between 1 and 1000 objects at a time.")
        url = params.get("encoding-type") == "url"
        root = ElementTree.Element("DeleteResult")
        if url:
            _text(root, "EncodingType", "url")
        for key in keys:
            bucket.objects.pop(key, None)
            if not quiet:
                _text(
                    ElementTree.SubElement(root, "Deleted"),
                    "Key",
                    quote(key, safe="") if url else key,
                )
        return _xml(root)

    def _bucket_info(self, bucket: Bucket) -> bytes:
        root = ElementTree.Element("BucketInfo")
        node = ElementTree.SubElement(root, "Bucket")
        for tag, value in [
            ("Name", bucket.name),
            ("CreationDate", iso8601(bucket.created)),
            ("StorageClass", "Standard"),
            ("ExtranetEndpoint", "127.0.0.1"),
            ("IntranetEndpoint", "127.0.0.1"),
            ("Location", "oss-fake"),
        ]:
            _text(node, tag, value)
        owner = ElementTree.SubElement(node, "Owner")
        _text(owner, "DisplayName", "fake-owner")
        _text(owner, "ID", "fake-owner")
        _text(ElementTree.SubElement(node, "AccessControlList"), "Grant", "private")
        return _xml(root)

    # --- object operations -------------------------------------------------------------

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
                _user_meta(headers),
            )
            root = ElementTree.Element("InitiateMultipartUploadResult")
            _text(root, "Bucket", bucket.name)
            _text(root, "Key", key)
            _text(root, "UploadId", upload_id)
            return 200, {}, _xml(root)
        elif method == "PUT" and not params:
            if headers.get("x-oss-forbid-overwrite") == "true" and key in bucket.objects:
                raise OSSError(409, "FileAlreadyExists", "The object you specified already exists.")
            obj = StoredObject(
                body,
                md5_hex(body),
                time.time(),
                headers.get("content-type", "application/octet-stream"),
                _user_meta(headers),
            )
            bucket.objects[key] = obj
            return 200, {"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(obj.crc)}, b""
        elif method in ("GET", "HEAD") and set(params) <= {"objectMeta", *_RESPONSE_PARAMS}:
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
        if "if-unmodified-since" in headers and mtime > _parse_date(headers["if-unmodified-since"]):
            raise OSSError(412, "PreconditionFailed", "At least one of the preconditions failed.")
        not_modified = (
            "if-none-match" in headers and headers["if-none-match"].strip('"') == obj.etag
        ) or ("if-modified-since" in headers and mtime <= _parse_date(headers["if-modified-since"]))
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
        byte_range = _parse_range(headers.get("range", ""), len(data))
        if byte_range == "unsatisfiable":
            if headers.get("x-oss-range-behavior") == "standard":
                raise OSSError(416, "InvalidRange", "The requested range cannot be satisfied.")
        elif byte_range is not None:
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
        _text(root, "Bucket", bucket.name)
        _text(root, "Key", upload.key)
        _text(root, "UploadId", params["uploadId"])
        _text(root, "PartNumberMarker", str(marker))
        _text(root, "NextPartNumberMarker", str(page[-1]) if page else "")
        _text(root, "MaxParts", str(max_parts))
        _text(root, "IsTruncated", "true" if truncated else "false")
        for number in page:
            part = upload.parts[number]
            node = ElementTree.SubElement(root, "Part")
            _text(node, "PartNumber", str(number))
            _text(node, "LastModified", iso8601(part.mtime))
            _text(node, "ETag", f'"{part.etag}"')
            _text(node, "HashCrc64ecma", str(crc64(part.data)))
            _text(node, "Size", str(len(part.data)))
        return _xml(root)

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
                request = _parse_xml(body)
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
        _text(root, "Location", f"{self.endpoint}/{bucket.name}/{quote(upload.key, safe='')}")
        _text(root, "Bucket", bucket.name)
        _text(root, "Key", upload.key)
        _text(root, "ETag", f'"{etag}"')
        return 200, {"ETag": f'"{etag}"', "x-oss-hash-crc64ecma": str(obj.crc)}, _xml(root)


# --- helpers -------------------------------------------------------------------------

_SIGNING_PARAMS = {"OSSAccessKeyId", "Expires", "Signature", "security-token"}
_RESPONSE_PARAMS = {
    "response-content-type",
    "response-content-disposition",
    "response-cache-control",
    "response-expires",
}


def _parse_xml(body: bytes) -> ElementTree.Element:
    # Only our own test client talks to this loopback server, so stdlib XML is fine.
    return ElementTree.fromstring(body)  # noqa: S314


def _text(parent: ElementTree.Element, tag: str, text: str) -> None:
    ElementTree.SubElement(parent, tag).text = text


def _xml(root: ElementTree.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, "utf-8")


def _user_meta(headers: dict[str, str]) -> dict[str, str]:
    return {k[len("x-oss-meta-") :]: v for k, v in headers.items() if k.startswith("x-oss-meta-")}


def _encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError:
        raise OSSError(400, "InvalidArgument", "Invalid continuation token.") from None


def _parse_date(value: str) -> int:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return 0


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """``(first, last)``, ``"unsatisfiable"``, or None for no (or a malformed) range."""
    if not value.startswith("bytes=") or "," in value:
        return None
    first_text, _, last_text = value[len("bytes=") :].partition("-")
    try:
        if not first_text:  # a suffix: the last N bytes
            count = int(last_text)
            return (max(0, size - count), size - 1) if count and size else "unsatisfiable"
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if last_text and last < first:
        return None  # malformed: ignored, as HTTP says
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)


def _iter_listing(
    keys: list[str], prefix: str, delimiter: str, after: str
) -> Iterator[tuple[str, str]]:
    """``("key", k)`` and ``("prefix", p)`` items in order, strictly after ``after``.

    A common prefix that sorts at or before ``after`` was returned on an earlier page.
    """
    last_prefix = None
    for key in keys:
        if not key.startswith(prefix) or key <= after:
            continue
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                if common != last_prefix and common > after:
                    last_prefix = common
                    yield "prefix", common
                continue
        yield "key", key


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeOSS


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as oss2's pooled session expects
    server: _Server
    server_version = "AliyunOSS"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            # The client hung up mid-body: like OSS, store nothing.
            raise ConnectionResetError("incomplete request body")
        return data

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line:
                    raise ConnectionResetError("incomplete chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self._read_exactly(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self._read_exactly(length) if length else b""

    def _dispatch(self) -> None:
        fake = self.server.fake
        request_id = uuid.uuid4().hex[:24].upper()
        try:
            body = self._read_body()  # always drain it, or keep-alive breaks
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, reply, payload = fake.handle(self.command, self.path, headers, body)
            except OSSError as exc:
                self._send_error(exc, request_id)
                return
            except Exception as exc:
                fake.internal_errors.append(exc)
                self._send_error(OSSError(500, "InternalError", repr(exc)), request_id)
                return
            self._send(status, reply, payload, request_id)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client gave up (e.g. after delay_next)

    def _send(self, status: int, headers: dict[str, str], body: bytes, request_id: str) -> None:
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **headers}
        if body and "Content-Type" not in headers:
            headers["Content-Type"] = "application/xml"
        headers["x-oss-request-id"] = request_id
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def _send_error(self, exc: OSSError, request_id: str) -> None:
        root = ElementTree.Element("Error")
        _text(root, "Code", exc.code)
        _text(root, "Message", exc.message)
        _text(root, "RequestId", request_id)
        _text(root, "HostId", HOST_ID)
        for tag, value in exc.extra.items():
            _text(root, tag, value)
        body = _xml(root)
        if self.command == "HEAD":
            # HEAD has no body; OSS puts the error XML in a header instead.
            headers = {"Content-Length": "0", "x-oss-err": base64.b64encode(body).decode()}
            self._send(exc.status, headers, b"", request_id)
        else:
            self._send(exc.status, {"Content-Type": "application/xml"}, body, request_id)
