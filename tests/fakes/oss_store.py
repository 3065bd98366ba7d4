"""The fake OSS's store (buckets, objects, multipart uploads) and the pieces of the wire
format its requests and replies share: XML, list tokens, dates, byte ranges, CRC64."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from xml.etree import ElementTree

from oss2.auth import ProviderAuth
from oss2.utils import Crc64

from .server import FakeError

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


class OSSError(FakeError):
    """An error reply: the Error XML with the HTTP status (``extra``: more tags)."""


SIGNING_PARAMS = {"OSSAccessKeyId", "Expires", "Signature", "security-token"}
RESPONSE_PARAMS = {
    "response-content-type",
    "response-content-disposition",
    "response-cache-control",
    "response-expires",
}


def parse_xml(body: bytes) -> ElementTree.Element:
    # Only our own test client talks to this loopback server, so stdlib XML is fine.
    return ElementTree.fromstring(body)  # noqa: S314


def add_text(parent: ElementTree.Element, tag: str, text: str) -> None:
    ElementTree.SubElement(parent, tag).text = text


def to_xml(root: ElementTree.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, "utf-8")


def user_meta(headers: dict[str, str]) -> dict[str, str]:
    return {k[len("x-oss-meta-") :]: v for k, v in headers.items() if k.startswith("x-oss-meta-")}


def encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError:
        raise OSSError(400, "InvalidArgument", "Invalid continuation token.") from None


def parse_date(value: str) -> int:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return 0


def parse_range(value: str, size: int) -> tuple[int, int] | str | None:
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


def iter_listing(
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
