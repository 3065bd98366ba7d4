"""The built-in image for your own Linux machines, with Blender as its first software."""

from __future__ import annotations

from django.db import migrations

BLENDER_COMMAND = [
    "blender",
    "-b",
    "{scene}",
    "--disable-autoexec",  # a scene's embedded Python never runs on our nodes
    "-noaudio",
    "-E",
    "{engine}",
    "-o",
    "{output_pattern}",
    "-F",
    "{format}",
    "-t",
    "{cpus}",
    "-f",
    "{frame_list}",
]
BLENDER_PARAMETERS = [
    {
        "name": "engine",
        "type": "choice",
        "choices": ["CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH"],
        "default": "CYCLES",
        "help": "Render engine (EEVEE and Workbench need a GPU on the node).",
        "required": False,
    },
    {
        "name": "format",
        "type": "choice",
        "choices": ["PNG", "JPEG", "OPEN_EXR", "TIFF"],
        "default": "PNG",
        "help": "Output image format.",
        "required": False,
    },
]


def create(apps, schema_editor):
    ComputeImage = apps.get_model("images", "ComputeImage")
    Software = apps.get_model("images", "Software")
    image, _ = ComputeImage.objects.get_or_create(
        name="local-linux",
        defaults={
            "image_id": "local",
            "platform": "linux",
            "description": "Your own Linux machines running RenderHub render workers.",
        },
    )
    Software.objects.get_or_create(
        image=image,
        name="blender",
        defaults={
            "version": "3.4",
            "scene_suffixes": ".blend",
            "command_template": BLENDER_COMMAND,
            "parameters": BLENDER_PARAMETERS,
            "progress_parser": "blender",
        },
    )


def remove(apps, schema_editor):
    Software = apps.get_model("images", "Software")
    Software.objects.filter(image__name="local-linux", name="blender").delete()


class Migration(migrations.Migration):
    dependencies = [("images", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
