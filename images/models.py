from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from renderhub.agent.template import valid_custom_name, validate_template

from . import parameters
from .choices import Platform, ProgressParser

IMAGE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
SUFFIX_RE = re.compile(r"^\.[A-Za-z0-9_]{1,16}$")


class ComputeImage(models.Model):
    """A node image: what a compute node boots, and so which renderers it carries."""

    name = models.CharField(max_length=100, unique=True)
    image_id = models.CharField(
        "node image id",
        max_length=128,
        help_text="The cloud image id (e.g. m-… or img-…), or 'local' for your own machines.",
    )
    platform = models.CharField(max_length=10, choices=Platform.choices, default=Platform.LINUX)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not IMAGE_ID_RE.match(self.image_id or ""):
            raise ValidationError(
                {"image_id": "Use letters, digits and . _ : / - only (e.g. m-abc123)."}
            )


def _default_command() -> list[str]:
    return []


def _default_parameters() -> list[dict[str, Any]]:
    return []


class Software(models.Model):
    """A renderer on an image, described declaratively: nothing user-typed is ever executed.

    ``command_template`` is an argument list whose elements may contain ``{variables}``
    (see ``renderhub.agent.template``); the agent expands it into argv on the node.
    """

    image = models.ForeignKey(ComputeImage, on_delete=models.CASCADE, related_name="software")
    name = models.SlugField(max_length=50, help_text="Short name used on the command line.")
    version = models.CharField(max_length=50, blank=True)
    scene_suffixes = models.CharField(
        max_length=200,
        default=".blend",
        help_text="Scene file suffixes this software opens, comma separated (e.g. .blend).",
    )
    command_template = models.JSONField(
        default=_default_command,
        help_text="The program and its arguments, one per row, never run through a shell. "
        "An argument may hold {variables}: the built-in ones and this software's parameters.",
    )
    parameters = models.JSONField(
        default=_default_parameters,
        blank=True,
        help_text="Asked at every submit; each becomes a {variable} of the command, "
        "named like the parameter.",
    )
    progress_parser = models.CharField(
        max_length=20, choices=ProgressParser.choices, default=ProgressParser.BLENDER
    )
    network = models.BooleanField(
        "network access",
        default=False,
        help_text="Let the renderer reach the network from its sandbox (license servers, "
        "online assets). It then shares the render machine's network, services on "
        "127.0.0.1 included: turn it on only for renderers that need it. Off: no network.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "version"]
        verbose_name_plural = "software"
        constraints = [
            models.UniqueConstraint(fields=["image", "name"], name="software_unique_name_per_image")
        ]

    def __str__(self) -> str:
        # The image tells two "blender 3.4" apart: names are unique per image only.
        label = f"{self.name} {self.version}".strip()
        try:
            return f"{label} ({self.image.name})"
        except ComputeImage.DoesNotExist:  # not on an image yet (an unsaved form)
            return label

    def unique_error_message(self, model_class: Any, unique_check: Any) -> ValidationError:
        if tuple(unique_check) == ("image", "name"):
            return ValidationError(
                f"The image {self.image.name} already has a software named {self.name!r}: "
                "give this one another name, or edit that one.",
                code="unique_together",
            )
        return super().unique_error_message(model_class, unique_check)

    @property
    def suffixes(self) -> list[str]:
        return [s.strip().lower() for s in self.scene_suffixes.split(",") if s.strip()]

    def accepts_scene(self, path: str) -> bool:
        return path.lower().endswith(tuple(self.suffixes))

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        bad = [s for s in self.suffixes if not SUFFIX_RE.match(s)]
        if not self.suffixes or bad:
            errors["scene_suffixes"] = "Give one or more suffixes like .blend, comma separated" + (
                f" ({', '.join(bad)} is not one)." if bad else "."
            )
        try:
            self.parameters = parameters.validate_definitions(self.parameters)
        except ValidationError as exc:
            errors["parameters"] = exc.messages
        template = self.command_template
        if not (
            isinstance(template, list)
            and template
            and all(isinstance(arg, str) for arg in template)
        ):
            errors["command_template"] = "The command must be a non-empty JSON list of strings."
        elif problems := _command_problems(template, self.parameters, "parameters" in errors):
            errors["command_template"] = problems
        if errors:
            raise ValidationError(errors)


def _command_problems(
    template: list[str], definitions: Any, definitions_invalid: bool
) -> list[str]:
    """The command's problems. While the parameters are invalid, their names still count as
    variables: a bad parameter is reported once, on the parameters, not again here."""
    if not definitions_invalid:
        return validate_template(template, {d["name"] for d in definitions})
    names = (
        {d["name"] for d in definitions if isinstance(d, dict) and isinstance(d.get("name"), str)}
        if isinstance(definitions, list)
        else set()
    )
    usable = {n for n in names if valid_custom_name(n) is None}
    knock_on = {f"unknown variable {{{n}}}" for n in names}
    return [
        problem
        for problem in validate_template(template, usable)
        if problem.split(";")[0] not in knock_on
    ]
