"""Gathering the files a WDL imports into one zip every engine reads the same way.

Imports come from one place per submission, tried in this order:

* the dependencies zip, when one was given, in any folder layout: an import is looked
  for next to the file that imports it (where it was in the zip), then at the zip's root,
  then as the one file of the zip whose path ends with it;
* otherwise the files next to the main WDL (its local folder for the CLI, its storage
  folder for a WDL given by URL);
* ``https://`` imports, whatever the rest, are fetched by the manager from hosts listed in
  ``WORKFLOW_IMPORT_HOSTS`` (bounded in size and time, redirects checked too).

The result is a *canonical* zip: each imported file where a plain relative import from
its importer finds it (the main WDL sits at the zip's root), URL imports under
``_https/<host>/<path>``, where the miniwdl plugin looks for them (workers never fetch).
Relative imports that climb out of the main WDL's folder (``../lib/x.wdl``) are refused:
the zip's root is that folder, as it is for Cromwell.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from django.conf import settings

from renderhub import storage

from . import access
from .validation import (
    MAIN_NAME,
    MAX_WDL_BYTES,
    MAX_ZIP_BYTES,
    MAX_ZIP_FILES,
    WorkflowInvalid,
    url_path,
)

if TYPE_CHECKING:
    from projects.models import Project

MAX_DEPTH = 10
MAX_REDIRECTS = 5
CHUNK = 16 * 1024
# A fixed date for every member: the same imports make the same zip (and the same name).
ZIP_DATE = (2020, 1, 1, 0, 0, 0)


class NotFound(Exception):
    """A reader's answer for a file that is not there."""


Reader = Callable[[str], bytes]  # a relative path -> its bytes, or NotFound


@dataclass
class _File:
    path: str  # in the canonical zip
    origin: str  # where it came from: its path in the given zip, a URL, or "" (main)
    text: str


def _imports(text: str, path: str) -> list[str]:
    """The import URIs of a WDL document (a document that does not parse has none here:
    validation reports its syntax errors with line and column)."""
    from WDL import _parser

    try:
        doc = _parser.parse_document(text, uri=path, abspath=path)
    except Exception:
        return []
    return [imp.uri for imp in doc.imports]


def _decode(data: bytes, where: str) -> str:
    if len(data) > MAX_WDL_BYTES:
        raise WorkflowInvalid({"wdl": [f"{where} is larger than {MAX_WDL_BYTES} bytes."]})
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise WorkflowInvalid({"wdl": [f"{where} is not UTF-8 text."]}) from None


