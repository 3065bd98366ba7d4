"""Parameter values given at submission (CLI --param k=v, the form, JSON) and their types."""

from __future__ import annotations

import math
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from images.parameters import MAX_VALUE_LENGTH, coerce_values, validate_definitions

DEFINITIONS = validate_definitions(
    [
        {"name": "samples", "type": "int", "default": 64},
        {"name": "scale", "type": "float", "default": 1.0},
        {"name": "denoise", "type": "bool", "default": False},
        {"name": "engine", "type": "choice", "choices": ["CYCLES", "EEVEE"], "default": "CYCLES"},
        {"name": "note", "type": "string"},
        {"name": "camera", "type": "string", "required": True},
    ]
)


def problems(values: dict[str, Any], definitions: list[dict[str, Any]] = DEFINITIONS) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        coerce_values(definitions, values)
    return raised.value.messages


def test_it_fills_in_defaults() -> None:
    assert coerce_values(DEFINITIONS, {"camera": "cam_main"}) == {
        "samples": 64,
        "scale": 1.0,
        "denoise": False,
        "engine": "CYCLES",
        "note": "",
        "camera": "cam_main",
    }


def test_it_coerces_text_to_each_type() -> None:
    values = coerce_values(
        DEFINITIONS,
        {
            "samples": " 128 ",
            "scale": "0.5",
            "denoise": "yes",
            "engine": "EEVEE",
            "note": "final pass",
            "camera": "cam_b",
        },
    )
    assert values == {
        "samples": 128,
        "scale": 0.5,
        "denoise": True,
        "engine": "EEVEE",
        "note": "final pass",
        "camera": "cam_b",
    }
    assert type(values["samples"]) is int
    assert type(values["scale"]) is float


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[("1", True), ("true", True), ("On", True), ("YES", True), (True, True)],
        *[("0", False), ("false", False), ("off", False), ("No", False), (False, False)],
    ],
)
def test_booleans_read_like_people_write_them(text: Any, value: bool) -> None:
    assert coerce_values(DEFINITIONS, {"camera": "c", "denoise": text})["denoise"] is value


def test_json_values_of_the_right_type_pass() -> None:
    values = coerce_values(DEFINITIONS, {"camera": "c", "samples": 12, "scale": 3, "denoise": True})
    assert (values["samples"], values["scale"], values["denoise"]) == (12, 3.0, True)


def test_an_empty_value_means_the_default() -> None:
    assert coerce_values(DEFINITIONS, {"camera": "c", "samples": ""})["samples"] == 64


def test_a_required_parameter_must_be_given() -> None:
    assert problems({}) == ["Parameter 'camera' is required."]
    assert problems({"camera": ""}) == ["Parameter 'camera' is required."]


def test_unknown_names_are_listed_with_the_known_ones() -> None:
    [message] = problems({"camera": "c", "sampels": "10"})
    assert message == (
        "Unknown parameter 'sampels' (this software takes: "
        "camera, denoise, engine, note, samples, scale)."
    )


def test_a_software_without_parameters_says_so() -> None:
    assert problems({"x": "1"}, []) == ["Unknown parameter 'x' (this software takes: none)."]


@pytest.mark.parametrize(
    ("name", "raw", "fragment"),
    [
        ("samples", "12.5", "must be a whole number"),
        ("samples", "1e3", "must be a whole number"),
        ("samples", "1_000", "must be a whole number"),
        ("samples", True, "must be a whole number"),
        ("samples", "9" * 19, "must be a whole number"),
        ("scale", "fast", "must be a number"),
        ("scale", "nan", "must be a finite number"),
        ("scale", "1e999", "must be a finite number"),
        ("denoise", "maybe", "must be yes or no"),
        ("engine", "cycles", "must be one of CYCLES, EEVEE"),
        ("note", "a\nb", "must not contain control characters"),
        ("note", "x" * (MAX_VALUE_LENGTH + 1), f"longer than {MAX_VALUE_LENGTH}"),
    ],
)
def test_it_rejects_values_of_the_wrong_type(name: str, raw: Any, fragment: str) -> None:
    [message] = problems({"camera": "c", name: raw})
    assert message.startswith(f"Parameter '{name}' ")
    assert fragment in message


def test_it_reports_every_problem_at_once() -> None:
    messages = problems({"samples": "many", "scale": "big", "bogus": "1"})
    assert len(messages) == 4  # unknown name, two bad values, missing camera
    assert any("bogus" in m for m in messages)
    assert any("camera" in m for m in messages)


INT_ONLY = [{"name": "n", "type": "int"}]
FLOAT_ONLY = [{"name": "x", "type": "float"}]


@given(st.text(max_size=40))
def test_any_text_for_an_int_is_an_int_or_a_validation_error(text: str) -> None:
    try:
        value = coerce_values(INT_ONLY, {"n": text})["n"]
    except ValidationError as exc:
        assert exc.messages and all(m.startswith("Parameter 'n' ") for m in exc.messages)
    else:
        assert value == "" or type(value) is int
        if value != "":
            assert abs(value) < 10**18


@given(st.text(alphabet="0123456789+- \t", max_size=25))
def test_digit_strings_become_the_int_they_spell(text: str) -> None:
    try:
        value = coerce_values(INT_ONLY, {"n": text})["n"]
    except ValidationError:
        return
    assert value == "" or value == int(text.strip())


@given(st.text(max_size=40) | st.floats().map(repr))
def test_any_text_for_a_float_is_a_finite_float_or_a_validation_error(text: str) -> None:
    try:
        value = coerce_values(FLOAT_ONLY, {"x": text})["x"]
    except ValidationError:
        return
    assert value == "" or (type(value) is float and math.isfinite(value))
