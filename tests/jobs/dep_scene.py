"""Build a test scene whose textures live where the test says (run inside Blender).

    blender -b --factory-startup --python tests/jobs/dep_scene.py -- OUT.blend \
        --plane image=//../assets/tex/checker.png@/abs/real/checker.png \
        --plane seq=//seq/frame_0001.png@/abs/real/seq/frame_0001.png \
        --plane lib=//../lib/lib.blend@Plane0Mat

Each ``--plane`` is a plane filling its part of the camera's view, shaded by emission
only (so a missing texture renders pure magenta): ``image=BLENDER_PATH@REAL_PATH`` writes a
checker PNG at REAL_PATH (``-``: none, the texture is missing) and stores BLENDER_PATH in
the scene as it is, relative or absolute on any platform; ``seq=`` writes three numbered
frames and reads them as an image sequence; ``udim=…/t.<UDIM>.png@…/t.<UDIM>.png``
writes tiles 1001 and 1002 of a UDIM set; ``lib=LIBRARY_PATH@MATERIAL`` links a material
from another .blend built by this script. Colours are never magenta. ``--library-path P``
then rewrites every library's path to P (as a hostile file would).
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

SIZE = 16


def write_png(path: Path, shade: float) -> None:
    image = bpy.data.images.new(f"tmp-{path.name}", width=SIZE, height=SIZE, alpha=False)
    light, dark = (0.2 + shade * 0.5, 0.8, 0.3, 1.0), (0.1, 0.3 + shade * 0.4, 0.2, 1.0)
    pixels: list[float] = []
    for y in range(SIZE):
        for x in range(SIZE):
            pixels.extend(light if (x // 4 + y // 4) % 2 == 0 else dark)
    image.pixels = pixels
    path.parent.mkdir(parents=True, exist_ok=True)
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)


def textured(name: str, blender_path: str, source: str) -> bpy.types.Material:
    image = bpy.data.images.new(name, width=SIZE, height=SIZE)
    image.source = source
    image.filepath = blender_path  # stored as written: no remapping
    mat = bpy.data.materials.new(name + "Mat")
    mat.use_nodes = True
    mat.use_fake_user = True  # a library keeps it though no object uses it
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.interpolation = "Closest"
    if source == "SEQUENCE":
        tex.image_user.frame_duration = 3
        tex.image_user.frame_start = 1
        tex.image_user.use_auto_refresh = True
    emit = nodes.new("ShaderNodeEmission")
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(tex.outputs["Color"], emit.inputs["Color"])
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def material_for(index: int, spec: str) -> bpy.types.Material:
    kind, _, rest = spec.partition("=")
    where, _, real = rest.rpartition("@")
    if kind == "lib":
        with bpy.data.libraries.load(where, link=True, relative=True) as (_src, dst):
            dst.materials = [real]
        return dst.materials[0]
    if kind == "udim":  # tiles 1001 and 1002 beside each other; the plane shows 1001
        first = real.replace("<UDIM>", "1001")
        write_png(Path(first), 0.2)
        write_png(Path(real.replace("<UDIM>", "1002")), 0.9)
        mat = textured(f"Plane{index}", first, "FILE")
        image = mat.node_tree.nodes["Image Texture"].image
        image.source = "TILED"
        image.filepath = where
        return mat
    if kind == "seq":
        stem = real[: -len("0001.png")]
        for n in (1, 2, 3):
            write_png(Path(f"{stem}{n:04d}.png"), n / 3)
        return textured(f"Plane{index}", where, "SEQUENCE")
    if real != "-":
        write_png(Path(real), index / 4)
    return textured(f"Plane{index}", where, "FILE")


def main(argv: list[str]) -> None:
    args = argv[argv.index("--") + 1 :]
    relib = args[args.index("--library-path") + 1] if "--library-path" in args else None
    args = [a for a in args if a != relib and a != "--library-path"]
    out, specs = Path(args[0]), [a for a in args[1:] if a != "--plane"]
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    scene = bpy.context.scene
    out.parent.mkdir(parents=True, exist_ok=True)
    # Saved first: a library's // path is read relative to where this file is.
    bpy.ops.wm.save_as_mainfile(filepath=str(out.resolve()), relative_remap=False)
    count = max(1, len(specs))
    for i, spec in enumerate(specs):
        bpy.ops.mesh.primitive_plane_add(size=2, location=((i - (count - 1) / 2) * 2, 0, 0))
        plane = bpy.context.object
        plane.name = f"Plane{i}"
        plane.data.materials.append(material_for(i, spec))
    bpy.ops.object.camera_add(location=(0, 0, 10))
    camera = bpy.context.object
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = 2 * count
    scene.camera = camera
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    for layer in scene.view_layers:
        layer.cycles.use_denoising = False
    scene.view_settings.view_transform = "Standard"
    scene.render.resolution_x, scene.render.resolution_y = 16 * count, 16
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.frame_start, scene.frame_end = 1, 3
    if relib is not None:  # a hostile file: its library points elsewhere than it was made
        for library in bpy.data.libraries:
            library.filepath = relib
    bpy.ops.wm.save_as_mainfile(filepath=str(out.resolve()), relative_remap=False, compress=False)
    sys.exit(0)


try:
    main(sys.argv)
except BaseException as exc:  # Blender exits 0 after a script's exception
    if isinstance(exc, SystemExit) and not exc.code:
        raise
    import traceback

    traceback.print_exc()
    sys.exit(1)
