"""manage.py workflow_logs ID [--call NAME]: tails of every call, or one call's whole log."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_without_call_it_shows_each_calls_stderr_tail(call: Any, finished_run: Any) -> None:
    out = call("workflow_logs", str(finished_run.pk)).out

    assert "==> tiny.greet[0] attempt 1 Done: stderr (last 10 lines)\ngreeting 0 on stderr\n" in out
    assert "==> tiny.greet[1] attempt 1 Done: stderr (last 10 lines)\ngreeting 1 on stderr\n" in out


def test_with_call_it_shows_that_calls_whole_stdout(call: Any, finished_run: Any) -> None:
    out = call(
        "workflow_logs", str(finished_run.pk), "--call", "greet", "--shard", "1", "--stdout"
    ).out

    assert out == "==> tiny.greet[1] attempt 1 Done: stdout\nhello 1\n"


def test_an_unknown_call_lists_the_calls(call: Any, finished_run: Any) -> None:
    with pytest.raises(CommandError, match=r"has no call 'align' \(calls: tiny.greet\)"):
        call("workflow_logs", str(finished_run.pk), "--call", "align")


def test_logs_are_read_from_storage_once_copied(call: Any, finished_run: Any) -> None:
    import shutil

    from workflows.engines.miniwdl import run_dir

    shutil.rmtree(run_dir(finished_run))  # the worker's folder is gone; storage has the copy

    out = call("workflow_logs", str(finished_run.pk), "--call", "tiny.greet", "--shard", "0").out

    assert out == "==> tiny.greet[0] attempt 1 Done: stderr\ngreeting 0 on stderr\n"
