"""Download a folder or a file: ``manage.py download URL LOCAL_DIR``."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from renderhub import cli, storage


class Command(BaseCommand):
    help = (
        "Copy every file below the storage folder URL into LOCAL_DIR, keeping the layout "
        "(URL/a/b.png -> LOCAL_DIR/a/b.png). A URL naming a file lands in LOCAL_DIR/<name>."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", metavar="URL")
        parser.add_argument("local", metavar="LOCAL_DIR")

    def handle(self, *args: Any, **options: Any) -> None:
        url, local = options["url"], Path(options["local"]).expanduser()
        if local.exists() and not local.is_dir():
            raise CommandError(f"{local} is not a folder.")
        try:
            backend, key = storage.resolve(url)
            files = _plan(backend, key, local.resolve())
            if not files:
                raise CommandError(f"Nothing to download at {url}")
            size = cli.download_files(self.stdout, backend, files)
        except storage.StorageError as exc:
            raise CommandError(f"Download failed: {exc}") from None
        except OSError as exc:
            raise CommandError(f"Download failed: {exc}") from None
        self.stdout.write(
            f"Downloaded {cli.plural(len(files), 'file')} ({cli.format_size(size)}) to {local}"
        )


def _plan(backend: storage.Storage, key: str, root: Path) -> list[tuple[str, Path, int]]:
    """(key, local path, size) for each file; refuses any path that would leave ``root``."""
    if key and not key.endswith("/") and backend.exists(key):
        entries = [backend.stat(key)]
        prefix = posixpath.dirname(key) + "/" if "/" in key else ""
    else:
        prefix = key.rstrip("/") + "/" if key else ""
        entries = list(backend.walk(prefix))
    files = []
    for entry in entries:
        # Keys are normalised by storage, but an object store may hold names that are not.
        target = (root / entry.key.removeprefix(prefix)).resolve()
        if target == root or not target.is_relative_to(root):
            raise CommandError(f"Refusing to write {entry.key!r} outside {root}.")
        files.append((entry.key, target, entry.size or 0))
    return files
