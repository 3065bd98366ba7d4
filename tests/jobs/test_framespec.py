from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.framespec import (
    FrameSpecError,
    format_frames,
    parse_frame_spec,
    split_by_size,
    split_even,
)


@pytest.mark.parametrize(
    ("spec", "frames"),
    [
        ("1-5", [1, 2, 3, 4, 5]),
        ("7", [7]),
        ("1-3,10,20-21", [1, 2, 3, 10, 20, 21]),
        ("1-10x3", [1, 4, 7, 10]),
        ("1-100x50", [1, 51]),
        (" 1 - 3 ", [1, 2, 3]),
        ("0-2", [0, 1, 2]),
    ],
)
def test_it_parses_ranges_lists_and_steps(spec: str, frames: list[int]) -> None:
    assert parse_frame_spec(spec) == frames


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "Give frames like"),
        ("abc", "is not a frame"),
        ("5-1", "runs backwards"),
        ("1-10x0", "Step"),
        ("1,,3", "Empty part"),
        ("5,3", "ascending order"),
        ("1-5,5", "ascending order"),
        ("-3", "outside"),
        ("1-99999999", "outside"),
        ("1-10x", "is not a frame"),
        ("1.5", "is not a frame"),
    ],
)
def test_it_names_the_problem_in_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(FrameSpecError, match=message):
        parse_frame_spec(spec)


def test_it_refuses_more_frames_than_allowed() -> None:
    with pytest.raises(FrameSpecError, match="more than 100 frames"):
        parse_frame_spec("1-101", max_frames=100)


frame_sets = st.lists(st.integers(0, 5000), min_size=1, max_size=200, unique=True).map(sorted)


@given(frame_sets)
def test_format_and_parse_round_trip(frames: list[int]) -> None:
    assert parse_frame_spec(format_frames(frames)) == frames


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_frame_spec_error(text: str) -> None:
    try:
        frames = parse_frame_spec(text)
    except FrameSpecError:
        return
    assert frames == sorted(set(frames))


@given(frame_sets, st.integers(1, 64))
def test_even_split_keeps_every_frame_once_in_order(frames: list[int], nodes: int) -> None:
    chunks = split_even(frames, nodes)
    assert [f for c in chunks for f in c] == frames
    assert len(chunks) == min(nodes, len(frames))
    sizes = [len(c) for c in chunks]
    assert max(sizes) - min(sizes) <= 1


@given(frame_sets, st.integers(1, 50))
def test_sized_split_makes_a_work_queue(frames: list[int], size: int) -> None:
    chunks = split_by_size(frames, size)
    assert [f for c in chunks for f in c] == frames
    assert all(len(c) == size for c in chunks[:-1])
    assert 1 <= len(chunks[-1]) <= size
