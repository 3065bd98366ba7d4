"""Real .blend files for the scene-facts tests, saved by real Blender in one run.

``build_scene_files(folder)`` runs ``blender -b --python`` on this file; inside Blender
(``bpy`` importable) the ``__main__`` part below builds every scene:

- range.blend: "Scene", frames 1-250, 64x48 at 50 %, Cycles with denoising on;
- two_scenes.blend: "Scene" (1-3) and "Shot 02 ünï" (100-120, the one Blender renders
  by default), plus "Shot 03 'q'" on EEVEE with no camera; denoising off, 16x12;
- compressed.blend: two_scenes saved with Blender's compression (zstd in 3.x);
- default_cycles.blend: the factory scene switched to Cycles, nothing else touched
  (Blender writes no use_denoising: its default, on, applies);
- layer_off.blend: denoising on for the scene, off on its only view layer;
- nocam.blend: frames 1-3, no camera.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

NAMES = ("range", "two_scenes", "compressed", "default_cycles", "layer_off", "nocam")
_built: dict[str, Path] = {}


def build_scene_files(folder: Path) -> dict[str, Path]:
    """Every scene above in ``folder`` (built once per test session)."""
    if _built:
        return dict(_built)
    folder.mkdir(parents=True, exist_ok=True)
    argv = ["blender", "-b", "--factory-startup", "--python", __file__, "--", str(folder)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    paths = {name: folder / f"{name}.blend" for name in NAMES}
    missing = [name for name, path in paths.items() if not path.is_file()]
    assert not missing, f"Blender did not save {missing}:\n{proc.stdout}\n{proc.stderr}"
    _built.update(paths)
    return paths


def blender_installed() -> bool:
    return shutil.which("blender") is not None


def _build(folder: Path) -> None:  # pragma: no cover - runs inside Blender
    import bpy

    def fresh() -> bpy.types.Scene:
        bpy.ops.wm.read_factory_settings(use_empty=False)
        scene = bpy.context.scene
        scene.render.engine = "CYCLES"
        scene.cycles.samples = 1
        scene.render.resolution_x, scene.render.resolution_y = 16, 12
        return scene

    def save(name: str, compress: bool = False) -> None:
        bpy.ops.wm.save_as_mainfile(filepath=str(folder / f"{name}.blend"), compress=compress)

    scene = fresh()
    scene.frame_start, scene.frame_end = 1, 250
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    scene.render.resolution_percentage = 50
    scene.cycles.use_denoising = True
    save("range")

    scene = fresh()
    scene.cycles.use_denoising = False
    scene.frame_start, scene.frame_end = 1, 3
    shot = bpy.data.scenes.new("Shot 02 ünï")
    shot.camera = scene.camera
    shot.render.engine = "CYCLES"
    shot.cycles.use_denoising = False
    shot.frame_start, shot.frame_end = 100, 120
    shot.render.resolution_x, shot.render.resolution_y = 20, 10
    third = bpy.data.scenes.new("Shot 03 'q'")
    third.render.engine = "BLENDER_EEVEE"
    bpy.context.window.scene = shot
    save("two_scenes")
    save("compressed", compress=True)

    fresh()
    save("default_cycles")

    scene = fresh()
    scene.cycles.use_denoising = True
    scene.view_layers[0].cycles.use_denoising = False
    save("layer_off")

    scene = fresh()
    scene.cycles.use_denoising = False
    scene.frame_start, scene.frame_end = 1, 3
    bpy.data.objects.remove(bpy.data.objects["Camera"], do_unlink=True)
    save("nocam")


if __name__ == "__main__":  # inside Blender: blender -b --python scene_files.py -- FOLDER
    _build(Path(sys.argv[sys.argv.index("--") + 1]))
