"""manage.py workflows: the table of runs, newest first, filtered."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.choices import RunState
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_it_lists_runs_with_their_calls(
    call: Any, finished_run: Any, submit: Any, tiny_wdl: str
) -> None:
    waiting = submit(tiny_wdl, name="later")

    out = call("workflows").out.splitlines()

    assert out[0].split() == [
        "ID",
        "NAME",
        "PROJECT",
        "ENGINE",
        "STATE",
        "CALLS",
        "STARTED",
        "DURATION",
    ]
    assert out[1].split()[:6] == [str(waiting.pk), "later", "shots", "miniwdl", "submitted", "-"]
    assert out[2].split()[:6] == [
        str(finished_run.pk),
        "tiny",
        "shots",
        "miniwdl",
        "succeeded",
        "2/2",
    ]


def test_it_filters_by_state_engine_and_project(
    call: Any, finished_run: Any, submit: Any, tiny_wdl: str
) -> None:
    submit(tiny_wdl, name="later")

    assert len(call("workflows", "--state", "succeeded").out.splitlines()) == 2
    assert call("workflows", "--engine", "cromwell").out == "No workflow runs.\n"
    assert len(call("workflows", "--project", "shots").out.splitlines()) == 3


def test_it_shows_only_what_a_user_may_see(call: Any, finished_run: Any, charlie: Any) -> None:
    assert call("workflows", "--as-user", "charlie").out == "No workflow runs.\n"


def test_it_says_when_there_are_more(call: Any, submit: Any, tiny_wdl: str) -> None:
    for _ in range(3):
        submit(tiny_wdl)
    WorkflowRun.objects.update(state=RunState.FAILED)

    out = call("workflows", "--limit", "2").out

    assert out.endswith("(showing the newest 2; use --limit for more)\n")
