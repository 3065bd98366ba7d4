"""Reading .blend files without Blender, with blender-asset-tracer's blendfile reader.

:mod:`.facts` reads a scene file's facts (scenes, frame ranges, resolution, engine,
camera, denoising) in a bounded subprocess, :mod:`.deps` the files it references (and
``deps.read_scene`` both in one subprocess, what a submit needs); :mod:`.blender` asks
this machine's Blender what it was built with. Nothing here imports a domain app.
"""
