from __future__ import annotations

from django.db import models


class Platform(models.TextChoices):
    LINUX = "linux", "Linux"
    WINDOWS = "windows", "Windows"


class ProgressParser(models.TextChoices):
    BLENDER = "blender", "Blender (Fra:/Saved: lines)"
    NONE = "none", "None (frames are done when the renderer exits 0)"


class ParameterType(models.TextChoices):
    STRING = "string", "Text"
    INTEGER = "int", "Whole number"
    FLOAT = "float", "Number"
    BOOLEAN = "bool", "Yes/no"
    CHOICE = "choice", "One of a list"
