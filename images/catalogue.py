"""Software templates: ready-made renderer descriptions a new Software starts from.

A template only prefills the form (admin "Add software", the /software/ page): what is
saved is an ordinary Software, checked by ``Software.clean()`` like any other. Every entry
here must pass that check (tests/images/test_catalogue.py).

Facts the commands rely on (checked with Blender 3.4 and ffmpeg 5.1 on Debian):

* Blender reads its arguments in order: the scene first, then settings, then ``-f``.
  ``-S <name>`` picks a scene inside the file; an unknown name only prints "Can't find
  scene" and renders the default one, so the scene name is a required parameter of its
  own template, never an optional one (an empty ``-S ""`` would hit the same trap).
  Blender has no command-line option for the camera.
* Cycles reads ``--cycles-device`` after ``--``; a device the node lacks stops Blender
  with "Found no Cycles device of the specified type" (a clear failure), an unknown word is
  silently ignored, hence a choice.
* ffmpeg numbers image-sequence outputs with ``%04d``; the chunk's ``output_name`` is
  always ``<scene name>_####`` (four digits), so ``{scene_name}_%04d`` names each frame
  as the agent expects. A ``%`` in the scene's name is ffmpeg pattern syntax there: such a
  chunk fails with ffmpeg's message.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from .choices import ProgressParser

BLENDER_ENGINE: dict[str, Any] = {
    "name": "engine",
    "type": "choice",
    "choices": ["CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH"],
    "default": "CYCLES",
    "help": "Render engine (EEVEE and Workbench need a GPU on the node).",
    "required": False,
}
BLENDER_FORMAT: dict[str, Any] = {
    "name": "format",
    "type": "choice",
    "choices": ["PNG", "JPEG", "OPEN_EXR", "OPEN_EXR_MULTILAYER", "TIFF"],
    "default": "PNG",
    "help": "Output image format.",
    "required": False,
}
BLENDER_DEVICE: dict[str, Any] = {
    "name": "device",
    "type": "choice",
    "choices": ["CPU", "CUDA", "OPTIX", "HIP", "ONEAPI", "METAL", "OPTIX+CPU", "CUDA+CPU"],
    "default": "CPU",
    "help": "Cycles render device; a GPU the node does not have fails the chunk.",
    "required": False,
}
BLENDER_SCENE: dict[str, Any] = {
    "name": "blender_scene",
    "type": "string",
    "help": "Name of the scene inside the .blend file (Blender's -S), e.g. Shot01.",
    "required": True,
}

# The built-in Blender's command (images/migrations/0002_blender.py), with the device.
_BLENDER_HEAD = ["blender", "-b", "{scene}", "--disable-autoexec", "-noaudio"]
_BLENDER_TAIL = [
    *["-E", "{engine}", "-o", "{output_pattern}", "-F", "{format}", "-t", "{cpus}"],
    *["-f", "{frame_list}", "--", "--cycles-device", "{device}"],
]


@dataclass(frozen=True)
class SoftwareTemplate:
    """One catalogue entry: the values a new Software is prefilled with."""

    key: str
    title: str
    description: str
    name: str
    version: str
    scene_suffixes: str
    command: list[str]
    parameters: list[dict[str, Any]] = field(default_factory=list)
    progress_parser: str = ProgressParser.NONE
    network: bool = False

    def initial(self, taken: Collection[str] = ()) -> dict[str, Any]:
        """Form initial data (fresh lists: a form may change them), named apart from the
        ``taken`` names (the built-in image already has a "blender")."""
        name, number = self.name, 1
        while name in taken:
            number += 1
            name = f"{self.name}-{number}"
        return {
            "name": name,
            "version": self.version,
            "scene_suffixes": self.scene_suffixes,
            "command_template": list(self.command),
            "parameters": [dict(p) for p in self.parameters],
            "progress_parser": self.progress_parser,
            "network": self.network,
        }


CATALOGUE: tuple[SoftwareTemplate, ...] = (
    SoftwareTemplate(
        key="blender",
        title="Blender",
        description="Renders .blend scenes frame by frame in the background, with the "
        "scene's own Python off. Pick the engine, output format and Cycles device at submit.",
        name="blender",
        version="3.4",
        scene_suffixes=".blend",
        command=[*_BLENDER_HEAD, *_BLENDER_TAIL],
        parameters=[BLENDER_ENGINE, BLENDER_FORMAT, BLENDER_DEVICE],
        progress_parser=ProgressParser.BLENDER,
    ),
    SoftwareTemplate(
        key="blender-scene",
        title="Blender, one named scene",
        description="Like Blender, for files holding several scenes: the scene to render "
        "(-S) is asked at every submit.",
        name="blender-scene",
        version="3.4",
        scene_suffixes=".blend",
        command=[*_BLENDER_HEAD, "-S", "{blender_scene}", *_BLENDER_TAIL],
        parameters=[BLENDER_SCENE, BLENDER_ENGINE, BLENDER_FORMAT, BLENDER_DEVICE],
        progress_parser=ProgressParser.BLENDER,
    ),
    SoftwareTemplate(
        key="ffmpeg-frames",
        title="ffmpeg: video to image sequence",
        description="Extracts a video's frames as images: job frame N is the video's Nth "
        "frame (from 1), so chunks split the video between nodes.",
        name="ffmpeg",
        version="5.1",
        scene_suffixes=".mp4,.mov,.mkv,.avi,.webm,.mxf",
        command=[
            *["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning"],
            # trim ends the stream at the chunk's last frame (no decoding past it);
            # select keeps video frames start..end (n counts from 0, frames from 1).
            *["-i", "{scene}", "-vf", "trim=end_frame={end},select=gte(n+1\\,{start})"],
            *["-fps_mode", "passthrough", "-start_number", "{start}", "-threads", "{cpus}"],
            "{output_dir}/{scene_name}_%04d.{image_format}",
        ],
        parameters=[
            {
                "name": "image_format",
                "type": "choice",
                "choices": ["png", "jpg", "tif", "exr"],
                "default": "png",
                "help": "Image file type of the extracted frames.",
                "required": False,
            }
        ],
    ),
    SoftwareTemplate(
        key="ffmpeg-movie",
        title="ffmpeg: preview movie of finished frames",
        description='What the built-in ffmpeg runs for "make a preview movie": the frames '
        "staged as frames/000001.<ext> and on become an H.264 MP4 (one job frame).",
        name="ffmpeg",
        version="5.1",
        scene_suffixes=".png,.jpg,.jpeg,.tif,.tiff,.exr",
        command=[
            *["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning"],
            *["-framerate", "{fps}", "-start_number", "1"],
            *["-i", "{scene_dir}/frames/%06d.{image_ext}"],
            *["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
            *["-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-threads", "{cpus}"],
            *["-f", "segment", "-segment_time", "1000000", "-segment_start_number", "{start}"],
            *["-segment_format_options", "movflags=+faststart", "-reset_timestamps", "1"],
            "{output_dir}/{scene_name}_%04d.mp4",
        ],
        parameters=[
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
        ],
    ),
    SoftwareTemplate(
        key="generic",
        title="Generic command",
        description="A starting point for any renderer: replace the program and its "
        "arguments. A frame is done when the program exits 0 and the frame's file is in "
        "{output_dir}, named like {output_name} with its # run replaced by the frame number.",
        name="renderer",
        version="",
        scene_suffixes=".scene",
        command=[
            *["my-renderer", "--scene", "{scene}", "--frames", "{frames}"],
            *["--output", "{output_pattern}", "--threads", "{cpus}"],
        ],
    ),
)

BY_KEY: dict[str, SoftwareTemplate] = {entry.key: entry for entry in CATALOGUE}


def get(key: str | None) -> SoftwareTemplate | None:
    """The template named ``key`` (a ?template= value), or None."""
    return BY_KEY.get(key or "")
