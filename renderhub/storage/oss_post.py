"""Signed POST forms (OSS PostObject) that let a browser upload one file straight to a bucket.

The policy names the bucket, the exact key and the exact size, and expires: whoever holds
the form can put those bytes under that name until then, and nothing else. It is signed
with the AccessKey secret (V1: base64 HMAC-SHA1 of the base64 policy), which never leaves
the server. OSS caps a PostObject at 5 GB; bigger files need the CLI (multipart upload).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

import oss2

from .base import StorageError, normalize_key
from .oss import OSSStorage

__all__ = ["POST_OBJECT_MAX_BYTES", "PostForm", "post_form"]

POST_OBJECT_MAX_BYTES = 5 * 1024**3  # OSS's own limit on a PostObject body


@dataclass(frozen=True)
class PostForm:
    url: str  # the bucket's URL: POST the fields, then the file (last), as multipart/form-data
    fields: dict[str, str]
    key: str  # the full object key


def sign_policy(secret: str, policy: dict[str, object]) -> tuple[str, str]:
    """``(base64 policy, signature)`` the way OSS checks them (V1)."""
    encoded = base64.b64encode(json.dumps(policy, separators=(",", ":")).encode()).decode()
    digest = hmac.new(secret.encode(), encoded.encode(), hashlib.sha1).digest()
    return encoded, base64.b64encode(digest).decode()


def post_form(
    store: OSSStorage, key: str, size: int, expires: int, now: float | None = None
) -> PostForm:
    """A form that uploads exactly ``size`` bytes to ``key`` within ``expires`` seconds."""
    if not 0 <= size <= POST_OBJECT_MAX_BYTES:
        raise StorageError(
            f"a browser upload to OSS holds at most {POST_OBJECT_MAX_BYTES} bytes (5 GB); "
            "upload bigger files with `manage.py upload`"
        )
    auth = store.bucket.auth
    if not isinstance(auth, oss2.Auth):
        raise StorageError("browser uploads to OSS need V1 signatures (auth_version 'v1')")
    full = store.prefix + normalize_key(key)
    deadline = (time.time() if now is None else now) + int(expires)
    policy: dict[str, object] = {
        "expiration": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(deadline)),
        "conditions": [
            {"bucket": store.bucket_name},
            ["eq", "$key", full],
            ["content-length-range", size, size],
        ],
    }
    fields = {"key": full, **signed_fields(store, policy)}
    return PostForm(store.bucket._make_url(store.bucket_name, ""), fields, full)


def signed_fields(store: OSSStorage, policy: dict[str, object]) -> dict[str, str]:
    """A PostObject form's fields for ``policy``, signed with the store's AccessKey (V1)."""
    auth = store.bucket.auth
    if not isinstance(auth, oss2.Auth):
        raise StorageError("uploads with a signed form need V1 signatures (auth_version 'v1')")
    credentials = auth.credentials_provider.get_credentials()
    encoded, signature = sign_policy(credentials.get_access_key_secret(), policy)
    fields = {
        "policy": encoded,
        "OSSAccessKeyId": credentials.get_access_key_id(),
        "Signature": signature,
        "success_action_status": "200",
    }
    if token := credentials.get_security_token():
        fields["x-oss-security-token"] = token
    return fields
