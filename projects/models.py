from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from images.choices import Platform
from renderhub import sandbox_paths, storage

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# \Z, not $: "$" also matches before a trailing newline.
WINDOWS_DRIVE_RE = re.compile(r"^[A-Za-z]:(\\[^\\/:*?\"<>|\x00-\x1f]+)*\\?\Z")
LINUX_PATH_RE = re.compile(r"^/[^\x00-\x1f]*\Z")
# A folder on an artist's machine: a drive, a UNC share, or an absolute POSIX path.
ARTIST_PATH_RE = re.compile(r"^([A-Za-z]:[\\/]|\\\\[^\\/]+[\\/]|/[^/])[^\x00-\x1f]*\Z")


def validate_node_path(path: str, platform: str, what: str) -> None:
    """A destination on a node: a drive letter on Windows, an absolute path on Linux."""
    if platform == Platform.WINDOWS:
        if not WINDOWS_DRIVE_RE.match(path) or ".." in path.split("\\"):
            raise ValidationError(
                f"{what} must be a drive letter or a path on one on Windows, like G: or D:\\out\\"
            )
        return
    if not LINUX_PATH_RE.match(path) or ".." in path.split("/"):
        raise ValidationError(f"{what} must be an absolute path on Linux, like /mnt/assets/")


def validate_storage_prefix(url: str, what: str) -> None:
    if not url.endswith("/"):
        raise ValidationError(f"{what} must end with '/' (it names a folder).")
    try:
        storage.resolve(url)
    except storage.StorageError as exc:
        raise ValidationError(f"{what}: {exc}") from None


class ProjectQuerySet(models.QuerySet["Project"]):
    def visible_to(self, user: User | AnonymousUser) -> ProjectQuerySet:
        """Superusers see every project; everyone else the projects they are members of."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(members=user)


class Project(models.Model):
    name = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    image = models.ForeignKey(
        "images.ComputeImage", on_delete=models.PROTECT, related_name="projects"
    )
    output_prefix = models.CharField(
        max_length=1024,
        help_text="Storage folder (file:// or oss:// URL ending in /) where job outputs go.",
    )
    node_output_dir = models.CharField(
        "node temp output dir",
        max_length=260,
        default="/tmp/renderhub/output/",  # noqa: S108 (a path on the render node, not here)
        help_text="Where the renderer writes on the node before outputs are published.",
    )
    auto_download = models.BooleanField(
        default=False, help_text="Copy finished outputs to the manager's disk."
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="renderhub_projects"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("manage_members", "Can add and remove project members")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        try:
            validate_storage_prefix(self.output_prefix, "The output prefix")
        except ValidationError as exc:
            errors["output_prefix"] = exc.messages[0]
        if self.image_id:
            try:
                validate_node_path(
                    self.node_output_dir, self.image.platform, "The node temp output dir"
                )
            except ValidationError as exc:
                errors["node_output_dir"] = exc.messages[0]
            else:  # a Linux path is this machine's too when the local worker renders
                if self.image.platform != Platform.WINDOWS and (
                    refusal := sandbox_paths.output_root_refusal(self.node_output_dir)
                ):
                    errors["node_output_dir"] = refusal
        if errors:
            raise ValidationError(errors)

    def is_member(self, user: User | AnonymousUser) -> bool:
        return Project.objects.visible_to(user).filter(pk=self.pk).exists()

    def mapping_for(self, url: str) -> StorageMapping | None:
        """The mapping whose source prefix holds ``url`` (the longest one wins)."""
        matches = [m for m in self.mappings.all() if storage.is_prefix_of(m.source, url)]
        return max(matches, key=lambda m: len(m.source), default=None)


class StorageMapping(models.Model):
    """A storage prefix made visible on render nodes at a path (or a drive on Windows)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="mappings")
    source = models.CharField(
        max_length=1024, help_text="Storage folder URL ending in /, e.g. oss://bucket/assets/."
    )
    destination = models.CharField(
        max_length=260, help_text="Node path: /mnt/assets/ on Linux, or a drive like G: on Windows."
    )
    writable = models.BooleanField(default=False)
    lockable = models.BooleanField(default=False, help_text="Support file locks on the mount.")
    artist_paths = models.TextField(
        "paths on artists' machines",
        blank=True,
        help_text=(
            "What this folder is on artists' machines, one per line, e.g. P:\\projects\\ "
            "or /Volumes/projects/: absolute paths under them in scenes are rewritten to the "
            "node's path when a scene is staged."
        ),
    )

    class Meta:
        ordering = ["source"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "source"], name="mapping_unique_source_per_project"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source} → {self.destination}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        try:
            validate_storage_prefix(self.source, "The source")
        except ValidationError as exc:
            errors["source"] = exc.messages[0]
        # The admin's inline validates mappings of a project being added: not saved yet, so
        # no project_id, but the (unsaved) project is set on the mapping.
        try:
            project = self.project
        except Project.DoesNotExist:
            project = None
        if project is not None and project.image_id:
            try:
                validate_node_path(self.destination, project.image.platform, "The destination")
            except ValidationError as exc:
                errors["destination"] = exc.messages[0]
        for path in self.artist_path_list():
            if not ARTIST_PATH_RE.match(path) or ".." in re.split(r"[\\/]", path):
                errors["artist_paths"] = (
                    f"{path!r} is not an absolute folder path: write a drive or share path "
                    "(P:\\projects\\, \\\\server\\share\\) or a path from / (/Volumes/projects/)."
                )
                break
        if errors:
            raise ValidationError(errors)

    def artist_path_list(self) -> list[str]:
        """The folder's paths on artists' machines, one per non-blank line."""
        return [line.strip() for line in self.artist_paths.splitlines() if line.strip()]
