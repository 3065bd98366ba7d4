"""Where a frame's files go in its job's output folder, decided by the manager alone.

A node writes ``<scene stem>_0042.<tail>`` through the grant for that name
(``jobs.node_claims``) and reports only the tail; the URLs recorded are made here, so a
node cannot point a frame at another file.
"""

from __future__ import annotations

import posixpath

from renderhub import storage
from renderhub.storage.grants import TAIL


def scene_stem(scene_url: str) -> str:
    return posixpath.splitext(posixpath.basename(storage.resolve(scene_url)[1]))[0]


def frame_name(scene_url: str, number: int) -> str:
    """A frame's file name up to its extension: ``<scene stem>_0042.``."""
    return f"{scene_stem(scene_url)}_{number:04d}."


def frame_urls(
    output_url: str, scene_url: str, number: int, output: object, thumbnail: object
) -> tuple[str, str]:
    """The URLs of a frame's file and thumbnail from the tails a node reported ("" for a
    tail that is not a plain name's end)."""
    name = frame_name(scene_url, number)
    file_url = thumb_url = ""
    if isinstance(output, str) and TAIL.match(output):
        file_url = storage.join(output_url, name + output)
    if isinstance(thumbnail, str) and TAIL.match(thumbnail):
        thumb_url = storage.join(output_url, "_thumbs", name + thumbnail)
    return file_url, thumb_url
