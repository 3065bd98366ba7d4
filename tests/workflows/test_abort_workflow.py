"""manage.py abort_workflow ID."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from workflows.choices import RunState
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_it_aborts_a_run_that_has_not_started(call: Any, submit: Any, tiny_wdl: str) -> None:
    run = submit(tiny_wdl)

    assert call("abort_workflow", str(run.pk)).out == f"Workflow run #{run.pk} is aborted.\n"
    assert WorkflowRun.objects.get().state == RunState.ABORTED


def test_a_running_run_is_aborting_until_its_engine_stops(
    call: Any, submit: Any, tiny_wdl: str
) -> None:
    run = submit(tiny_wdl)
    WorkflowRun.objects.filter(pk=run.pk).update(state=RunState.RUNNING)

    assert call("abort_workflow", str(run.pk)).out == f"Workflow run #{run.pk} is aborting.\n"


def test_an_ended_run_is_left_alone(call: Any, finished_run: Any) -> None:
    out = call("abort_workflow", str(finished_run.pk)).out

    assert out == f"Workflow run #{finished_run.pk} is already succeeded; nothing to abort.\n"


def test_an_outsider_cannot_abort(call: Any, submit: Any, tiny_wdl: str, charlie: Any) -> None:
    run = submit(tiny_wdl)

    with pytest.raises(CommandError, match="There is no workflow run"):
        call("abort_workflow", str(run.pk), "--as-user", "charlie")
    assert WorkflowRun.objects.get().state == RunState.SUBMITTED
