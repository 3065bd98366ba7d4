"""Nothing is submitted before the WDL, inputs, options and labels check out."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from workflows import validation
from workflows.validation import WorkflowInvalid

pytestmark = pytest.mark.embedded


def problems(source: str, inputs: Any = None, options: Any = None, **kwargs: Any) -> Any:
    with pytest.raises(WorkflowInvalid) as caught:
        validation.check(
            source, {} if inputs is None else inputs, {} if options is None else options, **kwargs
        )
    return caught.value.problems


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_it_describes_the_germline_demo(germline_wdl: str) -> None:
    checked = validation.check(germline_wdl, {"samples": ["a", "b", "c"]}, {})

    assert checked.info.name == "germline"
    assert checked.info.version == "1.0"
    # Keys come back fully qualified, as Cromwell wants them.
    assert checked.inputs == {"germline.samples": ["a", "b", "c"]}
    assert "germline.report" in checked.info.outputs
    names = {i.name: i for i in checked.info.inputs}
    assert names["germline.read_pairs"].type == "Int"
    assert not names["germline.read_pairs"].required


def test_a_syntax_error_names_its_line_and_column(germline_wdl: str) -> None:
    broken = germline_wdl.replace("call index_reference {", "call index_reference {{")

    (message,) = problems(broken)["wdl"]

    assert message.startswith("line 21, column ")
    assert "syntax error" in message
    assert len(message) < 250  # the parser's token dump is cut short


def test_type_errors_name_their_line_and_column(germline_wdl: str) -> None:
    broken = germline_wdl.replace("seed = seed + i + 1", "seed = sample + 1")

    assert problems(broken)["wdl"] == ["line 28, column 16: error: Unknown identifier sample"]


def test_an_unknown_type_is_an_error() -> None:
    source = "version 1.0\nworkflow w {\n  input {\n    Strin x\n  }\n}\n"

    assert problems(source)["wdl"] == ["line 4, column 5: error: Unknown type Strin"]


def test_every_input_problem_is_listed_at_once(germline_wdl: str) -> None:
    inputs = {
        "germline.samples": "not-a-list",
        "germline.seed": "seven",
        "germline.bogus": 1,
        "other.read_pairs": 5,
        "#comment": "ignored",
    }

    assert problems(germline_wdl, inputs)["inputs"] == [
        'germline.samples: expected Array[String], got "not-a-list".',
        'germline.seed: expected Int, got "seven".',
        "germline.bogus: germline has no input by that name.",
        "other.read_pairs: germline has no input by that name.",
    ]


def test_missing_required_inputs_are_listed() -> None:
    source = (
        "version 1.0\nworkflow w {\n  input {\n    File reads\n    Int n\n    Int m = 3\n  }\n}\n"
    )

    assert problems(source, {"w.m": 4})["inputs"] == [
        "w.reads: required input (File) is missing.",
        "w.n: required input (Int) is missing.",
    ]


def test_inputs_options_and_labels_must_be_objects(germline_wdl: str) -> None:
    found = problems(germline_wdl, inputs=[1], options=["x"], labels={"": "v", "k": 3})

    assert found["inputs"] == ["The inputs must be a JSON object of input names to values."]
    assert found["options"] == [
        'The options must be a JSON object (e.g. {"read_from_cache": false}).'
    ]
    assert found["labels"] == ["A label needs a name.", "Label 'k': the value must be text."]


def test_options_problems_are_reported_with_a_broken_wdl() -> None:
    found = problems("version 1.0\nworkflow {", options=[])

    assert set(found) == {"wdl", "options"}


def test_a_document_needs_a_workflow_or_one_task() -> None:
    source = "version 1.0\ntask a { command <<< true >>> }\ntask b { command <<< true >>> }\n"

    assert problems(source)["wdl"] == [
        "The WDL has no workflow; it must have one (or exactly one task)."
    ]


def test_file_values_are_collected_for_the_engines() -> None:
    source = "version 1.0\nworkflow w {\n  input {\n    File a\n    Array[File] b\n  }\n}\n"

    checked = validation.check(source, {"w.a": "oss://b/x.bam", "w.b": ["file:///y"]}, {})

    assert checked.files == ["oss://b/x.bam", "file:///y"]


def test_imports_come_from_the_dependencies_zip() -> None:
    task = 'version 1.0\ntask t {\n  command <<< echo hi >>>\n  output { String s = "x" }\n}\n'
    source = 'version 1.0\nimport "tasks/t.wdl" as lib\nworkflow w { call lib.t }\n'

    checked = validation.check(source, {}, {}, dependencies=zipped({"tasks/t.wdl": task}))

    assert checked.info.outputs == ["w.t.s"]
    assert problems(source)["wdl"] == [
        "line 2, column 1: Failed to import tasks/t.wdl "
        "(tasks/t.wdl is not among the imported files)"
    ]


def test_errors_inside_imports_name_the_file() -> None:
    task = "version 1.0\ntask t {\n  command <<< echo hi >>>\n  output { Int n = nope }\n}\n"
    source = 'version 1.0\nimport "t.wdl" as lib\nworkflow w { call lib.t }\n'

    (message,) = problems(source, dependencies=zipped({"t.wdl": task}))["wdl"]

    assert message == (
        "line 2, column 1: Failed to import t.wdl: "
        "t.wdl line 4, column 20: error: Unknown identifier nope"
    )


def test_imports_cannot_reach_outside_the_zip_or_the_network() -> None:
    for uri in ("../../../etc/hostname", "/etc/hostname", "https://example.com/x.wdl"):
        source = f'version 1.0\nimport "{uri}" as x\nworkflow w {{ call x.t }}\n'

        (message,) = problems(source)["wdl"]

        assert message.startswith(f"line 2, column 1: Failed to import {uri}")


def test_a_zip_that_would_write_outside_its_folder_is_refused() -> None:
    source = "version 1.0\nworkflow w {}\n"

    found = problems(source, dependencies=zipped({"../evil.wdl": "x"}))

    assert found["dependencies"] == ["The zip holds a file named '../evil.wdl'; refused."]
    assert problems(source, dependencies=b"not a zip")["dependencies"] == [
        "The dependencies file is not a zip."
    ]


def test_the_generated_gatk_bundle_typechecks() -> None:
    import json

    from workflows import demos

    inputs = demos.gatk_inputs("oss://bucket/gatk/", "OnDemand ecs.sn2ne.4xlarge img-gatk4")
    checked = validation.check(demos.GATK_WDL.read_text(), inputs, {})

    assert checked.info.name == "GatkSingleSample"
    assert all(f.startswith("oss://bucket/gatk/") for f in checked.files)
    assert json.loads(json.dumps(checked.inputs)) == inputs


def test_a_wrong_typed_required_input_is_not_also_missing() -> None:
    source = "version 1.0\nworkflow w {\n  input {\n    Int n\n    File reads\n  }\n}\n"

    found = problems(source, inputs={"w.n": "seven"})

    assert found["inputs"] == [
        'w.n: expected Int, got "seven".',
        "w.reads: required input (File) is missing.",
    ]
