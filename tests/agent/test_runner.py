"""The run loop against the fake renderer, in this process (fast)."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderhub.agent.events import CancelFlag
from renderhub.agent.pipes import LineSplitter

from .conftest import Result, SpecFactory

RunAgent = Callable[..., Result]


def assert_each_frame_reported_once(result: Result, frames: list[int]) -> None:
    reported = result.frames("frame_done") + result.frames("frame_failed")
    assert sorted(reported) == frames


def test_success(make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path) -> None:
    result = run_agent(make_spec("--stderr", "a warning on stderr"))
    assert result.exit_code == 0
    assert result.finished == {
        **result.finished,
        "status": "success",
        "exit_code": 0,
        "reason": "",
        "renderer_exit_code": 0,
    }
    kinds = [e["event"] for e in result.events]
    assert kinds[:2] == ["staged", "started"]
    assert result.frames("frame_started") == [1, 2, 3]
    assert result.frames("frame_done") == [1, 2, 3]
    for event in result.of("frame_done"):
        (output,) = event["outputs"]
        # Taken out of the renderer's folder into one it cannot write.
        assert output == str(tmp_path / "work" / "frames" / f"shot_{event['frame']:04d}.png")
        assert Path(output).is_file()
        assert not (tmp_path / "out" / Path(output).name).exists()
        assert event["seconds"] >= 0
    # Events for a frame come in order: started, progress..., done.
    frame2 = [e["event"] for e in result.events if e.get("frame") == 2]
    assert frame2[0] == "frame_started" and frame2[-1] == "frame_done"
    argv = result.of("started")[0]["argv"]
    assert argv[2:6] == ["--out", str(tmp_path / "out" / "shot_####"), "--frames", "1,2,3"]
    work = tmp_path / "work"
    assert "Fra:3" in (work / "stdout.log").read_text()
    assert (work / "stderr.log").read_text() == "a warning on stderr\n"
    agent_log = (work / "agent.log").read_text().splitlines()
    assert len(agent_log) == len(result.events)
    assert any(" job=12 task=3 frame_done frame=1 outputs=[" in line for line in agent_log)


def test_exit_zero_but_frame_missing(
    make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path
) -> None:
    result = run_agent(make_spec("--skip", "2"))
    assert result.exit_code == 4
    assert result.frames("frame_done") == [1, 3]
    (failed,) = result.of("frame_failed")
    expected = f"renderer exited without writing frame 2 (shot_0002.* in {tmp_path / 'out'})"
    assert failed == {**failed, "frame": 2, "reason": expected}
    finished = result.finished
    assert finished["status"] == "renderer_failed"
    assert finished["renderer_exit_code"] == 0
    assert finished["reason"].startswith("renderer exited without saving frame(s) 2: ")
    assert "Error: Render error (Invalid argument) cannot save" in finished["reason"]


def test_nonzero_exit_reports_stderr(make_spec: SpecFactory, run_agent: RunAgent) -> None:
    spec = make_spec("--crash-after", "1", "--exit", "3", "--stderr", "boom: out of memory")
    result = run_agent(spec)
    assert result.exit_code == 4
    assert result.frames("frame_done") == [1]
    assert result.frames("frame_failed") == [2, 3]
    assert "exited with code 3" in result.of("frame_failed")[0]["reason"]
    finished = result.finished
    assert finished["renderer_exit_code"] == 3
    assert finished["reason"].startswith("renderer exited with code 3: ")
    assert "boom: out of memory" in finished["reason"]


def test_error_lines_win_over_output_tail(
    make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.png"
    result = run_agent(make_spec("--require", str(missing)))
    assert result.exit_code == 4
    error = f"Error: Cannot read file '{missing}': No such file or directory"
    assert result.finished["reason"] == f"renderer exited with code 1: {error}"
    assert_each_frame_reported_once(result, [1, 2, 3])


def test_reason_is_clipped(make_spec: SpecFactory, run_agent: RunAgent) -> None:
    result = run_agent(make_spec("--exit", "9", "--stderr", "x" * 5000))
    reason = result.finished["reason"]
    assert len(reason) == 2000
    assert reason.startswith("...")


def test_none_parser(make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path) -> None:
    result = run_agent(make_spec("--no-saved-lines", "--skip", "3", progress_parser="none"))
    assert result.exit_code == 4
    done = result.of("frame_done")
    assert [e["frame"] for e in done] == [1, 2]
    assert done[0]["outputs"] == [str(tmp_path / "work" / "frames" / "shot_0001.png")]
    assert done[0]["seconds"] is None
    reason = result.of("frame_failed")[0]["reason"]
    assert reason.startswith("renderer exited without writing frame 3 (shot_0003.* in ")
    assert result.of("frame_started") == [] and result.of("progress") == []


def test_missing_scene(make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path) -> None:
    result = run_agent(make_spec(scene=str(tmp_path / "gone.blend")))
    assert result.exit_code == 3
    assert [e["event"] for e in result.events] == ["finished"]
    assert result.finished["status"] == "input_missing"
    assert result.finished["reason"] == f"scene {tmp_path / 'gone.blend'} does not exist"


def test_missing_input(make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path) -> None:
    inputs = [{"src": str(tmp_path / "nothing"), "dst": str(tmp_path / "dst")}]
    result = run_agent(make_spec(inputs=inputs))
    assert result.exit_code == 3
    assert result.of("started") == []
    assert result.finished["reason"] == f"input {tmp_path / 'nothing'} does not exist"


def test_renderer_not_found(make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path) -> None:
    result = run_agent(make_spec(command=[str(tmp_path / "no-such-renderer"), "{scene}"]))
    assert result.exit_code == 4
    assert "cannot start" in result.finished["reason"]
    assert "no-such-renderer is not an executable program" in result.finished["reason"]
    assert_each_frame_reported_once(result, [1, 2, 3])


def test_renderer_not_on_path_is_named(make_spec: SpecFactory, run_agent: RunAgent) -> None:
    result = run_agent(make_spec(command=["blender-3.9", "-b", "{scene}"]))
    assert result.exit_code == 4
    assert (
        "blender-3.9 is not an executable program on PATH /usr/local/bin"
        in (result.finished["reason"])
    )


def make_tree(root: Path) -> None:
    """A project folder: the scene plus a texture in a subfolder, and an empty folder."""
    (root / "textures").mkdir(parents=True)
    (root / "cache" / "empty").mkdir(parents=True)
    (root / "scene.blend").write_bytes(b"BLENDER-fake scene")
    (root / "textures" / "checker.png").write_bytes(b"\x89PNG texture" * 100)


def test_staging_keeps_layout_and_skips_identical(
    make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path
) -> None:
    src, dst = tmp_path / "shared" / "project", tmp_path / "node" / "project"
    make_tree(src)
    texture = dst / "textures" / "checker.png"
    spec = make_spec(
        "--require",
        str(texture),
        scene=str(dst / "scene.blend"),  # only exists once staged
        inputs=[
            {"src": str(src), "dst": str(dst)},
            {"src": str(src / "scene.blend"), "dst": str(tmp_path / "single" / "copy.blend")},
        ],
    )
    first = run_agent(spec)
    assert first.exit_code == 0, first.finished
    assert first.of("staged")[0] == {**first.of("staged")[0], "files": 3, "skipped": 0}
    assert first.of("staged")[0]["bytes"] == 2 * 18 + 1200
    assert texture.read_bytes() == (src / "textures" / "checker.png").read_bytes()
    assert (dst / "cache" / "empty").is_dir()
    assert (tmp_path / "single" / "copy.blend").is_file()
    assert texture.stat().st_mtime_ns == (src / "textures" / "checker.png").stat().st_mtime_ns
    assert not list(dst.rglob("*.part"))

    second = run_agent(spec)  # nothing changed: nothing copied
    assert second.of("staged")[0] == {
        **second.of("staged")[0],
        "files": 0,
        "bytes": 0,
        "skipped": 3,
    }

    (src / "textures" / "checker.png").write_bytes(b"changed!")  # size differs: copied again
    third = run_agent(spec)
    assert third.of("staged")[0] == {**third.of("staged")[0], "files": 1, "bytes": 8, "skipped": 2}
    assert texture.read_bytes() == b"changed!"


def test_staging_file_into_existing_folder(
    make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path
) -> None:
    (tmp_path / "into").mkdir()
    (tmp_path / "a.txt").write_text("a")
    result = run_agent(
        make_spec(inputs=[{"src": str(tmp_path / "a.txt"), "dst": str(tmp_path / "into")}])
    )
    assert result.exit_code == 0
    assert (tmp_path / "into" / "a.txt").read_text() == "a"


def test_publish_dir(make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path) -> None:
    publish = tmp_path / "published"
    result = run_agent(make_spec(publish_dir=str(publish)))
    assert result.exit_code == 0
    outputs = [e["outputs"] for e in result.of("frame_done")]
    assert outputs == [[str(publish / f"shot_000{f}.png")] for f in (1, 2, 3)]
    assert sorted(p.name for p in publish.iterdir()) == [f"shot_000{f}.png" for f in (1, 2, 3)]
    assert list((tmp_path / "out").iterdir()) == []  # moved, not copied
    assert (publish / "shot_0002.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_publish_failure_fails_the_frame(
    make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path
) -> None:
    publish = tmp_path / "published"
    spec = make_spec(publish_dir=str(publish))
    publish.mkdir()
    (publish / "shot_0002.png").mkdir()  # a folder in the way: the move fails
    result = run_agent(spec)
    assert result.exit_code == 4
    assert result.frames("frame_done") == [1, 3]
    reason = result.of("frame_failed")[0]["reason"]
    assert reason.endswith("refused: shot_0002.png: cannot take it over: Is a directory")
    assert result.finished["reason"].startswith("renderer exited without saving frame(s) 2")
    assert not [p for p in publish.iterdir() if p.name.endswith(".part")]


def test_stall_timeout(make_spec: SpecFactory, run_agent: RunAgent) -> None:
    started = time.monotonic()
    result = run_agent(make_spec("--hang", "2", stall_timeout=0.5, timeout=None))
    assert time.monotonic() - started < 5
    assert result.exit_code == 6
    assert result.finished["status"] == "timeout"
    assert result.finished["reason"] == "renderer stalled: no output for 0.5 s"
    assert result.finished["renderer_exit_code"] == -15
    assert result.frames("frame_done") == [1]
    assert result.frames("frame_failed") == [2, 3]
    assert "not rendered: renderer stalled" in result.of("frame_failed")[0]["reason"]


def test_hard_timeout_with_busy_renderer(make_spec: SpecFactory, run_agent: RunAgent) -> None:
    # The renderer keeps printing (so it never stalls) but never finishes.
    result = run_agent(make_spec("--hang", "1", "--chatty", timeout=1, stall_timeout=0.5))
    assert result.exit_code == 6
    assert result.finished["reason"] == "renderer exceeded the timeout of 1 s"
    assert 1 <= len(result.of("progress")) <= 4  # rate limited: <= 2 per second
    assert_each_frame_reported_once(result, [1, 2, 3])


def test_sigkill_when_renderer_ignores_sigterm(make_spec: SpecFactory, run_agent: RunAgent) -> None:
    spec = make_spec(
        "--hang", "1", "--ignore-term", timeout=0.5, stall_timeout=None, kill_grace=0.3
    )
    result = run_agent(spec)
    assert result.exit_code == 6
    assert result.finished["renderer_exit_code"] == -9
    assert any("SIGKILL" in e["message"] for e in result.of("log"))


def test_cancel_flag(make_spec: SpecFactory, run_agent: RunAgent) -> None:
    cancel = CancelFlag()
    cancel.request("cancelled by test")
    result = run_agent(make_spec(), cancel)
    assert result.exit_code == 5
    assert result.finished["reason"] == "cancelled by test before rendering"


def test_env_and_cwd(make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path) -> None:
    spec = make_spec("--print-env", "RENDERHUB_TEST", env={"RENDERHUB_TEST": "a b;$x"})
    spec["command"] = [*spec["command"], "--print-env", "PATH"]
    assert run_agent(spec).exit_code == 0
    log = (tmp_path / "work" / "stdout.log").read_text()
    assert "env RENDERHUB_TEST=a b;$x\n" in log
    # The worker's environment is not passed on: a fixed PATH and the declared variables.
    assert "env PATH=/usr/local/bin:/usr/bin:/bin\n" in log


def test_custom_variables_reach_argv(make_spec: SpecFactory, run_agent: RunAgent) -> None:
    spec: dict[str, Any] = make_spec(variables={"engine": "CYCLES", "denoise": False})
    spec["command"] = [
        sys.executable,
        "-c",
        "pass",
        "{engine}",
        "--denoise={denoise}",
        "{frame_list}",
    ]
    result = run_agent({**spec, "progress_parser": "none"})
    assert result.of("started")[0]["argv"][3:] == ["CYCLES", "--denoise=false", "1..3"]
    assert result.exit_code == 4  # `pass` renders nothing


def test_saved_but_missing_file(
    make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path
) -> None:
    result = run_agent(make_spec("--phantom", "2"))
    assert result.exit_code == 4
    (failed,) = result.of("frame_failed")
    # Saying "Saved:" makes no frame: the file must be there.
    assert failed["reason"] == (
        f"renderer exited without writing frame 2 (shot_0002.* in {tmp_path / 'out'})"
    )
    assert result.finished["reason"].startswith("renderer exited without saving frame(s) 2")


def test_agent_error_when_work_dir_is_a_file(
    make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    result = run_agent(make_spec(work_dir=str(tmp_path / "file")))
    assert result.exit_code == 1
    assert result.finished["status"] == "error"
    assert "cannot create the agent's directories" in result.finished["reason"]


def test_staging_failure_is_an_agent_error(
    make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "blocker").write_text("")
    inputs = [{"src": str(tmp_path / "a.txt"), "dst": str(tmp_path / "blocker" / "a.txt")}]
    result = run_agent(make_spec(inputs=inputs))
    assert result.exit_code == 1
    assert result.finished["reason"].startswith("staging inputs failed: ")


def test_cancel_while_staging(make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    cancel = CancelFlag()
    cancel.request("cancelled by test")
    inputs = [{"src": str(tmp_path / "a.txt"), "dst": str(tmp_path / "b.txt")}]
    result = run_agent(make_spec(inputs=inputs), cancel)
    assert result.exit_code == 5
    assert result.finished["reason"] == "cancelled by test while staging inputs"
    assert not (tmp_path / "b.txt").exists()


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_line_splitter_ignores_chunking(data: bytes, cuts: list[int]) -> None:
    data = data.replace(b"\r", b"")  # a \r\n cut in two would give one extra empty line
    splitter = LineSplitter()
    lines: list[str] = []
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    for start, end in itertools.pairwise(bounds):
        lines += splitter.feed(data[start:end])
    lines += splitter.flush()
    *whole, last = data.split(b"\n")
    expected = [*whole, last] if last else whole
    assert lines == [x.decode("utf-8", "replace") for x in expected]


def test_line_splitter_carriage_returns() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\r\nb\rc\nd") == ["a", "b", "c"]
    assert splitter.flush() == ["d"]


def test_staging_follows_symlinks(
    make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path
) -> None:
    library, project = tmp_path / "library", tmp_path / "project"
    (library / "maps").mkdir(parents=True)
    (library / "maps" / "wood.png").write_bytes(b"wood")
    project.mkdir()
    (project / "lib").symlink_to(library)  # a linked texture library
    (project / "loop").symlink_to(project)  # must not recurse forever
    (project / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    dst = tmp_path / "node"
    result = run_agent(make_spec(inputs=[{"src": str(project), "dst": str(dst)}]))
    assert result.exit_code == 0, result.finished
    assert (dst / "lib" / "maps" / "wood.png").read_bytes() == b"wood"
    assert not (dst / "lib" / "maps" / "wood.png").is_symlink()
    assert not (dst / "loop").exists()
    assert any("dangling.png" in e["message"] for e in result.of("log"))
    assert result.of("staged")[0]["files"] == 1


def test_renderer_logs_are_capped(
    make_spec: SpecFactory, run_agent: RunAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renderer printing without end fills no disk: each log stops at MAX_LOG_BYTES."""
    from renderhub.agent import pipes

    monkeypatch.setattr(pipes, "MAX_LOG_BYTES", 1000)
    result = run_agent(make_spec("--stderr", "x" * 5000, "--exit", "3"))
    stderr_log = (tmp_path / "work" / "stderr.log").read_bytes()
    assert len(stderr_log) < 1100
    assert stderr_log.endswith(b"[RenderHub: log truncated at 1000 bytes]\n")
    assert "xxx" in result.finished["reason"]  # the tail is still read for the reason
