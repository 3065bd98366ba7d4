"""Upload a folder or a file: ``manage.py upload LOCAL_DIR URL``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from renderhub import cli, storage


class Command(BaseCommand):
    help = (
        "Copy a local folder's contents into the storage folder URL, keeping the layout "
        "(LOCAL_DIR/a/b.png -> URL/a/b.png). A single file goes into URL if it ends with /, "
        "else to URL itself."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("local", metavar="LOCAL_DIR")
        parser.add_argument("url", metavar="URL")

    def handle(self, *args: Any, **options: Any) -> None:
        local, url = Path(options["local"]).expanduser(), options["url"]
        if not local.exists():
            raise CommandError(f"{local} does not exist.")
        try:
            backend, key = storage.resolve(url)
            if local.is_file():
                target = key + local.name if not key or key.endswith("/") else key
                files = [(local, target)]
            else:
                prefix = key.rstrip("/") + "/" if key else ""
                files = [(path, prefix + name) for path, name in cli.local_files(local)]
                if not files:
                    raise CommandError(f"{local} has no files to upload.")
            size = cli.upload_files(self.stdout, backend, files)
        except storage.StorageError as exc:
            raise CommandError(f"Upload failed: {exc}") from None
        except OSError as exc:
            raise CommandError(f"Upload failed: {exc}") from None
        self.stdout.write(
            f"Uploaded {cli.plural(len(files), 'file')} ({cli.format_size(size)}) to {url}"
        )
