"""A session keeps one Blender between the chunks of a job (``--session``, agent.warm)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from renderhub.agent import sandbox

from . import test_blender
from .conftest import FAKE_RENDERER, HERE, REPO, Result, check_contract, parse_events
from .test_blender import blender_spec

demo_project = test_blender.demo_project  # the generated demo scene (a session fixture)

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed"),
]

KINDS = [
    "none",
    pytest.param(
        "bwrap",
        marks=pytest.mark.skipif(
            sandbox.problem("bwrap") is not None, reason="bubblewrap cannot run here"
        ),
    ),
]


class Session:
    """``python -m renderhub.agent --session``, fed spec paths, read chunk by chunk."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.count = 0
        self.folder = tmp_path / "session"  # the agent's working directory, as a worker's
        self.folder.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "renderhub.agent", "--session"],
            cwd=self.folder,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def chunk(self, spec: dict[str, Any], timeout: float = 120) -> Result:
        self.count += 1
        path = self.tmp_path / f"spec-{self.count}.json"
        path.write_text(json.dumps(spec))
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line, f"the agent ended: {self.proc.stderr.read() if self.proc.stderr else ''}"
            lines.append(line)
            if json.loads(line)["event"] == "finished":
                break
        events = parse_events("".join(lines))
        result = Result(events[-1]["exit_code"], events)
        check_contract(result, spec["frames"])
        return result

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(30)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    agent = Session(tmp_path)
    yield agent
    if agent.proc.poll() is None:
        os.killpg(agent.proc.pid, signal.SIGKILL)
        agent.proc.wait()


def chunk_spec(tmp_path: Path, project: Path, n: int, frames: list[int], kind: str, **more: Any):
    """A chunk of one job: its own work and publish folders, the session's output folder."""
    spec = blender_spec(tmp_path, project, frames=frames, **more)
    spec.update(
        work_dir=str(tmp_path / f"chunk-{n}"),
        publish_dir=str(tmp_path / f"published-{n}"),
        output_dir=str(tmp_path / "session" / "out"),
        session_dir=str(tmp_path / "session"),
        sandbox={"kind": kind},
    )
    if kind == "bwrap":  # the staged project is what the sandbox may read
        spec["sandbox"]["read_only"] = [str(tmp_path / "node" / "project")]
    return spec


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def published(result: Result) -> dict[int, Image.Image]:
    images = {}
    for event in result.of("frame_done"):
        (path,) = event["outputs"]
        with Image.open(path) as image:
            assert image.format == "PNG"
            images[event["frame"]] = image.convert("RGB")
    return images


@pytest.mark.parametrize("kind", KINDS)
def test_the_chunks_of_a_job_share_one_blender(
    session: Session, demo_project: Path, tmp_path: Path, kind: str
) -> None:
    first = session.chunk(chunk_spec(tmp_path, demo_project, 1, [1], kind))
    second = session.chunk(chunk_spec(tmp_path, demo_project, 2, [2, 3], kind, inputs=[]))

    assert (first.exit_code, second.exit_code) == (0, 0), (first.events, second.events)
    (start_1,), (start_2,) = first.of("started"), second.of("started")
    assert start_1["warm"] is False and start_2["warm"] is True
    assert start_1["pid"] == start_2["pid"], "the second chunk starts no renderer"
    images = published(first) | published(second)
    assert sorted(images) == [1, 2, 3]
    # Blender's own time for each frame (a warm one of this tiny scene may read 00:00.00).
    assert all(e["seconds"] >= 0 for e in first.of("frame_done") + second.of("frame_done"))
    for a, b in ((1, 2), (2, 3)):
        diff = ImageStat.Stat(ImageChops.difference(images[a], images[b])).mean
        assert sum(diff) > 3, "each chunk rendered its own frames"
    # Each chunk's logs are its own: the renderer's lines for its frames.
    log_2 = (tmp_path / "chunk-2" / "stdout.log").read_text()
    assert "Fra:2 " in log_2 and "Fra:1 " not in log_2

    assert session.close() == 0
    assert not alive(start_1["pid"]), "closing the session ends its renderer"


def test_a_chunk_with_other_options_starts_its_own_blender(
    session: Session, demo_project: Path, tmp_path: Path
) -> None:
    first = session.chunk(chunk_spec(tmp_path, demo_project, 1, [1], "none"))
    second = session.chunk(chunk_spec(tmp_path, demo_project, 2, [2], "none", cpus=1, inputs=[]))

    assert (first.exit_code, second.exit_code) == (0, 0)
    old, new = first.of("started")[0]["pid"], second.of("started")[0]
    assert new["warm"] is False and new["pid"] != old
    assert not alive(old), "the renderer for other options was closed"
    assert "-t" in new["argv"] and new["argv"][new["argv"].index("-t") + 1] == "1"


