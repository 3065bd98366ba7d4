"""The built-in image's second software: ffmpeg, which makes a render job's preview movie.

A job submitted with "make a preview movie" gets a job of this software after it
(jobs.movies): its "scene" is the finished frames, staged as ``frames/000001.<ext>`` and
on, and it encodes them into an H.264 MP4 in the render job's output folder. If the image
already has a software named ffmpeg (made from the catalogue), that one is left alone.
"""

from __future__ import annotations

from django.db import migrations

FFMPEG_MOVIE_COMMAND = [
    *["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning"],
    *["-framerate", "{fps}", "-start_number", "1", "-i", "{scene_dir}/frames/%06d.{image_ext}"],
    *["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
    # H.264 in 4:2:0 needs even sizes; faststart lets a browser play it as it loads.
    *["-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-threads", "{cpus}"],
    # One segment as long as the whole movie: the segment muxer numbers its file name like a
    # frame (<scene name>_0001.mp4, as the agent looks for it); faststart lets a browser
    # play the movie as it loads.
    *["-f", "segment", "-segment_time", "1000000", "-segment_start_number", "{start}"],
    *["-segment_format_options", "movflags=+faststart", "-reset_timestamps", "1"],
    "{output_dir}/{scene_name}_%04d.mp4",
]
FFMPEG_MOVIE_PARAMETERS = [
    {
        "name": "fps",
        "type": "int",
        "default": 24,
        "help": "Frames per second of the movie.",
        "required": False,
    },
    {
        "name": "image_ext",
        "type": "choice",
        "choices": ["png", "jpg", "jpeg", "tif", "tiff", "exr"],
        "default": "png",
        "help": "File type of the staged frames (set from the render job's frames).",
        "required": False,
    },
]


def create(apps, schema_editor):
    ComputeImage = apps.get_model("images", "ComputeImage")
    Software = apps.get_model("images", "Software")
    image = ComputeImage.objects.filter(name="local-linux").first()
    if image is None:
        return
    Software.objects.get_or_create(
        image=image,
        name="ffmpeg",
        defaults={
            "version": "5.1",
            "scene_suffixes": ".png,.jpg,.jpeg,.tif,.tiff,.exr",
            "command_template": FFMPEG_MOVIE_COMMAND,
            "parameters": FFMPEG_MOVIE_PARAMETERS,
            "progress_parser": "none",
        },
    )


def remove(apps, schema_editor):
    Software = apps.get_model("images", "Software")
    Software.objects.filter(
        image__name="local-linux", name="ffmpeg", command_template=FFMPEG_MOVIE_COMMAND
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("images", "0004_software_help")]
    operations = [migrations.RunPython(create, remove)]
