"""API fixtures: token clients for the personas; the webhook receiver and a job come from
tests/notifications/fixtures.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from api import services
from tests.notifications.fixtures import (  # noqa: F401 (fixtures)
    _http_webhooks_to_localhost,
    job,
    queued,
    receiver,
    webhook,
)


@pytest.fixture
def token_client() -> Callable[..., APIClient]:
    """``token_client(user, **create_token kwargs)``: a client sending that user's new key."""

    def make(user: Any, scheme: str = "Token", **kwargs: Any) -> APIClient:
        _token, key = services.create_token(user, "tests", **kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
        return client

    return make


HELLO_WDL = """version 1.0

workflow hello {
  input {
    String who = "world"
  }
  call greet { input: who = who }
  output {
    File greeting = greet.out
  }
}

task greet {
  input {
    String who
  }
  command <<<
    echo "hello ~{who}" > greeting.txt
  >>>
  output {
    File out = "greeting.txt"
  }
}
"""


@pytest.fixture(autouse=True)
def _workflow_dir(settings: Any, _private_dirs: Any) -> None:
    settings.WORKFLOW_WORK_DIR = _private_dirs / "workflows"


@pytest.fixture
def workflow_run(project: Any, bob: Any) -> Any:
    """A run bob submitted (no worker: it stays submitted)."""
    from tests.workflows.grants import grant_run_on_host
    from workflows import services as workflow_services

    grant_run_on_host(bob)  # miniwdl runs tasks on this machine: workflows.run_on_host
    return workflow_services.submit(
        workflow_services.WorkflowRequest(project=project, wdl_source=HELLO_WDL), user=bob
    )
