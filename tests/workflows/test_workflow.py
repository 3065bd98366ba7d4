"""manage.py workflow ID: the run's facts and its calls table."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_it_shows_the_run_and_its_calls(call: Any, finished_run: Any) -> None:
    out = call("workflow", str(finished_run.pk)).out

    assert f"run:         #{finished_run.pk} tiny" in out
    assert "state:       succeeded (succeeded)" in out
    assert f"outputs dir: {finished_run.outputs_dir}" in out
    table = out.split("\n\n", 1)[1].splitlines()
    assert table[0].split() == [
        "CALL",
        "SHARD",
        "ATTEMPT",
        "STATUS",
        "STARTED",
        "DURATION",
        "RC",
        "NOTE",
    ]
    assert sorted(line.split()[:4] for line in table[1:]) == [
        ["tiny.greet", "0", "1", "Done"],
        ["tiny.greet", "1", "1", "Done"],
    ]


def test_it_shows_the_failure(call: Any, submit: Any) -> None:
    from workflows import services

    run = submit(
        "version 1.0\nworkflow w { call t }\ntask t { command <<< echo no >&2; exit 1 >>> }\n"
    )
    services.start_run(run.pk, "here")

    out = call("workflow", f"#{run.pk}").out

    assert (
        "failure:     w.t failed (attempt 1, task t at main WDL line 3): exit status 1: no" in out
    )
    assert "exit status 1: no" in out.split("\n\n", 1)[1]


def test_a_run_not_visible_reads_as_missing(call: Any, finished_run: Any, charlie: Any) -> None:
    with pytest.raises(CommandError, match=f"There is no workflow run #{finished_run.pk}."):
        call("workflow", str(finished_run.pk), "--as-user", "charlie")
    with pytest.raises(CommandError, match=r"There is no workflow run #999\."):
        call("workflow", "999")
