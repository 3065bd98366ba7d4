"""The node agent: renders one chunk of frames on any machine. Standard library only.

Run ``python -m renderhub.agent SPEC.json`` (``-`` reads the spec from stdin). The
package needs nothing outside the standard library, so a cloud VM without Django can run
it from a copy of ``renderhub/agent/`` beside an empty ``renderhub/__init__.py``.

The spec (a JSON object, checked by :mod:`.spec`; every problem is reported)::

    version          1                                   required
    command          argv template, e.g. ["blender", "-b", "{scene}", "-f", "{frame_list}"]
    scene            absolute path of the scene file
    frames           ascending unique ints >= 0
    cpus             int >= 1
    work_dir         agent.log, stdout.log, stderr.log go here; the renderer's cwd
    output_dir       where the renderer writes (created)
    output_name      file name; its last run of '#' is the zero-padded frame (as in
                     Blender); default frame_####
    job, task        ids for log lines (int or string)               optional from here
    variables        custom template values: string, number or bool
    publish_dir      finished outputs are moved here atomically, keeping their names
    inputs           [{"src", "dst"}]: copied before rendering; dst is the copy's path
                     (a file into an existing folder or a dst ending in / keeps its
                     name); trees keep their layout, symlinks are followed, files with
                     the same size and mtime are skipped
    progress_parser  "blender" or "none" (default "none")
    timeout          hard limit for the renderer, seconds (0 or null: none)
    stall_timeout    kill the renderer after this long without any output (0/null: none)
    kill_grace       seconds between SIGTERM and SIGKILL when stopping it (default 5)
    env              extra environment variables for the renderer

Template values: booleans become ``true``/``false`` (see :mod:`.template`). The renderer
runs in ``work_dir`` in the agent's own process group, stdin closed.

Events go to stdout, one JSON object per line, each with ``event`` and ``time`` (unix
seconds): ``staged {files, bytes, skipped}`` (inputs copied), ``started {pid, argv}``,
``frame_started {frame}``, ``progress {frame, message}`` (<= 2/s per frame),
``frame_done {frame, outputs, seconds}``, ``frame_failed {frame, reason}``,
``log {level, message}`` and, always last and once,
``finished {status, exit_code, reason, renderer_exit_code}``. ``frame_done.outputs`` are
absolute paths (in publish_dir when set); ``seconds`` is null when the parser cannot time
frames (``none``). After ``started``, each frame gets exactly one ``frame_done`` or
``frame_failed``.

Exit codes (= ``finished.exit_code``): 0 success, 1 error (the agent itself failed),
2 bad_spec, 3 input_missing (a file, or a scene or camera the renderer says is not there;
never retried), 4 renderer_failed, 5 cancelled (SIGTERM/SIGINT), 6 timeout
(hard or stall).
"""
