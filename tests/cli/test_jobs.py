from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from jobs.models import RenderJob

from .conftest import render_task, start_task

pytestmark = pytest.mark.django_db


def lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_it_lists_jobs_newest_first_with_progress(run: Any, submit: Any, scene_url: str) -> None:
    old = submit(scene_url, name="old")
    new = submit(scene_url, "1-10", nodes=1, name="new")
    render_task(old.tasks.get(index=0))
    render_task(old.tasks.get(index=1), ok=False, frames=[25, 26, 27], reason="boom")

    rows = lines(run("jobs").out)

    assert rows[0] == ["ID", "NAME", "PROJECT", "STATE", "FRAMES", "STARTED", "DURATION"]
    assert rows[1] == [str(new.pk), "new", "shots", "queued", "0/10", "-", "-"]
    assert rows[2][:6] == [str(old.pk), "old", "shots", "failed", "27/48", "(21"]
    assert rows[2][6] == "failed)"
    assert rows[2][9].count(":") == 1  # a duration like 0:00
    assert len(rows) == 3


def test_it_filters_by_state_and_project(
    run: Any, submit: Any, scene_url: str, ads_job: RenderJob
) -> None:
    running = submit(scene_url, name="busy")
    start_task(running.tasks.first())
    submit(scene_url, name="waiting")

    assert [r[1] for r in lines(run("jobs", "--state", "running").out)[1:]] == ["busy"]
    assert [r[1] for r in lines(run("jobs", "--project", "ads").out)[1:]] == ["spot"]
    assert run("jobs", "--state", "finished").out == "No jobs.\n"
    with pytest.raises(CommandError, match="argument --state: invalid choice: 'done'"):
        run("jobs", "--state", "done")


def test_it_limits_the_list(run: Any, submit: Any, scene_url: str) -> None:
    for name in ("a", "b", "c"):
        submit(scene_url, "1", name=name)

    out = run("jobs", "--limit", "2").out

    assert [r[1] for r in lines(out)[1:3]] == ["c", "b"]
    assert out.endswith("(showing the newest 2; use --limit for more)\n")


def test_it_shows_a_user_only_their_projects(
    run: Any, submit: Any, scene_url: str, ads_job: RenderJob, alice: Any, bob: Any, charlie: Any
) -> None:
    submit(scene_url, name="shot-job")

    assert [r[1] for r in lines(run("jobs", "--as-user", "bob").out)[1:]] == ["shot-job"]
    assert [r[1] for r in lines(run("jobs", "--as-user", "dave").out)[1:]] == ["spot"]
    assert run("jobs", "--as-user", "charlie").out == "No jobs.\n"
    assert len(lines(run("jobs", "--as-user", "alice").out)) == 3  # a superuser sees both
    assert len(lines(run("jobs").out)) == 3  # and so does the operator
    with pytest.raises(CommandError, match=r"There is no project named 'ads' \(projects: shots\)"):
        run("jobs", "--project", "ads", "--as-user", "bob")


def test_it_says_when_the_project_does_not_exist(run: Any, project: Any) -> None:
    with pytest.raises(CommandError, match="There is no project named 'nope'"):
        run("jobs", "--project", "nope")
