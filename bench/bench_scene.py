"""Build one of the render benchmark's scenes in code (run inside Blender, it needs ``bpy``)::

    blender -b --factory-startup --python bench/bench_scene.py -- OUT.blend \
        --kind short|long|uneven [--frames 24]

- ``short``: frames of about 0.3 s on two cores (320x240, 12 samples);
- ``long``: frames of about 3 s (480x360, 96 samples);
- ``uneven``: 320x240 whose Cycles samples are keyframed from 2 on the first frame to 100 on
  the last (constant between keys), so the last frames cost about ten times the first
  (a frame also has fixed costs: scene sync, saving; the benchmark reports the spread).

Cycles on the CPU, denoising off (Debian's Blender has no OpenImageDenoise), PNG, frames
1..N, a ball moving across a floor so every frame differs. No external files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import bpy

KINDS = {  # width, height, samples (first, last)
    "short": (320, 240, (12, 12)),
    "long": (480, 360, (96, 96)),
    "uneven": (320, 240, (2, 100)),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(prog="bench_scene.py")
    parser.add_argument("out", type=Path)
    parser.add_argument("--kind", choices=sorted(KINDS), required=True)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--samples-scale", type=float, default=1.0)
    return parser.parse_args(args)


def material(name: str, color: tuple[float, float, float]) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (*color, 1.0)
    return mat


def build(ns: argparse.Namespace) -> None:
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_plane_add(size=12, location=(0, 0, 0))
    bpy.context.object.data.materials.append(material("Floor", (0.7, 0.7, 0.65)))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.8, segments=32, ring_count=16)
    ball = bpy.context.object
    ball.data.materials.append(material("Ball", (0.85, 0.15, 0.1)))
    for frame in range(1, ns.frames + 1):
        t = (frame - 1) / max(ns.frames - 1, 1)
        ball.location = (-3.0 + 6.0 * t, 0.0, 0.8)
        ball.keyframe_insert("location", frame=frame)
    bpy.ops.object.camera_add(location=(0.0, -9.0, 4.0), rotation=(1.15, 0.0, 0.0))
    scene.camera = bpy.context.object
    bpy.ops.object.light_add(type="SUN", location=(3.0, -3.0, 8.0), rotation=(0.6, 0.3, 0.4))
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.4, 0.5, 0.6, 1.0)

    width, height, (first, last) = KINDS[ns.kind]
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.cycles.use_preview_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = "//render/frame_####"
    scene.frame_start, scene.frame_end = 1, ns.frames
    for frame in range(1, ns.frames + 1):
        t = (frame - 1) / max(ns.frames - 1, 1)
        samples = first + (last - first) * t
        scene.cycles.samples = max(1, round(samples * ns.samples_scale))
        if first != last:
            scene.cycles.keyframe_insert("samples", frame=frame)
    if first != last and scene.animation_data and scene.animation_data.action:
        for curve in scene.animation_data.action.fcurves:
            for point in curve.keyframe_points:
                point.interpolation = "CONSTANT"
    scene.frame_set(1)
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(ns.out), compress=False)
    print(f"bench_scene: wrote {ns.out} ({ns.kind}, {ns.frames} frames)")


build(parse_args(sys.argv))
