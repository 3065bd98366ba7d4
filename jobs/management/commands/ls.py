"""List storage like ``bcs o ls``: ``manage.py ls URL [--recursive] [--limit N]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from renderhub import cli, storage
from renderhub.storage import Entry

PAGE_SIZE = 1000


class Command(BaseCommand):
    help = "List a storage folder (file:// or oss:// URL): folders first, then files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", metavar="URL")
        parser.add_argument(
            "-r", "--recursive", action="store_true", help="Every file below, not just one level."
        )
        parser.add_argument("--limit", type=int, metavar="N", help="Show at most N entries.")

    def handle(self, *args: Any, **options: Any) -> None:
        url, limit = options["url"], options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        try:
            backend, key = storage.resolve(url)
            if key and not key.endswith("/") and backend.exists(key):
                self.show(url, "", [backend.stat(key)], more=False)
                return
            prefix = key.rstrip("/") + "/" if key else ""
            entries, more = _collect(backend, prefix, options["recursive"], limit)
        except storage.StorageError as exc:
            raise CommandError(str(exc)) from None
        if not entries:
            self.stdout.write(f"Nothing under {url}")
            return
        self.show(url, prefix, entries, more)

    def show(self, url: str, prefix: str, entries: list[Entry], more: bool) -> None:
        folders = [e for e in entries if e.is_dir]
        files = [e for e in entries if not e.is_dir]
        name_of = (lambda e: e.key.removeprefix(prefix)) if prefix else (lambda e: e.name)
        rows: list[list[object]] = [["", "", name_of(e)] for e in folders]
        rows += [[cli.format_size(e.size), cli.format_time(e.modified), name_of(e)] for e in files]
        cli.print_table(self.stdout, ["size", "modified", "name"], rows, right=(0,))
        total = cli.format_size(sum(e.size or 0 for e in files))
        summary = (
            f"{cli.plural(len(folders), 'folder')}, {cli.plural(len(files), 'file')} ({total})"
        )
        if more:
            summary += "; more entries follow, raise --limit to see them"
        self.stdout.write(summary)


def _collect(
    backend: storage.Storage, prefix: str, recursive: bool, limit: int | None
) -> tuple[list[Entry], bool]:
    """Entries under ``prefix`` over all pages (up to ``limit``); and whether more remain."""
    entries: list[Entry] = []
    marker: str | None = None
    while True:
        page = backend.list(
            prefix, delimiter=None if recursive else "/", marker=marker, limit=PAGE_SIZE
        )
        entries += page.entries
        if limit is not None and len(entries) > limit:
            return entries[:limit], True
        if page.next_marker is None:
            return entries, False
        marker = page.next_marker
