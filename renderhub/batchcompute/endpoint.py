"""Where BatchCompute answers: a region and its official host, or an explicit endpoint."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from renderhub.compute import ComputeError

REGION_RE = re.compile(r"^[a-z]{2,}-[a-z0-9-]+$")
OFFICIAL_HOST_RE = re.compile(r"^batchcompute(?:-vpc)?\.([a-z0-9-]+)\.aliyuncs\.com$")


@dataclass(frozen=True)
class Endpoint:
    region: str
    https: bool
    host: str
    port: int

    @property
    def url(self) -> str:
        default = 443 if self.https else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{'https' if self.https else 'http'}://{self.host}{port}"


def parse_endpoint(region: str, endpoint: str) -> Endpoint:
    """``BATCHCOMPUTE_ENDPOINT`` (a host or URL) overrides the region's official host."""
    text = endpoint.strip() or f"batchcompute.{region}.aliyuncs.com"
    parts = urlsplit(text if "://" in text else "https://" + text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ComputeError(f"BATCHCOMPUTE_ENDPOINT {endpoint!r} is not http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ComputeError(f"BATCHCOMPUTE_ENDPOINT {endpoint!r} must be only scheme, host, port")
    https = parts.scheme == "https"
    try:
        port = parts.port or (443 if https else 80)
    except ValueError:
        raise ComputeError(f"BATCHCOMPUTE_ENDPOINT {endpoint!r} has an invalid port") from None
    return Endpoint(region, https, parts.hostname, port)