def test_a_renderer_that_died_between_chunks_is_started_again(
    session: Session, demo_project: Path, tmp_path: Path
) -> None:
    first = session.chunk(chunk_spec(tmp_path, demo_project, 1, [1], "none"))
    os.kill(first.of("started")[0]["pid"], signal.SIGKILL)
    time.sleep(0.2)

    second = session.chunk(chunk_spec(tmp_path, demo_project, 2, [2], "none", inputs=[]))

    assert second.exit_code == 0, second.events
    assert second.of("started")[0]["warm"] is False
    assert sorted(published(second)) == [2]


def test_a_file_an_earlier_chunk_left_is_not_taken_for_this_chunks_frame(
    session: Session, demo_project: Path, tmp_path: Path
) -> None:
    first = session.chunk(chunk_spec(tmp_path, demo_project, 1, [1], "none"))
    # A picture where the next chunk's frame 2 would be, as a failed frame could leave.
    stale = tmp_path / "session" / "out" / "shot_0002.png"
    Image.new("RGB", (8, 8), "red").save(stale)

    second = session.chunk(chunk_spec(tmp_path, demo_project, 2, [2], "none", inputs=[]))

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert published(second)[2].size != (8, 8), "frame 2 is what the renderer made"


def test_other_software_still_runs_once_per_chunk(session: Session, tmp_path: Path) -> None:
    command = [sys.executable, str(FAKE_RENDERER), "--out", "{output_pattern}"]
    command += ["--frames", "{frames}"]

    def spec(n: int, frames: list[int]) -> dict[str, Any]:
        return stand_in_spec(tmp_path, n, frames, command)

    first, second = session.chunk(spec(1, [1, 2])), session.chunk(spec(2, [3]))

    assert (first.exit_code, second.exit_code) == (0, 0), (first.events, second.events)
    assert "warm" not in first.of("started")[0]
    assert first.of("started")[0]["pid"] != second.of("started")[0]["pid"]
    assert session.close() == 0


def test_sigterm_during_a_chunk_cancels_it_and_ends_the_renderer(
    session: Session, demo_project: Path, tmp_path: Path
) -> None:
    first = session.chunk(chunk_spec(tmp_path, demo_project, 1, [1], "none"))
    pid = first.of("started")[0]["pid"]
    os.killpg(session.proc.pid, signal.SIGTERM)  # what the manager's kill sends

    assert session.proc.wait(10) == 0
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "the kept renderer goes with the session"


def test_a_scene_without_a_camera_fails_with_blenders_line_in_a_session(
    session: Session, tmp_path: Path
) -> None:
    scene = tmp_path / "nocam" / "nocam.blend"
    scene.parent.mkdir()
    script = "import bpy, sys; bpy.data.objects.remove(bpy.data.objects['Camera']);"
    script += f"bpy.ops.wm.save_as_mainfile(filepath={str(scene)!r})"
    argv = ["blender", "-b", "--factory-startup", "--python-expr", script]
    subprocess.run(argv, capture_output=True, timeout=120, check=True)
    spec = chunk_spec(tmp_path, scene.parent, 1, [1], "none", inputs=[])
    spec["scene"] = str(scene)

    result = session.chunk(spec)

    # As without a session: Blender's own line, a missing input (not retried).
    assert (result.exit_code, result.finished["reason"]) == (3, "Error: Cannot render, no camera")
    assert result.frames("frame_failed") == [1]
    assert session.close() == 0


def test_the_driver_leaves_the_scenes_frame_range_alone(demo_project: Path, tmp_path: Path) -> None:
    # Stamps and drivers may read the scene's range: the driver renders a frame as -f does,
    # at that frame, without narrowing the range to it. What Blender runs after the driver
    # (its input closed) prints the range it left.
    from renderhub.agent.warm import DONE, DRIVER

    after = "import bpy; s = bpy.context.scene; print('RANGE', s.frame_start, s.frame_end)"
    argv = ["blender", "-b", str(demo_project / "demo.blend"), "-o", str(tmp_path / "f_####")]
    argv += ["-F", "PNG", "--python-expr", DRIVER, "--python-expr", after]
    proc = subprocess.run(
        argv, input="t0k3n 2 3\n", capture_output=True, text=True, timeout=120, check=False
    )

    assert f"{DONE} t0k3n" in proc.stdout.splitlines(), proc.stdout[-2000:]
    assert "RANGE 1 3" in proc.stdout.splitlines(), proc.stdout[-2000:]
    assert sorted(p.name for p in tmp_path.glob("f_*")) == ["f_0002.png", "f_0003.png"]


