"""A frame's outputs are files, not claims: find, take over and check them.

The renderer runs untrusted input, and whatever it prints (``Saved: '/etc/shadow'``) is
only a hint that a frame may be finished. A frame's outputs are the regular files in the
chunk's output folder named like ``output_name`` with that frame's number (any
extension). Each is taken out of the renderer's reach before it is looked at:

* the output folder is opened once, as a directory descriptor, so renaming or replacing
  the folder later changes nothing;
* a file is copied, from a descriptor opened with ``O_NOFOLLOW``, into a new file in the
  verified folder, which the renderer cannot write, and only that copy is checked: a
  regular file, one link (no hard link to a file elsewhere), not empty, and for the image
  formats we preview, a picture that decodes to its end.

Standard library only (the agent ships to nodes bare); Pillow is used when it is there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .progress import output_regex
from .template import output_file_name

COPY_BLOCK = 1 << 20
MAX_FILES_PER_FRAME = 16  # stereo views, passes, a movie: never hundreds
# Image formats decoded to be accepted (a truncated PNG is not a frame), each with the one
# decoder Pillow may use: the suffix decides, not the content (an EPS named .png would
# otherwise reach Ghostscript).
PILLOW_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
}
# What renderers write: images, movies, caches. Anything else (.html, .svg, .js) is not a
# frame and is never uploaded, so never served from a signed link.
OUTPUT_SUFFIXES = {
    *PILLOW_FORMATS,
    *(".exr", ".hdr", ".tga", ".dpx", ".cin", ".jp2", ".j2c", ".rgb", ".sgi", ".bw"),
    *(".mp4", ".mkv", ".mov", ".avi", ".webm", ".ogv", ".mpg", ".mpeg", ".flv", ".dv"),
    *(".abc", ".usd", ".usdc", ".usda", ".vdb", ".ply", ".obj", ".fbx", ".glb", ".bphys"),
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXR_MAGIC = b"\x76\x2f\x31\x01"


@dataclass
class Collected:
    """What was found for one frame: accepted files, and why others were refused."""

    paths: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class OutputFolder:
    """The chunk's output folder, read through a descriptor opened once at the start."""

    def __init__(self, output_dir: str, output_name: str, verified_dir: str) -> None:
        self.output_dir = output_dir
        self.output_name = output_name
        self.pattern = output_regex(output_name)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        self.fd = os.open(output_dir, flags)
        Path(verified_dir).mkdir(parents=True, exist_ok=True)
        self.verified_dir = verified_dir
        self.verified_fd = os.open(verified_dir, flags)

    def close(self) -> None:
        for fd in (self.fd, self.verified_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def names_for(self, frame: int) -> list[str]:
        """Entries of the output folder named for ``frame`` (``shot_0007`` or ``shot_0007.*``)."""
        stem = output_file_name(self.output_name, frame)
        return sorted(
            name
            for name in os.listdir(self.fd)  # noqa: PTH208 (a descriptor, not a path)
            if (name == stem or name.startswith(stem + ".")) and self.pattern.match(name)
        )

    def collect(self, frame: int) -> Collected:
        """Take over and check every file of ``frame``; the frame is done if ``paths``."""
        result = Collected()
        stem = output_file_name(self.output_name, frame)
        names = self.names_for(frame)
        for name in names[MAX_FILES_PER_FRAME:]:
            result.problems.append(f"{name}: more than {MAX_FILES_PER_FRAME} files for a frame")
        for name in names[:MAX_FILES_PER_FRAME]:
            rest = name[len(stem) :].lower()  # "" or ".png", ".L.exr", ...
            suffix = "." + rest.rsplit(".", 1)[-1] if rest else ""
            if suffix and suffix not in OUTPUT_SUFFIXES:
                result.problems.append(f"{name}: {suffix} is not an image, movie or cache format")
                continue
            try:
                path = self.take(name)
            except OutputRefused as exc:
                result.problems.append(f"{name}: {exc}")
                continue
            if problem := check_content(path):
                path.unlink(missing_ok=True)
                result.problems.append(f"{name}: {problem}")
            else:
                result.paths.append(path)
        return result

    def take(self, name: str) -> Path:
        """Copy ``name`` into a new file of ours in the verified folder, then remove it.

        Always a copy, never a rename: a renamed file is still the renderer's inode, which
        it may hold open and rewrite after the check. The copy is read through a
        descriptor opened with ``O_NOFOLLOW`` and checked with ``fstat``, so a symbolic
        link, a FIFO or a hard link to another file is refused without being followed.
        """
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK  # NONBLOCK: a FIFO never hangs us
        try:
            src = os.open(name, flags, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputRefused("a symbolic link, not a file") from None
            raise OutputRefused(f"cannot open it: {exc.strerror}") from None
        try:
            if problem := _not_plain(os.fstat(src)):
                raise OutputRefused(problem)
            self._copy(src, name)
        finally:
            os.close(src)
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=self.fd)
        return Path(self.verified_dir) / name

    def _copy(self, src: int, name: str) -> None:
        tmp = f".{name}.part"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=self.verified_fd)
        create = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            dst = os.open(tmp, create, 0o644, dir_fd=self.verified_fd)
            try:
                while block := os.read(src, COPY_BLOCK):
                    os.write(dst, block)
            finally:
                os.close(dst)
            os.rename(tmp, name, src_dir_fd=self.verified_fd, dst_dir_fd=self.verified_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.verified_fd)
            raise OutputRefused(f"cannot take it over: {exc.strerror}") from None


class OutputRefused(Exception):
    pass


def _not_plain(info: os.stat_result) -> str | None:
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_nlink != 1:
        return "a hard link to another file"
    if info.st_size == 0:
        return "the file is empty"
    return None


# --- content ------------------------------------------------------------------------------


def check_content(path: Path) -> str | None:
    """Why the file at ``path`` is not a usable frame, or None when it is."""
    suffix = path.suffix.lower()
    if suffix == ".exr":
        with open(path, "rb") as fh:
            return None if fh.read(4) == EXR_MAGIC else "not an OpenEXR file"
    if suffix not in PILLOW_FORMATS:
        return None  # a format we do not preview (video, caches): present and non-empty
    try:
        from PIL import Image  # the render worker has Pillow; a bare node may not
    except ImportError:
        return _check_png(path) if suffix == ".png" else None
    try:
        with Image.open(path, formats=[PILLOW_FORMATS[suffix]]) as image:
            image.load()  # decodes every pixel: a truncated file fails here
    except Exception as exc:  # Pillow raises many types for broken files
        return f"the image does not decode ({exc})"
    return None


def _check_png(path: Path) -> str | None:
    """A PNG whose chunks all check out and whose pixel data inflates completely."""
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        return "not a PNG file"
    pos, idat, seen_end = len(PNG_SIGNATURE), zlib.decompressobj(), False
    while pos + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            return "the PNG is truncated"
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            return f"the PNG's {kind.decode(errors='replace')} chunk is corrupt"
        if kind == b"IDAT":
            try:
                idat.decompress(body)
            except zlib.error:
                return "the PNG's pixel data is corrupt"
        pos += 12 + length
        if kind == b"IEND":
            seen_end = True
            break
    if not seen_end or not idat.eof:
        return "the PNG is truncated"
    return None