def read_zip(dependencies: bytes) -> dict[str, bytes]:
    """The zip's files by normalized path (folders and names climbing out are refused)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(dependencies))
    except zipfile.BadZipFile:
        raise WorkflowInvalid({"dependencies": ["The dependencies file is not a zip."]}) from None
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > MAX_ZIP_FILES or sum(m.file_size for m in members) > MAX_ZIP_BYTES:
        raise WorkflowInvalid({"dependencies": ["The dependencies zip is too large."]})
    files = {}
    for member in members:
        name = posixpath.normpath(member.filename.replace("\\", "/"))
        if name.startswith(("../", "/")) or name == "..":
            raise WorkflowInvalid(
                {"dependencies": [f"The zip holds a file named {member.filename!r}; refused."]}
            )
        files[name] = archive.read(member)
    return files


def _in_zip(files: dict[str, bytes], importer: str, uri: str) -> str | None:
    """Where ``uri`` imported by the zip file ``importer`` is in the zip, in any layout."""
    beside = posixpath.normpath(posixpath.join(posixpath.dirname(importer), uri))
    at_root = posixpath.normpath(uri)
    for candidate in (beside, at_root):
        if candidate in files:
            return candidate
    suffix = "/" + at_root.lstrip("./")
    matches = sorted(name for name in files if name.endswith(suffix))
    if len(matches) > 1:
        listed = ", ".join(matches[:5])
        raise WorkflowInvalid(
            {"dependencies": [f"{uri} matches several files of the dependencies zip: {listed}."]}
        )
    return matches[0] if matches else None


def gather(
    source: str,
    dependencies: bytes | None = None,
    beside: Reader | None = None,
    *,
    beside_name: str = "next to the WDL",
    fetch_urls: bool = True,
) -> bytes | None:
    """The canonical zip of ``source``'s imports, or None when it imports nothing.

    ``beside`` reads files next to the main WDL (used only when no zip was given).
    ``fetch_urls``: fetch ``https://`` imports now (the CLI leaves them to the manager).
    """
    zipped = read_zip(dependencies) if dependencies else None
    problems: list[str] = []
    found: dict[str, _File] = {}
    queue = [(_File(MAIN_NAME, "", source), 0)]
    total = 0
    while queue:
        importer, depth = queue.pop(0)
        for uri in _imports(importer.text, importer.path):
            try:
                item = _resolve(importer, uri, zipped, beside, beside_name, fetch_urls)
            except _Refused as exc:
                problems.append(str(exc))
                continue
            if item is None:
                continue
            if (known := found.get(item.path)) is not None:
                if known.text != item.text:
                    problems.append(
                        f"{uri} (imported by {_name(importer)}) and {known.origin or known.path} "
                        f"would both be {item.path}; rename one of them."
                    )
                continue
            if depth + 1 > MAX_DEPTH or len(found) >= MAX_ZIP_FILES:
                problems.append("The WDL's imports go too deep or are too many.")
                break
            total += len(item.text)
            if total > MAX_ZIP_BYTES:
                problems.append("The WDL's imports are too large.")
                break
            found[item.path] = item
            queue.append((item, depth + 1))
    if problems:
        raise WorkflowInvalid({"dependencies" if zipped is not None else "wdl": problems})
    if not found:
        # Nothing imported: a zip given anyway is kept as it was (a Cromwell may want it).
        return dependencies
    return _zip({f.path: f.text for f in found.values()})


class _Refused(Exception):
    pass


def _name(item: _File) -> str:
    return "the main WDL" if item.path == MAIN_NAME else (item.origin or item.path)


def _resolve(
    importer: _File,
    uri: str,
    zipped: dict[str, bytes] | None,
    beside: Reader | None,
    beside_name: str,
    fetch_urls: bool,
) -> _File | None:
    by = _name(importer)
    if importer.origin.startswith(("http://", "https://")) and "://" not in uri:
        uri = urljoin(importer.origin, uri)  # relative to the URL it came from
    if uri.startswith(("http://", "https://")):
        if not fetch_urls:
            return None
        return _File(url_path(uri), uri, _decode(fetch(uri), uri))
    if "://" in uri or uri.startswith("/"):
        raise _Refused(
            f"{uri} (imported by {by}): imports are relative paths or https:// URLs; "
            "put the file in the dependencies zip."
        )
    path = posixpath.normpath(posixpath.join(posixpath.dirname(importer.path), uri))
    if path.startswith("../") or path == "..":
        raise _Refused(
            f"{uri} (imported by {by}) is outside the main WDL's folder; imports must be in "
            "that folder or below it (submit the WDL from the folder that holds them all)."
        )
    if zipped is not None:
        where = _in_zip(zipped, importer.origin if importer.origin else MAIN_NAME, uri)
        if where is None:
            raise _Refused(f"{uri} (imported by {by}) is not in the dependencies zip.")
        return _File(path, where, _decode(zipped[where], where))
    if beside is None:
        raise _Refused(
            f"{uri} (imported by {by}): the WDL imports other files; give them in a "
            "dependencies zip."
        )
    try:
        data = beside(path)
    except NotFound:
        raise _Refused(f"{uri} (imported by {by}) is not {beside_name} ({path}).") from None
    return _File(path, path, _decode(data, path))


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            archive.writestr(zipfile.ZipInfo(path, ZIP_DATE), files[path].encode())
    return buffer.getvalue()


# --- where the imports are read from and stored ---


def local_beside(folder: Path) -> Reader:
    """Reads the files next to a local main WDL (the CLI), never outside its folder."""
    root = folder.resolve()

    def read(path: str) -> bytes:
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise NotFound(path)
        if target.stat().st_size > MAX_WDL_BYTES:
            raise WorkflowInvalid({"wdl": [f"{target} is too large."]})
        return target.read_bytes()

    return read


def storage_beside(project: Project, wdl_url: str) -> Reader:
    """Reads the files next to a WDL in storage (in the project's storage only)."""
    folder = wdl_url.rsplit("/", 1)[0] + "/"

    def read(path: str) -> bytes:
        try:
            url = storage.join(folder, path)
            backend, key = storage.resolve(url)
            if not access.in_project(project, url):
                raise NotFound(path)
            if (backend.stat(key).size or 0) > MAX_WDL_BYTES:
                raise WorkflowInvalid({"wdl": [f"{url} is too large."]})
            return backend.read(key)
        except storage.StorageError:  # NotFound included
            raise NotFound(path) from None

    return read


def store(project: Project, data: bytes, stem: str) -> str:
    """Put a run's dependencies zip in the project's storage; its URL (named by content)."""
    digest = hashlib.sha256(data).hexdigest()[:12]
    url = storage.join(project.output_prefix, "workflows", "dependencies", f"{stem}-{digest}.zip")
    backend, key = storage.resolve(url)
    backend.write(key, data, content_type="application/zip")
    return url


# --- URL imports ------------------------------------------------------------------------


def allowed(url: str) -> bool:
    """Whether ``url``'s host is in WORKFLOW_IMPORT_HOSTS (plain http only when listed so)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.netloc.lower().rpartition("@")[2]
    for entry in settings.WORKFLOW_IMPORT_HOSTS:
        entry = entry.strip().lower().rstrip("/")
        if entry.startswith("http://"):
            if parts.scheme == "http" and host == entry.removeprefix("http://"):
                return True
        elif parts.scheme == "https" and host in (entry, entry.removeprefix("https://")):
            return True
    return False


def fetch(url: str) -> bytes:
    """A WDL import from an allow-listed host, at most WORKFLOW_IMPORT_MAX_BYTES, within
    WORKFLOW_IMPORT_TIMEOUT seconds in all; each redirect's target is checked too."""
    limit = int(settings.WORKFLOW_IMPORT_MAX_BYTES)
    deadline = time.monotonic() + float(settings.WORKFLOW_IMPORT_TIMEOUT)
    current = url
    with requests.Session() as session:
        session.trust_env = False  # no proxies or .netrc credentials from the environment
        for _hop in range(MAX_REDIRECTS + 1):
            if not allowed(current):
                via = "" if current == url else f" (redirected from {url})"
                raise _Refused(
                    f"{current}{via}: its host is not allowed for WDL imports; an administrator "
                    "can list it in the WORKFLOW_IMPORT_HOSTS setting."
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Refused(f"{url}: fetching it took too long.")
            try:
                response = session.get(
                    current, stream=True, allow_redirects=False, timeout=(remaining, remaining)
                )
            except requests.RequestException as exc:
                raise _Refused(f"{url} could not be fetched: {type(exc).__name__}.") from None
            with response:
                if response.is_redirect and (location := response.headers.get("Location")):
                    current = urljoin(current, location)
                    continue
                if response.status_code != 200:
                    raise _Refused(f"{url} could not be fetched: HTTP {response.status_code}.")
                return _read_bounded(response, url, limit, deadline)
    raise _Refused(f"{url}: too many redirects.")


def _read_bounded(response: requests.Response, url: str, limit: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _Refused(f"{url} is larger than {limit} bytes (WORKFLOW_IMPORT_MAX_BYTES).")
    data = bytearray()
    try:
        # read1: one receive at a time, so a server trickling bytes meets the deadline.
        while chunk := response.raw.read1(CHUNK, decode_content=True):
            data += chunk
            if len(data) > limit:
                raise _Refused(f"{url} is larger than {limit} bytes (WORKFLOW_IMPORT_MAX_BYTES).")
            if time.monotonic() > deadline:
                raise _Refused(f"{url}: fetching it took too long (WORKFLOW_IMPORT_TIMEOUT).")
    except (requests.RequestException, OSError, urllib3.exceptions.HTTPError) as exc:
        raise _Refused(f"{url} could not be fetched: {type(exc).__name__}.") from None
    return bytes(data)
