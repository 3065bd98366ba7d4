"""WDL imports cannot make the manager fetch or read what it should not (issue 17, item 1).

URL imports are fetched only from hosts an administrator listed (WORKFLOW_IMPORT_HOSTS,
empty by default), at most WORKFLOW_IMPORT_MAX_BYTES, within WORKFLOW_IMPORT_TIMEOUT; a
redirect is followed only to a listed host. Local imports stay in the main WDL's folder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.wdl_server import WdlServer, wdl_server
from workflows import services
from workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db

UTIL = "version 1.0\ntask t {\n  command <<< echo hi >>>\n}\n"


def source(url: str) -> str:
    return f'version 1.0\nimport "{url}" as lib\nworkflow w {{ call lib.t }}\n'


@pytest.fixture
def submit(project: Any) -> Any:
    def submit(text: str, **fields: Any) -> Any:
        return services.submit(services.WorkflowRequest(project=project, wdl_source=text, **fields))

    return submit


@pytest.fixture
def call() -> Any:
    from io import StringIO

    from django.core.management import call_command

    return lambda *args: call_command(*args, stdout=StringIO(), stderr=StringIO())


@pytest.fixture
def server() -> Iterator[WdlServer]:
    with wdl_server() as server:
        server.files["/util.wdl"] = UTIL
        yield server


def refusal(submit: Any, url: str) -> str:
    with pytest.raises(services.SubmissionError) as refused:
        submit(source(url))
    assert not WorkflowRun.objects.exists()
    (message,) = refused.value.message_dict["wdl"]
    return message


def test_by_default_no_host_is_allowed(submit: Any, server: WdlServer) -> None:
    message = refusal(submit, f"{server.url}/util.wdl")

    assert message == (
        f"{server.url}/util.wdl: its host is not allowed for WDL imports; an administrator "
        "can list it in the WORKFLOW_IMPORT_HOSTS setting."
    )
    assert server.requests == []


def test_a_host_not_in_the_list_is_refused(submit: Any, server: WdlServer, settings: Any) -> None:
    settings.WORKFLOW_IMPORT_HOSTS = ["raw.githubusercontent.com", "http://127.0.0.2:80"]

    assert "is not allowed" in refusal(submit, f"{server.url}/util.wdl")
    assert server.requests == []


def test_a_host_listed_for_https_is_not_fetched_over_plain_http(
    submit: Any, server: WdlServer, settings: Any
) -> None:
    settings.WORKFLOW_IMPORT_HOSTS = [server.host]

    assert "is not allowed" in refusal(submit, f"{server.url}/util.wdl")
    assert server.requests == []


def test_an_oversized_import_is_refused(submit: Any, server: WdlServer, settings: Any) -> None:
    settings.WORKFLOW_IMPORT_HOSTS = [f"http://{server.host}"]
    settings.WORKFLOW_IMPORT_MAX_BYTES = 100_000

    message = refusal(submit, f"{server.url}/big")

    assert message == (f"{server.url}/big is larger than 100000 bytes (WORKFLOW_IMPORT_MAX_BYTES).")


def test_a_redirect_to_a_host_not_allowed_is_not_followed(
    submit: Any, server: WdlServer, settings: Any
) -> None:
    with wdl_server() as elsewhere:
        elsewhere.files["/util.wdl"] = UTIL
        settings.WORKFLOW_IMPORT_HOSTS = [f"http://{server.host}"]
        url = f"{server.url}/redirect?to={elsewhere.url}/util.wdl"

        message = refusal(submit, url)

        assert message.startswith(f"{elsewhere.url}/util.wdl (redirected from {url}): its host")
        assert elsewhere.requests == []


def test_a_slow_server_is_given_up_on_time(submit: Any, server: WdlServer, settings: Any) -> None:
    settings.WORKFLOW_IMPORT_HOSTS = [f"http://{server.host}"]
    settings.WORKFLOW_IMPORT_TIMEOUT = 1.0
    started = time.monotonic()

    message = refusal(submit, f"{server.url}/slow")

    assert time.monotonic() - started < 5
    assert "took too long" in message or "could not be fetched" in message


def test_a_local_import_cannot_follow_a_symlink_out_of_the_wdls_folder(
    call: Any, tmp_path: Path, project: Any
) -> None:
    from django.core.management.base import CommandError

    secret = tmp_path / "secret.wdl"
    secret.write_text(UTIL)
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "lib.wdl").symlink_to(secret)
    (tmp_path / "wf" / "main.wdl").write_text(source("lib.wdl"))

    with pytest.raises(CommandError, match=r"lib.wdl \(imported by the main WDL\) is not next"):
        call("submit_workflow", str(tmp_path / "wf" / "main.wdl"), "--project", "shots")


def test_a_wdl_in_storage_cannot_import_from_above_its_folder(
    submit: Any, storage_root: Path, storage_url: str
) -> None:
    (storage_root / "scenes" / "wf").mkdir(parents=True)
    (storage_root / "scenes" / "lib.wdl").write_text(UTIL)
    (storage_root / "scenes" / "wf" / "main.wdl").write_text(source("../lib.wdl"))

    with pytest.raises(services.SubmissionError) as refused:
        submit("", wdl_url=storage_url + "scenes/wf/main.wdl")

    (message,) = refused.value.message_dict["wdl"]
    assert "is outside the main WDL's folder" in message
