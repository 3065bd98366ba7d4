"""Staff pages: members see their projects' runs; everyone else gets a 404 (or the login)."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.choices import RunState
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def as_bob(client: Any, bob: Any) -> Any:
    client.force_login(bob)
    return client


def pages(run: WorkflowRun) -> list[str]:
    base = f"/workflows/{run.pk}/"
    return [base, base + "logs/", base + "outputs/"]


def test_anonymous_users_are_sent_to_the_login(client: Any, finished_run: Any) -> None:
    for url in ["/workflows/", *pages(finished_run)]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_an_outsider_gets_404_and_an_empty_list(
    client: Any, finished_run: Any, charlie: Any
) -> None:
    client.force_login(charlie)

    for url in pages(finished_run):
        assert client.get(url).status_code == 404
    assert client.post(f"/workflows/{finished_run.pk}/abort/").status_code == 404
    assert client.post(f"/workflows/{finished_run.pk}/resubmit/").status_code == 404
    assert finished_run.name not in client.get("/workflows/").content.decode()
    assert WorkflowRun.objects.count() == 1


def test_the_list_shows_member_runs_with_filters(as_bob: Any, finished_run: Any) -> None:
    page = as_bob.get("/workflows/").content.decode()

    assert f'href="/workflows/{finished_run.pk}/"' in page
    assert "Succeeded" in page
    assert "No workflow runs match" in as_bob.get("/workflows/?state=failed").content.decode()


def test_the_detail_page_has_calls_and_a_timeline(as_bob: Any, finished_run: Any) -> None:
    page = as_bob.get(f"/workflows/{finished_run.pk}/").content.decode()

    assert page.count("tiny.greet</td>") == 2 or page.count(">tiny.greet") >= 2
    assert 'class="timeline"' in page
    assert page.count('class="span s-done"') == 2
    assert finished_run.outputs_dir in page
    assert "Resubmit" in page and ">Abort<" not in page


def test_the_logs_page_shows_a_calls_stderr_and_stdout(as_bob: Any, finished_run: Any) -> None:
    call = finished_run.calls.get(shard=1)

    stderr = as_bob.get(f"/workflows/{finished_run.pk}/logs/?call={call.pk}").content.decode()
    stdout = as_bob.get(
        f"/workflows/{finished_run.pk}/logs/?call={call.pk}&stream=stdout"
    ).content.decode()

    assert "greeting 1 on stderr" in stderr
    assert "hello 1" in stdout and "greeting 1" not in stdout


def test_the_outputs_page_links_the_files(as_bob: Any, finished_run: Any) -> None:
    page = as_bob.get(f"/workflows/{finished_run.pk}/outputs/").content.decode()

    assert "tiny.files[0]" in page and "greeting.txt" in page
    assert "Download</a>" in page
    assert "tiny.lines" in page


def test_abort_and_resubmit_from_the_page(
    host_runner: Any, as_bob: Any, submit: Any, tiny_wdl: str, finished_run: Any
) -> None:
    waiting = submit(tiny_wdl)

    response = as_bob.post(f"/workflows/{waiting.pk}/abort/")

    assert response.status_code == 302
    waiting.refresh_from_db()
    assert waiting.state == RunState.ABORTED
    response = as_bob.post(f"/workflows/{finished_run.pk}/resubmit/")
    new = WorkflowRun.objects.latest("id")
    assert response["Location"] == f"/workflows/{new.pk}/"
    assert new.resubmitted_from_id == finished_run.pk


def test_resubmitting_to_miniwdl_needs_the_permission(as_bob: Any, finished_run: Any) -> None:
    response = as_bob.post(f"/workflows/{finished_run.pk}/resubmit/", follow=True)

    assert "needs the permission" in response.content.decode()
    assert WorkflowRun.objects.count() == 1


def test_pages_only_answer_their_methods(as_bob: Any, finished_run: Any) -> None:
    assert as_bob.get(f"/workflows/{finished_run.pk}/abort/").status_code == 405
    assert as_bob.post(f"/workflows/{finished_run.pk}/").status_code == 405


def test_a_run_knows_its_page(finished_run: Any) -> None:
    assert finished_run.get_absolute_url() == f"/workflows/{finished_run.pk}/"
