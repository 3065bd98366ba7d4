"""Software: declarative command templates and parameter definitions, checked on save."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from images import parameters
from images.models import ComputeImage, Software
from renderhub.agent.template import TEMPLATE_VARIABLES, expand, standard_values

BLENDER = ["blender", "-b", "{scene}", "-o", "{output_pattern}", "-f", "{frame_list}"]


def software(**fields: Any) -> Software:
    """An unsaved Software on an unsaved image: clean() needs no database."""
    values: dict[str, Any] = {
        "image": ComputeImage(name="img", image_id="local"),
        "name": "blender",
        "scene_suffixes": ".blend",
        "command_template": BLENDER,
        "parameters": [],
    }
    values.update(fields)
    return Software(**values)


def errors_of(obj: Software) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        obj.clean()
    return raised.value.message_dict


def test_a_plain_template_is_valid() -> None:
    software().clean()


# --- scene suffixes ---------------------------------------------------------------------


@pytest.mark.parametrize("suffixes", [".blend", ".blend, .blend1", ".MA,.mb", ".c4d"])
def test_it_accepts_suffixes(suffixes: str) -> None:
    obj = software(scene_suffixes=suffixes)
    obj.clean()
    assert all(s.startswith(".") and s == s.lower() for s in obj.suffixes)


@pytest.mark.parametrize(
    ("suffixes", "named"),
    [("blend", "blend"), (".blend,ma", "ma"), (".ble nd", ".ble nd"), ("*.blend", "*.blend")],
)
def test_it_rejects_bad_suffixes(suffixes: str, named: str) -> None:
    [message] = errors_of(software(scene_suffixes=suffixes))["scene_suffixes"]
    assert f"({named} is not one)" in message


@pytest.mark.parametrize("suffixes", ["", " , ,"])
def test_it_wants_at_least_one_suffix(suffixes: str) -> None:
    [message] = errors_of(software(scene_suffixes=suffixes))["scene_suffixes"]
    assert "one or more suffixes" in message


def test_it_accepts_scenes_by_suffix_case_insensitively() -> None:
    obj = software(scene_suffixes=".blend,.blend1")
    assert obj.accepts_scene("shots/a.BLEND")
    assert obj.accepts_scene("a.blend1")
    assert not obj.accepts_scene("a.blend.zip")


# --- command templates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    ["blender -b {scene}", [], ["blender", 3], {"cmd": "blender"}, None, [["blender"]]],
)
def test_the_command_must_be_a_non_empty_list_of_strings(template: Any) -> None:
    [message] = errors_of(software(command_template=template))["command_template"]
    assert message == "The command must be a non-empty JSON list of strings."


def test_it_rejects_unknown_variables_and_names_the_known_ones() -> None:
    messages = errors_of(software(command_template=["blender", "{scene}", "{samples}"]))[
        "command_template"
    ]
    [message] = messages
    assert "unknown variable {samples}" in message
    assert "frame_list" in message  # the known variables are listed


def test_custom_parameters_are_known_variables() -> None:
    obj = software(
        command_template=["blender", "{scene}", "--samples", "{samples}"],
        parameters=[{"name": "samples", "type": "int", "default": 64}],
    )
    obj.clean()


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        ("{scene.x}", "attribute or index access"),
        ("{scene[0]}", "attribute or index access"),
        ("{scene.__class__}", "attribute or index access"),
        ("{scene!r}", "conversion !r"),
        ("{start:>4}", "format spec :>4"),
        ("{}", "positional field"),
        ("{0}", "positional field"),
        ("{scene", "(write {{ or }} for a literal brace)"),
    ],
)
def test_only_plain_variables_are_allowed(element: str, reason: str) -> None:
    messages = errors_of(software(command_template=["blender", element]))["command_template"]
    assert any(reason in m and "argument 2" in m for m in messages), messages


def test_literal_braces_are_allowed() -> None:
    software(command_template=["echo", "{{not a variable}}", "{scene}"]).clean()


def test_the_program_must_not_be_empty() -> None:
    messages = errors_of(software(command_template=["  ", "{scene}"]))["command_template"]
    assert any("program" in m for m in messages)


# --- parameter definitions --------------------------------------------------------------


def parameter_errors(definitions: Any) -> list[str]:
    return errors_of(software(parameters=definitions))["parameters"]


def test_it_rejects_a_parameter_defined_twice() -> None:
    messages = parameter_errors([{"name": "quality", "type": "int"}] * 2)
    assert "Parameter 'quality' is defined twice." in messages


@pytest.mark.parametrize("name", sorted(TEMPLATE_VARIABLES))
def test_it_rejects_a_parameter_named_like_a_built_in_variable(name: str) -> None:
    messages = parameter_errors([{"name": name, "type": "string"}])
    assert any(f"'{name}' clashes with the built-in" in m for m in messages)


@pytest.mark.parametrize("choices", [None, [], "PNG,JPEG", ["PNG", 3]])
def test_a_choice_parameter_needs_text_choices(choices: Any) -> None:
    definition = {"name": "format", "type": "choice"}
    if choices is not None:
        definition["choices"] = choices
    messages = parameter_errors([definition])
    assert messages == [
        "Parameter 'format': a choice parameter needs a non-empty list of text choices."
    ]


def test_only_choice_parameters_take_choices() -> None:
    messages = parameter_errors([{"name": "samples", "type": "int", "choices": ["1"]}])
    assert messages == ["Parameter 'samples': only choice parameters take 'choices'."]


@pytest.mark.parametrize(
    ("definition", "fragment"),
    [
        ({"name": "samples", "type": "int", "default": "many"}, "default must be a whole number"),
        ({"name": "samples", "type": "int", "default": 2.5}, "default must be a whole number"),
        ({"name": "scale", "type": "float", "default": "big"}, "default must be a number"),
        ({"name": "denoise", "type": "bool", "default": "perhaps"}, "default must be yes or no"),
        (
            {"name": "fmt", "type": "choice", "choices": ["PNG"], "default": "GIF"},
            "default must be one of PNG",
        ),
    ],
)
def test_it_rejects_a_default_of_the_wrong_type(definition: dict[str, Any], fragment: str) -> None:
    [message] = parameter_errors([definition])
    assert message.startswith(f"Parameter '{definition['name']}': ")
    assert fragment in message


@pytest.mark.parametrize(
    ("definitions", "fragment"),
    [
        ({"name": "x"}, "must be a JSON list"),
        (["samples"], "must be an object"),
        ([{"type": "int"}], "name must be lower-case"),
        ([{"name": "Samples", "type": "int"}], "name must be lower-case"),
        ([{"name": "samples", "type": "integer"}], "type must be one of"),
        ([{"name": "samples", "type": "int", "min": 1}], "unknown keys: min"),
        ([{"name": "samples", "type": "int", "required": "no"}], "required must be true or false"),
    ],
)
def test_it_rejects_malformed_definitions(definitions: Any, fragment: str) -> None:
    messages = parameter_errors(definitions)
    assert any(fragment in m for m in messages), messages


def test_it_reports_every_definition_problem_at_once() -> None:
    messages = parameter_errors(
        [
            {"name": "scene", "type": "string"},
            {"name": "fmt", "type": "choice"},
            {"name": "n", "type": "int", "default": "x"},
        ]
    )
    assert len(messages) == 3


def test_definitions_are_normalised_on_clean() -> None:
    obj = software(parameters=[{"name": "samples", "type": "int", "default": "64"}])
    obj.clean()
    assert obj.parameters == [
        {"name": "samples", "type": "int", "help": "", "required": False, "default": 64}
    ]


# --- the built-in Blender software (data migration) -------------------------------------


@pytest.mark.django_db
@pytest.mark.embedded
def test_the_migrated_blender_software_is_valid(blender_software: Software) -> None:
    before = list(blender_software.parameters)
    blender_software.full_clean()
    assert blender_software.parameters == before  # already normalised
    assert blender_software.image.platform == "linux"
    assert blender_software.accepts_scene("/mnt/scenes/shot.blend")


@pytest.mark.django_db
def test_the_migrated_blender_command_expands_safely(blender_software: Software) -> None:
    values = parameters.coerce_values(blender_software.parameters, {"format": "OPEN_EXR"})
    frames = [1, 2, 3, 7]
    argv = expand(
        blender_software.command_template,
        {
            **standard_values(
                scene="/mnt/scenes/shot a; rm -rf ~.blend",
                frames=frames,
                cpus=4,
                output_dir="/tmp/renderhub/output/",
                output_name="shot_####",
            ),
            **values,
        },
    )
    assert argv[0] == "blender"
    assert "--disable-autoexec" in argv
    # Autoexec is off before anything from the scene can run: right after the scene.
    assert argv.index("--disable-autoexec") == argv.index("/mnt/scenes/shot a; rm -rf ~.blend") + 1
    assert argv[argv.index("-f") + 1] == "1..3,7"
    assert argv[-2:] == ["-f", "1..3,7"]
    assert argv[argv.index("-F") + 1] == "OPEN_EXR"
    assert argv[argv.index("-E") + 1] == "CYCLES"  # the default
    assert argv[argv.index("-t") + 1] == "4"
    assert argv[argv.index("-o") + 1] == "/tmp/renderhub/output/shot_####"
    assert len(argv) == len(blender_software.command_template)  # one element per element


# --- the admin --------------------------------------------------------------------------


@pytest.fixture
def admin_client(client: Any, django_user_model: Any) -> Any:
    alice = django_user_model.objects.create_superuser("alice", "alice@example.com", "pw-alice-1")
    client.force_login(alice)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/admin/images/computeimage/",
        "/admin/images/computeimage/add/",
        "/admin/images/computeimage/{image}/change/",
        "/admin/images/software/",
        "/admin/images/software/add/",
        "/admin/images/software/{software}/change/",
    ],
)
def test_the_admin_pages_open(admin_client: Any, blender_software: Software, url: str) -> None:
    response = admin_client.get(
        url.format(image=blender_software.image_id, software=blender_software.pk)
    )
    assert response.status_code == 200
    text = response.content.decode()
    if "/change/" in url or url.endswith("computeimage/"):
        assert "blender" in text


@pytest.mark.django_db
def test_the_software_page_explains_the_template_variables(
    admin_client: Any, blender_software: Software
) -> None:
    text = admin_client.get(f"/admin/images/software/{blender_software.pk}/change/").content
    for name in TEMPLATE_VARIABLES:
        assert f"<code>{{{name}}}</code>".encode() in text


@pytest.mark.django_db
def test_the_admin_refuses_an_unsafe_template(admin_client: Any, image: ComputeImage) -> None:
    response = admin_client.post(
        "/admin/images/software/add/",
        {
            "image": image.pk,
            "name": "maya",
            "version": "2025",
            "scene_suffixes": ".ma,.mb",
            "command_template": '["Render", "-r", "{scene.__class__}", "{scene}"]',
            "parameters": "[]",
            "progress_parser": "none",
        },
    )
    assert response.status_code == 200
    assert "attribute or index access" in response.content.decode()
    assert not Software.objects.filter(name="maya").exists()


@pytest.mark.django_db
def test_the_admin_saves_a_valid_software(admin_client: Any, image: ComputeImage) -> None:
    response = admin_client.post(
        "/admin/images/software/add/",
        {
            "image": image.pk,
            "name": "maya",
            "version": "2025",
            "scene_suffixes": ".ma,.mb",
            "command_template": '["Render", "-r", "{renderer}", "{scene}"]',
            "parameters": '[{"name": "renderer", "type": "choice", "choices": ["arnold"]}]',
            "progress_parser": "none",
        },
    )
    assert response.status_code == 302
    maya = Software.objects.get(name="maya")
    assert maya.parameters[0]["required"] is False  # stored normalised


# --- a bad parameter is reported once ---------------------------------------------------


@pytest.mark.parametrize(
    "definition",
    [
        {"name": "engine", "type": "choice"},  # no choices
        {"name": "engine", "type": "int", "default": "fast"},
        {"name": "engine", "type": "integer"},
        {"name": "engine", "type": "string", "required": "no"},
    ],
)
def test_a_bad_parameter_is_not_also_an_unknown_variable(definition: dict[str, Any]) -> None:
    errors = errors_of(
        software(command_template=["blender", "-E", "{engine}"], parameters=[definition])
    )
    assert errors["parameters"]
    assert "command_template" not in errors


def test_with_bad_parameters_the_command_still_reports_its_own_problems() -> None:
    errors = errors_of(
        software(
            command_template=["blender", "{engine}", "{samples}", "{scene!r}"],
            parameters=[{"name": "engine", "type": "choice"}, {"name": "Bad Name"}],
        )
    )
    problems = errors["command_template"]
    assert any(p.startswith("unknown variable {samples}") for p in problems)
    assert any("conversion !r" in p for p in problems)
    assert not any("{engine}" in p for p in problems)
