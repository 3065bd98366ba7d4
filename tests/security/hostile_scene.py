"""Build a scene that attacks the farm, as a hostile project member would (run in Blender).

    blender -b --factory-startup --python hostile_scene.py -- OUT.blend ATTACK [ARG]

Every scene is a small Cycles scene (32x24, 2 samples, frames 1-2) with a camera looking
at a flat, evenly lit plane filling the view, plus one attack:

* ``forged-saved PATH``: a mesh object whose name holds a newline and a forged
  ``Saved: 'PATH'`` line; Blender prints object names raw while it renders, so the
  renderer's output claims PATH as a rendered file.
* ``file-output DIR``: a compositor File Output node writing every frame into DIR
  (another project's folder, the storage root).
* ``texture PATH``: the plane shows the image at the absolute path PATH (another
  project's frame); a missing image renders magenta.
"""

from __future__ import annotations

import sys

import bpy


def build(out: str, attack: str, arg: str) -> None:
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False  # Debian's Blender has no OpenImageDenoise
    scene.render.resolution_x, scene.render.resolution_y = 32, 24
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, 2

    bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 0, 0))
    plane = bpy.context.object
    material = bpy.data.materials.new("Screen")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (0.2, 0.2, 0.8, 1.0)
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    plane.data.materials.append(material)
    bpy.ops.object.camera_add(location=(0, 0, 5))
    scene.camera = bpy.context.object

    if attack == "forged-saved":
        plane.name = f"X\nSaved: '{arg}'\n"
        if plane.name != f"X\nSaved: '{arg}'\n":
            raise SystemExit(f"the path is too long for an object name: {arg}")
    elif attack == "file-output":
        scene.use_nodes = True
        tree = scene.node_tree
        layers = tree.nodes.get("Render Layers") or tree.nodes.new("CompositorNodeRLayers")
        sink = tree.nodes.new("CompositorNodeOutputFile")
        sink.base_path = arg
        links_c = tree.links
        links_c.new(layers.outputs["Image"], sink.inputs[0])
    elif attack == "texture":
        image = bpy.data.images.load(arg, check_existing=False)
        texture = nodes.new("ShaderNodeTexImage")
        texture.image = image
        links.new(texture.outputs["Color"], emission.inputs["Color"])
    else:
        raise SystemExit(f"unknown attack {attack!r}")
    bpy.ops.wm.save_as_mainfile(filepath=out)


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1 :]
    build(args[0], args[1], args[2] if len(args) > 2 else "")
