"""Spec loading and validation: one clear message per problem."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from renderhub.agent.spec import Input, SpecError, load_spec, parse_spec

from .conftest import SpecFactory


def problems(spec: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return info.value.problems


def test_valid_spec_and_defaults(make_spec: SpecFactory) -> None:
    spec = make_spec(inputs=[{"src": "/a", "dst": "/b"}], variables={"engine": "CYCLES"})
    del spec["output_name"], spec["progress_parser"], spec["timeout"], spec["stall_timeout"]
    parsed = parse_spec(spec)
    assert parsed.frames == [1, 2, 3]
    assert parsed.output_name == "frame_####"
    assert parsed.progress_parser == "none"
    assert parsed.timeout is None and parsed.stall_timeout is None
    assert parsed.inputs == [Input("/a", "/b")]
    assert parsed.variables == {"engine": "CYCLES"}
    assert parsed.kill_grace == 5.0
    assert parse_spec(make_spec(timeout=0, stall_timeout=None)).timeout is None  # no limit


def test_not_an_object() -> None:
    assert problems([1, 2]) == ["the spec must be a JSON object, got list"]


def test_missing_keys_all_reported() -> None:
    found = problems({"version": 1})
    for key in ("command", "scene", "frames", "cpus", "work_dir", "output_dir"):
        assert f"missing required key {key!r}" in found


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": 2}, "version must be 1, got 2"),
        ({"tiemout": 5}, "unknown key 'tiemout'"),
        ({"frames": []}, "frames must be a non-empty list"),
        ({"frames": [3, 2]}, "frames must be ascending with no repeats"),
        ({"frames": [1, 1]}, "frames must be ascending with no repeats"),
        ({"frames": [1, -2]}, "frames must be integers >= 0"),
        ({"frames": [1, True]}, "frames must be integers >= 0"),
        ({"frames": [1.5]}, "frames must be integers >= 0"),
        ({"cpus": 0}, "cpus must be an integer >= 1"),
        ({"cpus": "2"}, "cpus must be an integer >= 1"),
        ({"scene": "rel/scene.blend"}, "scene must be an absolute path"),
        ({"scene": ""}, "scene must be a non-empty string path"),
        ({"work_dir": 5}, "work_dir must be a non-empty string path"),
        ({"publish_dir": "pub"}, "publish_dir must be an absolute path"),
        ({"output_name": "shot"}, "output_name must hold a run of '#'"),
        ({"output_name": "x/shot_##"}, "output_name must be a file name"),
        ({"command": "blender -b"}, "command must be a list of strings"),
        ({"command": ["r", "{nope}"]}, "command: unknown variable {nope}"),
        ({"command": ["r", "{scene.x}"]}, "command: argument 2 ('{scene.x}'): attribute"),
        ({"variables": {"x": [1]}}, "variables.x must be a string, number or boolean"),
        ({"variables": {"x": None}}, "variables.x must be a string, number or boolean"),
        ({"variables": {"scene": "x"}}, "clashes with the standard variable"),
        ({"inputs": [{"src": "/a"}]}, "inputs[0] must be an object with exactly src and dst"),
        ({"inputs": [{"src": "a", "dst": "/b"}]}, "inputs[0].src must be an absolute path"),
        ({"inputs": {"src": "/a"}}, "inputs must be a list"),
        ({"inputs": [{"src": "/a", "dst": "/a/b"}]}, "src and dst must not contain each other"),
        ({"progress_parser": "maya"}, "progress_parser must be one of blender, none"),
        ({"timeout": -1}, "timeout must be a number of seconds (0 or null: no limit)"),
        ({"stall_timeout": "10"}, "stall_timeout must be a number of seconds"),
        ({"kill_grace": -1}, "kill_grace must be a number of seconds >= 0"),
        ({"env": {"A": 1}}, "env.A must be a string"),
        ({"env": {"A=B": "x"}}, "env name 'A=B' is not a valid"),
        ({"job": [1]}, "job must be an integer or a string"),
    ],
)
def test_each_problem_is_clear(
    make_spec: SpecFactory, overrides: dict[str, Any], message: str
) -> None:
    found = problems(make_spec(**overrides))
    assert len(found) == 1, found
    assert message in found[0]


def test_every_problem_at_once(make_spec: SpecFactory) -> None:
    found = problems(make_spec(cpus=0, frames=[2, 1], timeout=-1, extra=1))
    assert len(found) == 4, found


def test_load_spec_from_file_and_stdin(tmp_path: Path, make_spec: SpecFactory) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(make_spec()))
    assert load_spec(str(path)).cpus == 2
    assert load_spec("-", io.StringIO(json.dumps(make_spec(cpus=4)))).cpus == 4


def test_load_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_spec(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(str(bad))
    nan = tmp_path / "nan.json"
    nan.write_text('{"timeout": NaN}')
    with pytest.raises(SpecError, match="timeout must be a number of seconds"):
        load_spec(str(nan))
