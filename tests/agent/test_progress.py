"""Progress parsers, fed with real Blender 3.4 output."""

from __future__ import annotations

from pathlib import Path

from renderhub.agent.progress import BlenderParser, NoneParser, Update, output_regex

# Captured from `blender -b demo.blend -o /tmp/bt/out/shot_#### -F PNG -f 1..2` (3.4.1).
BLENDER_OUTPUT = """\
Blender 3.4.1
Read blend: /tmp/bt/scene/demo.blend
Fra:1 Mem:9.60M (Peak 11.01M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer | Synchronizing object | Plane
Fra:1 Mem:10.36M (Peak 11.01M) | Time:00:00.07 | Mem:0.86M, Peak:0.86M | Scene, ViewLayer | Sample 0/4
Fra:1 Mem:10.41M (Peak 11.01M) | Time:00:00.07 | Remaining:00:00.01 | Mem:0.92M, Peak:0.92M | Scene, ViewLayer | Sample 1/4
Fra:1 Mem:10.46M (Peak 11.01M) | Time:00:00.08 | Mem:0.92M, Peak:0.92M | Scene, ViewLayer | Sample 4/4
Fra:1 Mem:10.46M (Peak 11.01M) | Time:00:00.08 | Mem:0.92M, Peak:0.92M | Scene, ViewLayer | Finished
Saved: '/tmp/bt/out/shot_0001.png'
 Time: 00:00.23 (Saving: 00:00.15)

Fra:2 Mem:9.85M (Peak 11.01M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer | Synchronizing object | Plane
Fra:2 Mem:10.46M (Peak 11.01M) | Time:00:00.00 | Mem:0.92M, Peak:0.92M | Scene, ViewLayer | Finished
imb_savepng: Cannot open file for writing: '/tmp/bt/out/shot_0002.png'
Error: Render error (Invalid argument) cannot save: '/tmp/bt/out/shot_0002.png'
 Time: 00:00.21 (Saving: 00:00.14)


Blender quit
"""  # noqa: E501


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def feed_all(parser: BlenderParser, text: str, clock: Clock, step: float = 0.1) -> list[Update]:
    updates: list[Update] = []
    for line in text.splitlines():
        clock.now += step
        updates += parser.feed(line, "stdout")
    return updates


def test_blender_output() -> None:
    clock = Clock()
    parser = BlenderParser([1, 2], "/tmp/bt/out", "shot_####", clock=clock)
    updates = feed_all(parser, BLENDER_OUTPUT, clock, step=0.3) + parser.finish(0)
    kinds = [(u.event, u.frame) for u in updates]
    assert kinds[0] == ("frame_started", 1)
    assert ("frame_started", 2) in kinds
    done = [u for u in updates if u.event == "frame_done"]
    assert len(done) == 1  # frame 2 failed to save
    assert done[0].frame == 1
    assert done[0].outputs == ["/tmp/bt/out/shot_0001.png"]
    assert done[0].seconds == 0.23  # Blender's " Time: 00:00.23", not the clock's 1.8 s
    assert parser.errors == [
        "Error: Render error (Invalid argument) cannot save: '/tmp/bt/out/shot_0002.png'"
    ]
    messages = [u.message for u in updates if u.event == "progress"]
    assert messages[0] == "Time:00:00.00 | Scene, ViewLayer | Synchronizing object | Plane"
    assert "Time:00:00.07 | Remaining:00:00.01 | Scene, ViewLayer | Sample 1/4" in messages


def test_a_starved_agent_still_records_blenders_frame_time() -> None:
    # The agent was busy: it reads frame 1's lines all at once, with no time passing.
    clock = Clock()
    parser = BlenderParser([1, 2], "/tmp/bt/out", "shot_####", clock=clock)
    updates = feed_all(parser, BLENDER_OUTPUT, clock, step=0.0) + parser.finish(0)
    [done] = [u for u in updates if u.event == "frame_done"]
    assert (done.frame, done.seconds) == (1, 0.23)


def test_frame_time_past_an_hour() -> None:
    parser = BlenderParser([7], "/o", "shot_####")
    parser.feed("Fra:7 Mem:1M | Sample 1/1", "stdout")
    parser.feed("Saved: '/o/shot_0007.exr'", "stdout")
    [done] = parser.feed(" Time: 01:02:03.45 (Saving: 00:00.15)", "stdout")
    assert (done.frame, done.seconds) == (7, 3723.45)


