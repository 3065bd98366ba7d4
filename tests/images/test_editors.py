"""The command and parameter editors: rows round-trip to the same JSON, indented JSON is
still accepted, and errors name the argument or parameter they are about."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.http import QueryDict

from images.catalogue import CATALOGUE
from images.editors import PARAMETER_COLUMNS
from images.forms import SoftwareForm
from images.models import ComputeImage, Software

pytestmark = pytest.mark.django_db

BLENDER = next(entry for entry in CATALOGUE if entry.key == "blender")


def rows_post(
    image: ComputeImage,
    command: list[str],
    params: list[dict[str, Any]],
    prefix: str = "",
    **extra: Any,
) -> QueryDict:
    """What a browser posts from the rows (no JavaScript needed), blank rows included."""
    p = f"{prefix}-" if prefix else ""
    data = QueryDict(mutable=True)
    fields = {"image": image.pk, "name": "blender-x", "version": "3.4 LTS"}
    fields |= {"scene_suffixes": ".blend", "progress_parser": "blender"}
    for key, value in {**fields, **extra}.items():
        data[p + key] = str(value)
    data[p + "command_template__rows"] = "1"
    data.setlist(p + "command_template", [*command, "", "  "])
    data[p + "parameters__rows"] = "1"
    for column in PARAMETER_COLUMNS:
        cells = [_cell(param, column) for param in params]
        data.setlist(f"{p}parameters__{column}", [*cells, "", ""])
    return data


def _cell(param: dict[str, Any], column: str) -> str:
    value = param.get(column, "")
    if column == "choices":
        return ", ".join(value)
    if column == "required":
        return "required" if value else ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def test_rows_round_trip_to_the_catalogues_json(image: ComputeImage) -> None:
    form = SoftwareForm(rows_post(image, BLENDER.command, BLENDER.parameters))
    assert form.is_valid(), form.errors
    software = form.save()
    software.refresh_from_db()
    assert software.command_template == BLENDER.command
    assert [p["name"] for p in software.parameters] == ["engine", "format", "device"]
    assert software.parameters[0] == {
        "name": "engine",
        "type": "choice",
        "choices": ["CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH"],
        "default": "CYCLES",
        "help": "Render engine (EEVEE and Workbench need a GPU on the node).",
        "required": False,
    }


def test_the_edit_form_shows_every_argument_and_parameter_as_a_row(image: ComputeImage) -> None:
    software = Software.objects.create(
        image=image,
        name="odd",
        command_template=["render er", "--name=«ü»", "{scene}", "{{literal}}"],
        parameters=[
            {"name": "flag", "type": "bool", "default": True, "help": 'say "yes"'},
            {"name": "n", "type": "int", "default": 0, "required": True},
        ],
    )
    html = str(SoftwareForm(instance=software)["command_template"]) + str(
        SoftwareForm(instance=software)["parameters"]
    )
    for arg in ("render er", "--name=«ü»", "{scene}", "{{literal}}"):
        assert f'name="command_template" value="{arg}"' in html
    assert 'name="parameters__name" value="flag"' in html
    assert 'name="parameters__default" value="yes"' in html  # a yes/no default
    assert 'name="parameters__help" value="say &quot;yes&quot;"' in html
    assert 'name="parameters__default" value="0"' in html
    assert '<option value="required" selected>' in html
    # Posting the form back unchanged saves the same values.
    data = rows_post(image, software.command_template, software.parameters, name="odd", version="")
    form = SoftwareForm(data, instance=software)
    assert form.is_valid(), form.errors
    assert "command_template" not in form.changed_data
    assert "parameters" not in form.changed_data
    saved = form.save()
    assert saved.command_template == ["render er", "--name=«ü»", "{scene}", "{{literal}}"]
    assert [p["default"] for p in saved.parameters] == [True, 0]
    assert saved.parameters[1]["required"] is True


def test_the_command_rows_keep_their_order_and_spaces(image: ComputeImage) -> None:
    command = ["renderer", "{scene}", "  padded  ", "-o", "{output_pattern}"]
    form = SoftwareForm(rows_post(image, command, []))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["command_template"] == command


def test_indented_json_from_the_advanced_box_is_accepted(image: ComputeImage) -> None:
    data = rows_post(image, ["ignored"], [])
    data["command_template__use_json"] = "1"
    data["command_template__json"] = json.dumps(BLENDER.command, indent=4)
    data["parameters__use_json"] = "1"
    data["parameters__json"] = json.dumps(BLENDER.parameters, indent=2)
    form = SoftwareForm(data)
    assert form.is_valid(), form.errors
    software = form.save()
    assert software.command_template == BLENDER.command
    assert len(software.parameters) == 3


def test_bad_json_in_the_advanced_box_says_where(image: ComputeImage) -> None:
    data = rows_post(image, ["blender"], [])
    data["parameters__use_json"] = "1"
    data["parameters__json"] = '[\n  {"name": "x",}\n]'
    form = SoftwareForm(data)
    assert not form.is_valid()
    [message] = form.errors["parameters"]
    assert message.startswith("This is not valid JSON:") and "line 2" in message
    # The text comes back as typed, in the advanced box, still ticked.
    html = str(form["parameters"])
    assert "{&quot;name&quot;: &quot;x&quot;,}" in html
    assert 'name="parameters__use_json" value="1" data-use-json checked' in html


def test_a_removed_row_is_left_out_without_javascript(image: ComputeImage) -> None:
    params = [{"name": "a", "type": "string"}, {"name": "b", "type": "string"}]
    data = rows_post(image, ["r", "{a}", "{b}"], params)
    data.setlist("command_template", ["r", "{b}"])
    data["parameters__delete"] = "1"  # the first row's "remove" box
    form = SoftwareForm(data)
    assert form.is_valid(), form.errors
    assert [p["name"] for p in form.cleaned_data["parameters"]] == ["b"]


def test_errors_name_the_argument_and_the_parameter(image: ComputeImage) -> None:
    params = [{"name": "engine", "type": "choice"}]  # no choices: invalid
    form = SoftwareForm(rows_post(image, ["blender", "-E", "{engine}", "{scene.x}"], params))
    assert not form.is_valid()
    assert form.errors["parameters"] == [
        "Parameter 'engine': a choice parameter needs a non-empty list of text choices."
    ]
    # The knock-on "unknown variable {engine}" is gone; the real command problem stays.
    [problem] = form.errors["command_template"]
    assert problem.startswith("argument 4 ('{scene.x}')")
    assert "{engine}" not in problem


def test_unreadable_parameters_do_not_make_the_commands_variables_unknown(
    image: ComputeImage,
) -> None:
    data = rows_post(image, ["blender", "{engine}", "{scene}"], [])
    data["parameters__use_json"] = "1"
    data["parameters__json"] = '[{"name": "engine", "type": "choice", "choices": ["A"]'
    form = SoftwareForm(data)
    assert not form.is_valid()
    assert form.errors["parameters"][0].startswith("This is not valid JSON:")
    assert "command_template" not in form.errors


def test_a_variable_no_parameter_defines_is_still_unknown(image: ComputeImage) -> None:
    params = [{"name": "engine", "type": "choice"}]
    form = SoftwareForm(rows_post(image, ["blender", "{engine}", "{samples}"], params))
    assert not form.is_valid()
    [problem] = form.errors["command_template"]
    assert problem.startswith("unknown variable {samples}")


def test_an_empty_command_asks_for_the_program(image: ComputeImage) -> None:
    form = SoftwareForm(rows_post(image, [], []))
    assert not form.is_valid()
    assert form.errors["command_template"] == [
        "Give the command: the program in the first row, then one argument per row."
    ]


def test_the_variables_list_names_the_softwares_own_parameters(image: ComputeImage) -> None:
    form = SoftwareForm(initial={"parameters": BLENDER.parameters, "command_template": []})
    html = str(form["command_template"])
    for name in ("scene", "frame_list", "output_pattern", "engine", "format", "device"):
        assert f"<code>{{{name}}}</code>" in html
    # A posted form lists the parameters as posted (a new row's name included).
    posted = SoftwareForm(rows_post(image, ["r"], [{"name": "quality", "type": "int"}]))
    assert "<code>{quality}</code>" in str(posted["command_template"])


def test_the_rows_an_error_is_about_are_marked(image: ComputeImage) -> None:
    params = [
        {"name": "ok", "type": "string"},
        {"name": "engine", "type": "choice"},  # no choices
        {"name": "Bad", "type": "string"},  # a bad name: reported by number
    ]
    command = ["blender", "{ok}", "{scene!r}", "-x", "{samples}", "{samples}-2"]
    form = SoftwareForm(rows_post(image, command, params))
    assert not form.is_valid()
    html = str(form["command_template"])
    marked = [
        n
        for n, arg in enumerate(command, 1)
        if f'value="{arg}" aria-label="Argument {n}" aria-invalid' in html
    ]
    assert marked == [3, 5, 6]  # the bad field, and both uses of the unknown variable
    html = str(form["parameters"])
    assert html.count('<tr class="sw-row sw-error"') == 2
    assert 'value="engine" size="14" aria-label="Name" aria-invalid="true"' in html
    assert 'value="Bad" size="14" aria-label="Name" aria-invalid="true"' in html
    assert 'value="ok" size="14" aria-label="Name" aria-invalid' not in html


@pytest.mark.parametrize("value", ["5", '"text"', "null", '{"name": "x"}', "[1, 2]"])
def test_json_that_is_no_list_is_refused_not_a_crash(image: ComputeImage, value: str) -> None:
    data = rows_post(image, ["blender", "{scene}"], [])
    for editor in ("command_template", "parameters"):
        data[f"{editor}__use_json"] = "1"
        data[f"{editor}__json"] = value
    form = SoftwareForm(data)
    assert not form.is_valid()
    assert form.errors["parameters"] and form.errors["command_template"]
    str(form)  # and the editors render with the errors marked
