"""Small previews of finished frames, for the frame grid and the outputs gallery."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from PIL import Image

from renderhub.agent.outputs import PILLOW_FORMATS

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = (240, 240)


def make(path: Path) -> bytes | None:
    """A JPEG thumbnail of the image at ``path``, or None if Pillow cannot read it (e.g. EXR).

    Renderers run members' scenes, so the file is hostile input: only the decoder its
    suffix names is tried, and whatever Pillow raises (decompression bombs included)
    means no thumbnail, never a failed chunk.
    """
    decoder = PILLOW_FORMATS.get(path.suffix.lower())
    if decoder is None:
        return None
    try:
        with Image.open(path, formats=[decoder]) as opened:
            image: Image.Image = opened
            image.thumbnail(THUMBNAIL_SIZE)
            if image.mode not in ("RGB", "L"):
                # Composite transparency over grey so alpha renders don't turn black.
                rgba = image.convert("RGBA")
                image = Image.new("RGB", rgba.size, (128, 128, 128))
                image.paste(rgba, mask=rgba.getchannel("A"))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=80)
            return out.getvalue()
    except Exception as exc:  # any decoder error: no thumbnail
        log.info("no thumbnail for %s: %s", path.name, exc)
        return None