def test_without_a_time_line_the_clock_times_the_frame() -> None:
    clock = Clock()
    parser = BlenderParser([1, 2], "/o", "shot_####", clock=clock)
    parser.feed("Fra:1 Mem:1M | Sample 1/1", "stdout")
    parser.feed("Saved: '/o/shot_0001.png'", "stdout")
    clock.now += 2.5
    [done] = [u for u in parser.feed("Fra:2 Mem:1M", "stdout") if u.event == "frame_done"]
    assert (done.frame, done.seconds) == (1, 2.5)
    parser.feed("Saved: '/o/shot_0002.png'", "stdout")
    clock.now += 1.25
    [done] = parser.finish(0)  # the renderer exited before printing a Time: line
    assert (done.frame, done.seconds) == (2, 1.25)


def test_a_time_line_in_another_format_closes_the_frame_on_the_clock() -> None:
    clock = Clock()
    parser = BlenderParser([3], "/o", "shot_####", clock=clock)
    parser.feed("Fra:3 Mem:1M | Sample 1/1", "stdout")
    parser.feed("Saved: '/o/shot_0003.png'", "stdout")
    clock.now += 0.5
    [done] = parser.feed(" Time: 12.5s", "stdout")
    assert (done.frame, done.seconds) == (3, 0.5)


def test_progress_is_rate_limited_per_frame() -> None:
    clock = Clock()
    parser = BlenderParser([1], "/o", "f_#", clock=clock)
    lines = [f"Fra:1 Mem:1M (Peak 1M) | Time:00:00.00 | Sample {i}/100" for i in range(100)]
    updates = feed_all(parser, "\n".join(lines), clock, step=0.01)  # 100 lines in 1 s
    progress = [u for u in updates if u.event == "progress"]
    assert 2 <= len(progress) <= 3
    # The latest held-back message goes out once the interval has passed.
    clock.now += 0.6
    assert [u.message for u in parser.tick()] == ["Time:00:00.00 | Sample 99/100"]
    assert parser.tick() == []


def test_frame_number_from_saved_file_name() -> None:
    parser = BlenderParser([1, 2, 3], "/o", "shot_####")
    parser.feed("Fra:1 Mem:1M | Sample 1/1", "stdout")
    parser.feed("Saved: '/o/shot_0003.png'", "stdout")
    (done,) = parser.feed(" Time: 00:00.01 (Saving: 00:00.00)", "stdout")
    assert (done.frame, done.outputs) == (3, ["/o/shot_0003.png"])


def test_several_files_saved_for_one_frame() -> None:
    parser = BlenderParser([1], "/o", "v_##")
    parser.feed("Fra:1 Mem:1M | Sample 1/1", "stdout")
    assert parser.feed("Saved: '/o/v_01_L.png'", "stdout") == []
    assert parser.feed("Saved: '/o/v_01_R.png'", "stdout") == []
    updates = parser.feed("Fra:2 Mem:1M | Sample 1/1", "stdout")  # next frame closes frame 1
    done = [u for u in updates if u.event == "frame_done"]
    assert done[0].outputs == ["/o/v_01_L.png", "/o/v_01_R.png"]


def test_saved_outside_a_frame_is_logged() -> None:
    parser = BlenderParser([1], "/o", "shot_####")
    (update,) = parser.feed("Saved: '/elsewhere/thing.exr'", "stdout")
    assert update.event == "log"


def test_output_regex() -> None:
    pattern = output_regex("shot_####_v2")
    assert pattern.match("shot_0007_v2.png").group(1) == "0007"  # type: ignore[union-attr]
    assert pattern.match("shot_0007_v2") is not None
    assert pattern.match("shot_0007_v3.png") is None
    assert pattern.match("xshot_0007_v2.png") is None
    assert output_regex("a#b_##").match("a#b_12.exr").group(1) == "12"  # type: ignore[union-attr]


def test_none_parser(tmp_path: Path) -> None:
    for name in ("f_001.png", "f_001.exr", "f_002.jpg", "f_03.png", "f_004", "other.png"):
        (tmp_path / name).write_text("x")
    parser = NoneParser([1, 2, 3, 4, 5], str(tmp_path), "f_###")
    assert parser.feed("Error: something", "stderr") == []
    assert parser.errors == ["Error: something"]
    done = {u.frame: u.outputs for u in parser.finish(0)}
    assert done == {
        1: [str(tmp_path / "f_001.exr"), str(tmp_path / "f_001.png")],
        2: [str(tmp_path / "f_002.jpg")],
        4: [str(tmp_path / "f_004")],
    }  # f_03 has the wrong padding for frame 3
    assert parser.finish(1) == []
