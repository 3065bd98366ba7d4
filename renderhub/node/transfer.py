"""Moving a chunk's files with the links and grants the manager gave (standard library).

A link or a grant the manager made for local-disk storage is a path on the manager's own
site; :func:`absolute` joins it to the manager's address the node was given. OSS links are
whole URLs already.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urljoin
from urllib.request import Request, urlopen

BLOCK = 1 << 20
TIMEOUT = 60  # seconds without a byte before a transfer is given up


class TransferError(OSError):
    """A download or upload failed; ``missing`` when the other side said the file is not
    there or the link is no longer good (403, 404): trying again will not help."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def absolute(manager_url: str, url: str) -> str:
    if url.startswith(("http://", "https://")):
        return url
    if not manager_url:
        raise TransferError(f"{url} is on the manager's site: give the node --manager-url")
    return urljoin(manager_url.rstrip("/") + "/", url.lstrip("/"))


def _request(url: str, **kwargs: Any) -> Request:
    """A request for an http(s) URL only: a link is never a local file."""
    if not url.startswith(("http://", "https://")):
        raise TransferError(f"not an http(s) link: {url[:80]!r}")
    return Request(url, **kwargs)  # noqa: S310 - the scheme is checked above


def _open(request: Request, what: str) -> Any:
    try:
        return urlopen(request, timeout=TIMEOUT)  # noqa: S310 - made by _request
    except HTTPError as exc:
        detail = exc.read(500).decode(errors="replace").strip()
        raise TransferError(
            f"{what}: HTTP {exc.code} {detail}".rstrip(), missing=exc.code in (403, 404)
        ) from None
    except (URLError, OSError) as exc:
        raise TransferError(f"{what}: {getattr(exc, 'reason', exc)}") from None


def download(url: str, dest: Path) -> int:
    """Fetch ``url`` into ``dest`` (written aside, then renamed); the bytes fetched."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    done = 0
    try:
        with (
            _open(_request(url), f"could not fetch {dest.name}") as response,
            open(part, "wb") as fh,
        ):
            while block := response.read(BLOCK):
                fh.write(block)
                done += len(block)
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)
    return done


def upload(manager_url: str, grant: dict[str, Any], tail: str, path: Path) -> None:
    """Write ``path`` as ``<the grant's prefix><tail>``."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if grant.get("kind") == "post":  # OSS PostObject: the fields, the key, then the file
            boundary = uuid.uuid4().hex
            fields = {**grant["fields"], "key": grant["key"] + tail}
            head, foot = _multipart(boundary, fields, tail)
            request = _request(
                grant["url"],
                data=_chain(head, fh, foot),
                method="POST",
                headers={
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(len(head) + size + len(foot)),
                },
            )
        else:  # the manager's upload endpoint (local-disk storage)
            url = absolute(manager_url, grant["url"]) + quote(tail)
            request = _request(
                url,
                data=_chain(b"", fh, b""),
                method="PUT",
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(size),
                },
            )
        with _open(request, f"could not upload {path.name}"):
            pass


def _multipart(boundary: str, fields: dict[str, str], filename: str) -> tuple[bytes, bytes]:
    lines = []
    for name, value in fields.items():
        lines.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n')
        lines.append(f"{value}\r\n")
    lines.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return "".join(lines).encode(), f"\r\n--{boundary}--\r\n".encode()


def _chain(head: bytes, fh: Any, foot: bytes) -> Iterator[bytes]:
    if head:
        yield head
    while block := fh.read(BLOCK):
        yield block
    if foot:
        yield foot


def link_files(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s bytes: a hard link, or a copy across file systems."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