def test_a_file_left_in_a_sessions_folder_is_not_taken_by_other_software(
    session: Session, tmp_path: Path
) -> None:
    # Not driven (a renderer per chunk), but its output folder is the session's: a frame
    # file an earlier chunk left there must not stand in for one this chunk failed to save.
    scene = tmp_path / "scene.blend"
    scene.write_bytes(b"BLENDER-fake")
    command = [sys.executable, str(FAKE_RENDERER), "--out", "{output_pattern}"]
    command += ["--frames", "{frames}", "--skip", "3"]
    out = tmp_path / "session" / "out"
    out.mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(out / "shot_0003.png")
    spec = {
        "version": 1,
        "command": command,
        "scene": str(scene),
        "frames": [3],
        "cpus": 1,
        "work_dir": str(tmp_path / "chunk-1"),
        "output_dir": str(out),
        "session_dir": str(tmp_path / "session"),
        "output_name": "shot_####",
        "progress_parser": "blender",
    }

    result = session.chunk(spec)

    assert result.exit_code == 4 and result.frames("frame_failed") == [3], result.events


def stand_in_spec(tmp_path: Path, n: int, frames: list[int], command: list[str]) -> dict[str, Any]:
    """Chunk ``n`` of a job in the session's folder, rendered by a stand-in ``command``."""
    scene = tmp_path / "scene.blend"
    scene.write_bytes(b"BLENDER-fake")
    return {
        "version": 1,
        "job": 1,
        "task": n,
        "command": command,
        "scene": str(scene),
        "frames": frames,
        "cpus": 1,
        "work_dir": str(tmp_path / f"chunk-{n}"),
        "output_dir": str(tmp_path / "session" / "out"),
        "session_dir": str(tmp_path / "session"),
        "output_name": "shot_####",
        "progress_parser": "blender",
    }


def driven_fake_spec(tmp_path: Path, n: int, frames: list[int], *extra: str) -> dict[str, Any]:
    """A chunk whose template is driven (it ends ``-f {frame_list}``, Blender's parser),
    its renderer the out-of-order stand-in."""
    fake = [sys.executable, str(HERE / "fake_driven_renderer.py")]
    command = [*fake, "--out", "{output_pattern}", *extra, "-f", "{frame_list}"]
    return stand_in_spec(tmp_path, n, frames, command)


def test_a_line_printed_before_the_chunk_ended_stays_in_that_chunks_log(
    session: Session, tmp_path: Path
) -> None:
    # Two pipes read side by side: the renderer's last stderr line may come after its
    # stdout marker. The chunk ends when the marker came on both, so the line is its own.
    first = session.chunk(driven_fake_spec(tmp_path, 1, [1, 2]))
    second = session.chunk(driven_fake_spec(tmp_path, 2, [3]))

    assert (first.exit_code, second.exit_code) == (0, 0), (first.events, second.events)
    assert second.of("started")[0]["warm"] is True
    logs = [(tmp_path / f"chunk-{n}" / "stderr.log").read_text() for n in (1, 2)]
    assert "last words" in logs[0] and logs[0].count("last words") == 1, logs
    assert logs[1].count("last words") == 1, logs
    assert session.close() == 0


def test_a_second_sigterm_does_not_leave_the_renderer_behind(
    session: Session, tmp_path: Path
) -> None:
    # Between chunks SIGTERM ends the session, which closes its renderer: one slow to
    # quit is killed after a grace. A second SIGTERM meanwhile must not cut that short
    # (the agent gone, the renderer would run on as an orphan).
    from renderhub.agent.warm import CLOSE_GRACE

    first = session.chunk(driven_fake_spec(tmp_path, 1, [1], "--linger", "60"))
    assert first.exit_code == 0, first.events
    pid = first.of("started")[0]["pid"]
    os.kill(session.proc.pid, signal.SIGTERM)
    time.sleep(0.5)
    os.kill(session.proc.pid, signal.SIGTERM)

    assert session.proc.wait(CLOSE_GRACE + 10) == 0
    assert not alive(pid), "the renderer is killed once its grace is over"


def test_a_marker_glued_to_an_unfinished_line_still_ends_the_chunk(
    session: Session, tmp_path: Path
) -> None:
    first = session.chunk(driven_fake_spec(tmp_path, 1, [1], "--glued"), timeout=30)
    second = session.chunk(driven_fake_spec(tmp_path, 2, [2], "--glued"), timeout=30)

    assert (first.exit_code, second.exit_code) == (0, 0), (first.events, second.events)
    assert second.of("started")[0]["warm"] is True, "it ended cleanly: kept"


def test_a_chunk_ended_on_one_output_only_is_done_but_its_renderer_not_kept(
    session: Session, tmp_path: Path
) -> None:
    # Not a stall until the timeout: its frames are looked up as always, and the
    # renderer, which did not end the chunk as the driver does, serves no further chunk.
    started = time.monotonic()
    first = session.chunk(driven_fake_spec(tmp_path, 1, [1, 2], "--stdout-only"), timeout=30)
    second = session.chunk(driven_fake_spec(tmp_path, 2, [3], "--stdout-only"), timeout=30)

    assert (first.exit_code, second.exit_code) == (0, 0), (first.events, second.events)
    assert first.frames("frame_done") == [1, 2] and second.frames("frame_done") == [3]
    assert second.of("started")[0]["warm"] is False
    assert time.monotonic() - started < 20
