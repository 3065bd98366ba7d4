"""A studio's folder of scenes whose files live all over, built by real Blender once per
test session (tests/jobs/dep_scene.py) and copied where a test wants it.

Inside the tree (a project's mapped folder, laid out as artists keep it):

- ``shots/all.blend``: five planes, textured from ``shots/tex/a.png`` (a subfolder),
  ``//../assets/tex/checker.png`` (a sibling folder), ``P:\\projects\\win\\tex\\win.png``
  (absolute, from a Windows machine: the mapping's artists' path ``P:\\projects\\`` stands
  for the tree), a material linked from ``//../lib/lib.blend`` (whose own texture is
  ``lib/tex/lib.png``), the image sequence ``shots/seq/frame_000[1-3].png``, and the
  UDIM set ``/Volumes/projects/assets/wood/wood.<UDIM>.png`` (absolute, from a Mac;
  tiles 1001 and 1002);
- ``shots/gone.blend``: the subfolder texture and ``//tex/gone.png``, which is nowhere;
- ``shots/notes.txt`` and ``shots/all.blend1``: files no scene uses.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("dep_scene.py")
WIN_PREFIX = "P:\\projects\\"
MAC_PREFIX = "/Volumes/projects/"
_built: list[Path] = []


def blender_scene(out: Path, *planes: str, extra: tuple[str, ...] = ()) -> Path:
    argv = ["blender", "-b", "--factory-startup", "-noaudio", "--python", str(SCRIPT), "--"]
    argv += [str(out), *(a for p in planes for a in ("--plane", p)), *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"building {out.name} failed:\n{proc.stdout[-3000:]}{proc.stderr}")
    out.with_name(out.name + "1").unlink(missing_ok=True)  # Blender's backup of the 1st save
    return out


def build_tree(root: Path) -> Path:
    """The tree above, built in ``root`` (once per session: later calls copy it)."""
    if _built:
        shutil.copytree(_built[0], root, dirs_exist_ok=True)
        return root
    blender_scene(root / "lib" / "lib.blend", f"image=//tex/lib.png@{root}/lib/tex/lib.png")
    blender_scene(
        root / "shots" / "all.blend",
        f"image=//tex/a.png@{root}/shots/tex/a.png",
        f"image=//../assets/tex/checker.png@{root}/assets/tex/checker.png",
        f"image={WIN_PREFIX}win\\tex\\win.png@{root}/win/tex/win.png",
        "lib=//../lib/lib.blend@Plane0Mat",
        f"seq=//seq/frame_0001.png@{root}/shots/seq/frame_0001.png",
        f"udim={MAC_PREFIX}assets/wood/wood.<UDIM>.png@{root}/assets/wood/wood.<UDIM>.png",
    )
    blender_scene(
        root / "shots" / "gone.blend",
        f"image=//tex/a.png@{root}/shots/tex/a.png",
        "image=//tex/gone.png@-",
    )
    (root / "shots" / "notes.txt").write_text("not a dependency")
    (root / "shots" / "all.blend1").write_bytes(b"a backup")
    keep = root.parent / f".{root.name}-built"
    shutil.copytree(root, keep)
    _built.append(keep)
    return root


def magenta_pixels(png: Path) -> int:
    """Pixels Blender paints for a missing texture (pure magenta, give or take)."""
    from PIL import Image

    with Image.open(png) as img:
        data = img.convert("RGB").tobytes()
    pixels = zip(data[0::3], data[1::3], data[2::3], strict=True)
    return sum(1 for r, g, b in pixels if r > 200 and g < 60 and b > 200)
