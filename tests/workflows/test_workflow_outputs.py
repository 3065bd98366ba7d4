"""manage.py workflow_outputs ID: files by storage URL, then plain values."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_it_lists_output_files_and_values(call: Any, finished_run: Any) -> None:
    out = call("workflow_outputs", str(finished_run.pk)).out

    files, values = out.split("\n\n")
    rows = [line.split() for line in files.splitlines()]
    assert rows[0] == ["OUTPUT", "URL"]
    assert rows[1] == ["tiny.files[0]", finished_run.outputs_dir + "files/0/greeting.txt"]
    assert [line.split(None, 1) for line in values.splitlines()][1] == [
        "tiny.lines",
        '["hello 0", "hello 1"]',
    ]


def test_json_prints_the_outputs_as_stored(call: Any, finished_run: Any) -> None:
    assert json.loads(call("workflow_outputs", str(finished_run.pk), "--json").out) == (
        finished_run.outputs
    )


def test_a_run_without_outputs_says_why(call: Any, submit: Any, tiny_wdl: str) -> None:
    run = submit(tiny_wdl)

    out = call("workflow_outputs", str(run.pk)).out

    assert out == f"Workflow run #{run.pk} has no outputs (it has not succeeded yet).\n"
