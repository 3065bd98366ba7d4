"""PostObject and CORS for the fake OSS: a browser form POSTed straight to a bucket.

As OSS does: the form's ``policy`` (base64 JSON) must carry the signature in ``Signature``
(base64 HMAC-SHA1 of the policy with the AccessKey secret of ``OSSAccessKeyId``), must not
have expired, and every condition must hold: ``{"bucket": …}``, ``{"key": …}``,
``["eq"|"starts-with", "$key"|"$bucket"|"$content-type"…, value]`` and
``["content-length-range", min, max]``. The file is the form's last field. Browsers reach
the bucket cross-origin, so CORS preflights are answered for the origins the test allows
(``FakeOSS.cors_origins``; none by default, as a bucket without CORS rules).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any

from .oss_store import Bucket, OSSError, StoredObject, md5_hex

if TYPE_CHECKING:
    from .oss import FakeOSS

POST_OBJECT_MAX = 5 * 1024**3


def is_post_object(method: str, key: str, headers: dict[str, str]) -> bool:
    return (
        method == "POST"
        and not key
        and headers.get("content-type", "").startswith("multipart/form-data")
    )


def cors_headers(fake: FakeOSS, headers: dict[str, str]) -> dict[str, str]:
    """The CORS answer headers for a request from an allowed origin (else none)."""
    origin = headers.get("origin", "")
    if not origin or not ({"*", origin} & set(fake.cors_origins)):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "GET, PUT, POST, DELETE, HEAD",
        "Access-Control-Allow-Headers": headers.get("access-control-request-headers", "*"),
        "Access-Control-Expose-Headers": "ETag, x-oss-request-id",
        "Access-Control-Max-Age": "60",
        "Vary": "Origin",
    }


def preflight(fake: FakeOSS, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    allowed = cors_headers(fake, headers)
    if not allowed:
        raise OSSError(403, "AccessForbidden", "CORSResponse: This CORS request is not allowed.")
    return 200, allowed, b""


def _form(content_type: str, body: bytes) -> list[tuple[str, str | None, bytes]]:
    """``(name, filename, data)`` for each part of a multipart/form-data body."""
    boundary = ""
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise OSSError(400, "MalformedPOSTRequest", "The body of your POST request is malformed.")
    fields = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name, filename = "", None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            label, _, value = line.partition(":")
            if label.strip().lower() != "content-disposition":
                continue
            for item in value.split(";")[1:]:
                key, _, text = item.strip().partition("=")
                if key == "name":
                    name = text.strip('"')
                elif key == "filename":
                    filename = text.strip('"')
        fields.append((name, filename, data.removesuffix(b"\r\n")))
    return fields


def _refuse(condition: Any) -> OSSError:
    return OSSError(
        403,
        "AccessDenied",
        f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}",
    )


def _check_conditions(conditions: list[Any], values: dict[str, str], size: int) -> None:
    for condition in conditions:
        if isinstance(condition, dict):
            for name, expected in condition.items():
                if values.get(name.lower()) != expected:
                    raise _refuse(condition)
            continue
        if not isinstance(condition, list) or len(condition) != 3:
            raise OSSError(400, "InvalidPolicyDocument", "Invalid Policy: Invalid Condition.")
        op, first, second = condition
        if op == "content-length-range":
            if not (isinstance(first, int) and isinstance(second, int) and 0 <= first <= second):
                raise OSSError(400, "InvalidPolicyDocument", "Invalid content-length-range.")
            if size > second:
                raise OSSError(400, "EntityTooLarge", "Your proposed upload exceeds the limit.")
            if size < first:
                raise OSSError(400, "EntityTooSmall", "Your upload is smaller than allowed.")
            continue
        if op not in ("eq", "starts-with") or not str(first).startswith("$"):
            raise OSSError(400, "InvalidPolicyDocument", "Invalid Policy: Invalid Condition.")
        value = values.get(str(first)[1:].lower(), "")
        if (op == "eq" and value != second) or (
            op == "starts-with" and not value.startswith(str(second))
        ):
            raise _refuse(condition)


def _policy(fake: FakeOSS, fields: dict[str, str]) -> dict[str, Any]:
    """The verified policy; raises OSSError for a missing, forged or expired one."""
    missing = {"OSSAccessKeyId", "policy", "Signature"} - set(fields)
    if missing == {"OSSAccessKeyId", "policy", "Signature"}:
        raise OSSError(403, "AccessDenied", "You have no right to access this object.")
    if missing:
        raise OSSError(400, "InvalidArgument", f"{sorted(missing)[0]} is missing in the form.")
    if fields["OSSAccessKeyId"] != fake.access_key_id:
        raise OSSError(403, "InvalidAccessKeyId", "The OSS Access Key Id does not exist.")
    expected = base64.b64encode(
        hmac.new(fake.access_key_secret.encode(), fields["policy"].encode(), hashlib.sha1).digest()
    ).decode()
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise OSSError(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    try:
        policy = json.loads(base64.b64decode(fields["policy"], validate=True))
        deadline = calendar.timegm(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%S.000Z"))
        conditions = policy["conditions"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise OSSError(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
    if deadline < fake.clock():
        raise OSSError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    if not isinstance(conditions, list):
        raise OSSError(400, "InvalidPolicyDocument", "Invalid Policy: conditions is not a list.")
    return policy


def post_object(
    fake: FakeOSS, bucket: Bucket, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    parts = _form(headers.get("content-type", ""), body)
    if not parts or parts[-1][1] is None or parts[-1][0] != "file":
        raise OSSError(400, "InvalidArgument", "The file must be the last form field.")
    fields = {name: data.decode("utf-8") for name, filename, data in parts[:-1]}
    data = parts[-1][2]
    key = fields.get("key", "")
    if not key:
        raise OSSError(400, "InvalidArgument", "The key field is required.")
    if len(key.encode()) > 1023 or key.startswith("/"):
        raise OSSError(400, "InvalidObjectName", "The object name is not valid.")
    if len(data) > POST_OBJECT_MAX:
        raise OSSError(400, "EntityTooLarge", "A PostObject holds at most 5 GB.")
    policy = _policy(fake, fields)
    values = {name.lower(): value for name, value in fields.items()}
    values["bucket"] = bucket.name
    _check_conditions(policy["conditions"], values, len(data))
    obj = StoredObject(
        data, md5_hex(data), time.time(), fields.get("Content-Type", "application/octet-stream")
    )
    bucket.objects[key] = obj
    status = int(fields.get("success_action_status", "204"))
    status = status if status in (200, 201, 204) else 204
    reply = {"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(obj.crc)}
    return status, reply, b""
