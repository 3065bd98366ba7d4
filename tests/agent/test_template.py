"""Command templates: expansion, every rejection, and argv-shape properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderhub.agent.template import (
    TEMPLATE_VARIABLES,
    TemplateError,
    expand,
    frame_list,
    output_file_name,
    standard_values,
    validate_template,
)

BLENDER = [
    "blender",
    "-b",
    "{scene}",
    "-o",
    "{output_pattern}",
    "-t",
    "{cpus}",
    "-f",
    "{frame_list}",
]


def values(**custom: object) -> dict[str, object]:
    std = standard_values(
        scene="/proj/shots/a b.blend",
        frames=[1, 2, 3, 7],
        cpus=2,
        output_dir="/out",
        output_name="shot_####",
    )
    return {**std, **custom}


def test_standard_values() -> None:
    v = values()
    assert v["scene_dir"] == "/proj/shots"
    assert v["scene_name"] == "a b"
    assert (v["start"], v["end"], v["frame_count"]) == (1, 7, 4)
    assert v["frames"] == "1,2,3,7"
    assert v["frame_list"] == "1..3,7"
    assert v["output_pattern"] == "/out/shot_####"
    assert set(v) == set(TEMPLATE_VARIABLES)


def test_expand_blender_command() -> None:
    argv = expand(BLENDER, values())
    assert argv == [
        "blender",
        "-b",
        "/proj/shots/a b.blend",  # a space never splits an argument
        "-o",
        "/out/shot_####",
        "-t",
        "2",
        "-f",
        "1..3,7",
    ]


def test_expand_custom_values_and_escapes() -> None:
    template = ["r", "--engine={engine}", "{{literal}}", "{denoise}", "{scale}", "{seed}x{seed}"]
    argv = expand(template, values(engine="CYCLES", denoise=False, scale=0.5, seed=7))
    assert argv == ["r", "--engine=CYCLES", "{literal}", "false", "0.5", "7x7"]
    assert expand(["{flag}"], {"flag": True}) == ["true"]


@pytest.mark.parametrize(
    ("frames", "expected"),
    [([5], "5"), ([1, 2], "1,2"), ([1, 2, 3], "1..3"), ([1, 3, 4, 5, 9, 10], "1,3..5,9,10")],
)
def test_frame_list(frames: list[int], expected: str) -> None:
    assert frame_list(frames) == expected


def test_output_file_name_pads() -> None:
    assert output_file_name("shot_####", 7) == "shot_0007"
    assert output_file_name("s_#_x", 123) == "s_123_x"
    assert output_file_name("take#2_##", 5) == "take#2_05"  # the last run, like Blender


@pytest.mark.parametrize(
    ("element", "fragment"),
    [
        ("{scene.name}", "attribute or index access"),
        ("{scene[0]}", "attribute or index access"),
        ("{scene!r}", "conversion !r"),
        ("{cpus:>4}", "format spec :>4"),
        ("{cpus:{scene}}", "format spec"),
        ("{}", "positional field"),
        ("{0}", "positional field"),
        ("{nope}", "unknown variable {nope}"),
        ("{scene", "brace"),
        ("scene}", "brace"),
        ("{a-b}", "not a valid variable name"),
    ],
)
def test_validate_rejects(element: str, fragment: str) -> None:
    errors = validate_template(["blender", element], [])
    assert len(errors) == 1, errors
    assert fragment in errors[0]
    assert "argument 2" in errors[0] or "unknown variable" in errors[0]
    with pytest.raises(TemplateError):
        expand(["blender", element], values())


def test_validate_accepts_custom_names() -> None:
    assert validate_template(["r", "{engine}", "{scene}"], ["engine"]) == []
    assert validate_template(BLENDER, []) == []


def test_validate_custom_name_problems() -> None:
    errors = validate_template(["r"], ["scene", "2x", "ok_name"])
    assert any("clashes with the standard variable" in e for e in errors)
    assert any("'2x'" in e for e in errors)
    assert len(errors) == 2


def test_validate_command_shape() -> None:
    assert validate_template([], []) == ["the command is empty"]
    assert "the first argument (the program) is empty" in validate_template(["  ", "x"], [])
    assert "argument 2 is a int, not a string" in validate_template(["r", 3], [])  # type: ignore[list-item]


def test_validate_reports_every_problem() -> None:
    errors = validate_template(["r", "{a.b}", "{c!s}", "{d}"], [])
    assert len(errors) == 3


def test_expand_rejects_list_values() -> None:
    with pytest.raises(TemplateError, match="is a list"):
        expand(["r", "{frames_}"], {"frames_": [1, 2]})


def test_expand_rejects_nan_and_none() -> None:
    with pytest.raises(TemplateError):
        expand(["{x}"], {"x": float("nan")})
    with pytest.raises(TemplateError):
        expand(["{x}"], {"x": None})


# --- properties ---------------------------------------------------------------------------

NAMES = ["a", "b", "engine"]
# Any text at all, including spaces, quotes, braces, newlines and shell syntax.
VALUE = st.one_of(
    st.text(), st.integers(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False)
)
LITERAL = st.text().map(lambda s: s.replace("{", "{{").replace("}", "}}"))
ELEMENT = st.lists(
    st.one_of(LITERAL, st.sampled_from([f"{{{n}}}" for n in NAMES])), max_size=4
).map("".join)


@given(
    template=st.lists(ELEMENT, min_size=1, max_size=8),
    vals=st.fixed_dictionaries({n: VALUE for n in NAMES}),
)
def test_expand_never_changes_argv_length(template: list[str], vals: dict[str, object]) -> None:
    assert len(expand(template, vals)) == len(template)


def escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


@given(value=st.text(), prefix=st.text(), suffix=st.text())
def test_value_is_never_split_or_interpreted(value: str, prefix: str, suffix: str) -> None:
    argv = expand(["prog", f"{escape(prefix)}{{a}}{escape(suffix)}", "{a}"], {"a": value})
    # A value is copied verbatim into exactly the element that names it.
    assert argv == ["prog", prefix + value + suffix, value]


@given(element=st.text())
def test_validation_and_expansion_agree(element: str) -> None:
    """Whatever validate_template accepts, expand expands to one element; else it raises."""
    template = ["prog", element]
    vals = {name: "v" for name in TEMPLATE_VARIABLES}
    if validate_template(template, []):
        with pytest.raises(TemplateError):
            expand(template, vals)
    else:
        assert len(expand(template, vals)) == 2
