"""Upload a folder, a file, or a scene with the files it needs: ``manage.py upload LOCAL URL``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import scene_upload
from projects.models import StorageMapping
from renderhub import cli, storage


class Command(BaseCommand):
    help = (
        "Copy a local folder's contents into the storage folder URL, keeping the layout "
        "(LOCAL_DIR/a/b.png -> URL/a/b.png). A single file goes into URL if it ends with /, "
        "else to URL itself. A .blend scene goes up with exactly the files it needs "
        "(textures, libraries, sequences…), laid out as below their common folder. A file "
        "an unfinished job renders from is never overwritten."
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
            files = self.scene_files(local, url, key) if local.suffix.lower() == ".blend" else []
            if not files and local.is_file():
                target = key + local.name if not key or key.endswith("/") else key
                files = [(local, target)]
            elif not files:
                prefix = key.rstrip("/") + "/" if key else ""
                files = [(path, prefix + name) for path, name in cli.local_files(local)]
                if not files:
                    raise CommandError(f"{local} has no files to upload.")
            scene_upload.refuse_overwriting_used_files(files, backend)
            size = cli.upload_files(self.stdout, backend, files)
        except scene_upload.UploadError as exc:
            raise CommandError(str(exc)) from None
        except storage.StorageError as exc:
            raise CommandError(f"Upload failed: {exc}") from None
        except OSError as exc:
            raise CommandError(f"Upload failed: {exc}") from None
        self.stdout.write(
            f"Uploaded {cli.plural(len(files), 'file')} ({cli.format_size(size)}) to {url}"
        )

    def scene_files(self, scene: Path, url: str, key: str) -> list[tuple[Path, str]]:
        """The scene and the files it needs with their keys; [] for a scene whose
        references cannot be read or that needs nothing (it goes up alone)."""
        if not scene.is_file():
            return []
        mapping = StorageMapping.objects.filter(project__isnull=False).order_by("pk")
        project = next((m.project for m in mapping if storage.is_prefix_of(m.source, url)), None)
        package = scene_upload.package_scenes(project, [scene])
        [report] = package.reports.values()
        if report.unreadable or len(package.files) == 1:
            return []
        if key and not key.endswith("/"):
            raise CommandError(
                f"{scene.name} needs other files: give a folder URL ending in / to upload "
                "them with it, keeping their layout."
            )
        for problem in package.problems:
            self.stderr.write(f"warning: not uploaded, not there: {problem}")
        prefix = key.rstrip("/") + "/" if key else ""
        return [(path, prefix + name) for path, name in package.files]
