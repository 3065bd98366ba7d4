"""Build RenderHub's demo scene: a small animated Cycles scene, made in code.

Run inside Blender (it needs ``bpy``)::

    blender -b --factory-startup --python jobs/blender/demo_scene.py -- OUT.blend \
        [--frames 48] [--width 320] [--height 240] [--samples 16]

It writes OUT.blend plus ``textures/checker.png`` beside it, referenced by the relative
path ``//textures/checker.png`` (not packed): rendering a copy of the scene only works
when the copy keeps that layout, which is what the agent's staging must preserve.
A ball bounces across a chequered floor while a coloured cube spins, so every frame
differs visibly. Cycles on the CPU, denoising off (Debian's Blender has no
OpenImageDenoise), PNG output, frames 1..N.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import bpy
from mathutils import Vector

TEXTURE_SIZE = 64


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the arguments after Blender's ``--`` separator."""
    args = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(prog="demo_scene.py", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the .blend file to write")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--samples", type=int, default=16)
    ns = parser.parse_args(args)
    if ns.frames < 1 or ns.width < 4 or ns.height < 4 or ns.samples < 1:
        parser.error("--frames and --samples must be >= 1, --width/--height >= 4")
    return ns


def clear_scene() -> bpy.types.Scene:
    """Remove the factory startup objects (cube, camera, light)."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    return bpy.context.scene


def material(name: str, color: tuple[float, float, float], roughness: float = 0.4):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    return mat


def checker_texture(path: Path) -> bpy.types.Image:
    """Paint a two-colour checker with bpy and save it as a PNG at ``path``."""
    size = TEXTURE_SIZE
    image = bpy.data.images.new("checker", width=size, height=size, alpha=False)
    light, dark = (0.9, 0.75, 0.3, 1.0), (0.15, 0.3, 0.6, 1.0)
    pixels: list[float] = []
    for y in range(size):
        for x in range(size):
            pixels.extend(light if (x // 8 + y // 8) % 2 == 0 else dark)
    image.pixels = pixels
    path.parent.mkdir(parents=True, exist_ok=True)
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    return image


def floor_material(image: bpy.types.Image) -> bpy.types.Material:
    mat = material("Floor", (0.8, 0.8, 0.8), roughness=0.8)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = (3.0, 3.0, 1.0)
    coords = nodes.new("ShaderNodeTexCoord")
    links.new(coords.outputs["UV"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    links.new(tex.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
    return mat


def add_floor(image: bpy.types.Image) -> None:
    bpy.ops.mesh.primitive_plane_add(size=12, location=(0, 0, 0))
    bpy.context.object.data.materials.append(floor_material(image))


def add_ball(frames: int) -> None:
    """A red ball crossing the floor left to right, bouncing; one key per frame."""
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.7, segments=24, ring_count=12)
    ball = bpy.context.object
    bpy.ops.object.shade_smooth()
    ball.data.materials.append(material("Ball", (0.9, 0.1, 0.08)))
    for frame in range(1, frames + 1):
        t = (frame - 1) / max(frames - 1, 1)
        ball.location = (-3.0 + 6.0 * t, 0.0, 0.7 + 2.0 * abs(math.sin(t * 3 * math.pi)))
        ball.keyframe_insert("location", frame=frame)


def add_cube(frames: int) -> None:
    """A green cube spinning a full turn over the animation (plus a bit per frame)."""
    bpy.ops.mesh.primitive_cube_add(size=1.2, location=(1.5, 2.0, 0.6))
    cube = bpy.context.object
    cube.data.materials.append(material("Cube", (0.1, 0.7, 0.25)))
    cube.rotation_euler = (0.0, 0.0, 0.0)
    cube.keyframe_insert("rotation_euler", frame=1)
    cube.rotation_euler = (0.0, 0.0, max(2 * math.pi, 0.6 * frames))
    cube.keyframe_insert("rotation_euler", frame=max(frames, 2))


def add_camera_and_light(scene: bpy.types.Scene) -> None:
    bpy.ops.object.camera_add(location=(0.0, -10.0, 4.5))
    camera = bpy.context.object
    direction = Vector((0.0, 0.0, 0.8)) - camera.location
    camera.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    bpy.ops.object.light_add(type="SUN", location=(4.0, -4.0, 8.0), rotation=(0.6, 0.3, 0.4))
    bpy.context.object.data.energy = 4.0
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.35, 0.45, 0.6, 1.0)


def configure_render(scene: bpy.types.Scene, ns: argparse.Namespace) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = ns.samples
    scene.cycles.use_adaptive_sampling = False
    # No OpenImageDenoise in Debian's build: denoising must stay off or the render fails.
    scene.cycles.use_denoising = False
    scene.cycles.use_preview_denoising = False
    scene.render.resolution_x = ns.width
    scene.render.resolution_y = ns.height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.filepath = "//render/frame_####"
    scene.frame_start = 1
    scene.frame_end = ns.frames
    scene.frame_set(1)


def save(out: Path, image: bpy.types.Image) -> None:
    """Point the texture at ``//textures/checker.png`` (relative to ``out``), then save."""
    out.parent.mkdir(parents=True, exist_ok=True)
    image.filepath = "//textures/checker.png"
    # relative_remap would rebase '//' paths from the unsaved file's location: keep ours.
    bpy.ops.wm.save_as_mainfile(filepath=str(out), compress=False, relative_remap=False)
    print(f"demo_scene: wrote {out} (texture {image.filepath})")


def main() -> None:
    ns = parse_args(sys.argv)
    out = ns.out.resolve()
    scene = clear_scene()
    image = checker_texture(out.parent / "textures" / "checker.png")
    add_floor(image)
    add_ball(ns.frames)
    add_cube(ns.frames)
    add_camera_and_light(scene)
    configure_render(scene, ns)
    save(out, image)


main()
