"""The OpenAPI schema, its docs pages, and schemathesis fuzzing every operation (no 5xx)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from api import services
from api.models import ApiToken
from renderhub.wsgi import application
from tests.api.conftest import HELLO_WDL

pytestmark = pytest.mark.django_db
EXAMPLES = 15  # per operation and mode: about 850 requests in all
FRAME_SPECS = ["1-10", "7", "1-100x5", "1-3,9", "5-1", "1-1000000"]


def test_the_schema_needs_a_login_and_describes_the_token_auth(client, token_client, bob):
    assert client.get("/api/schema/").status_code == 401
    response = token_client(bob).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["tokenAuth"]["scheme"] == "bearer"
    assert {"/api/jobs/", "/api/jobs/{id}/frames/", "/api/clusters/{id}/resize/"} <= set(
        schema["paths"]
    )


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_are_served_locally_to_logged_in_users(client, bob, page):
    anonymous = client.get(page)
    assert anonymous.status_code == 302 and "/login/?next=" in anonymous["Location"]
    client.force_login(bob)
    html = client.get(page).content.decode()
    assert "/static/drf_spectacular_sidecar/" in html  # no CDN: this site serves the files
    assert "cdn.jsdelivr.net" not in html


def test_the_browsable_api_renders(client, bob, project):
    client.force_login(bob)
    response = client.get("/api/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and b"/api/jobs/" in response.content


# --- schemathesis -------------------------------------------------------------------------


@pytest.fixture
def api_key(alice: Any, job: Any, webhook: Any) -> str:
    """alice's key, with data to find: a job and a webhook for its events."""
    token, key = services.create_token(alice, "schemathesis")
    # DELETE /api/tokens/{id}/ must not revoke the key the fuzzing runs with.
    ApiToken.objects.filter(pk=token.pk).update(id=987_654_321)
    return key


@pytest.fixture
def known(job: Any, workflow_run: Any, alice: Any, scene_url: str) -> dict[str, Any]:
    """Existing ids per resource, and a valid submission, to steer half of the requests
    past the 404s and 400s that random values get."""
    decoy, _ = services.create_token(alice, "decoy")
    return {
        "ids": {
            "jobs": job.pk,
            "projects": job.project_id,
            "clusters": job.cluster_id,
            "software": job.software_id,
            "images": job.software.image_id,
            "tokens": decoy.pk,
            "workflows": workflow_run.pk,
        },
        "submission": {
            "project": job.project.name,
            "software": job.software.name,
            "cluster": job.cluster.name,
            "scenes": [scene_url],
        },
        "workflow": {"project": job.project.name, "wdl_source": HELLO_WDL},
    }


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """The real WSGI app, keeping the test's database connection open between requests
    (as Django's test client does: the app would close it at each request's start)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(api_key: str, wsgi_app: Any) -> Any:
    return schemathesis.openapi.from_wsgi(
        "/api/schema/", wsgi_app, headers={"Authorization": f"Token {api_key}"}
    )


def fuzz(
    operation: Any, mode: GenerationMode, headers: dict[str, str], known: dict[str, Any]
) -> list[str]:
    """Server errors among a bounded number of generated requests to one operation."""
    errors: list[str] = []
    resource = operation.path.split("/")[2]

    def realistic(case: Any, frames: str) -> Any:
        if case.path_parameters and "id" in case.path_parameters:
            case.path_parameters["id"] = known["ids"][resource]
        is_dict = isinstance(case.body, dict)
        if operation.path == "/api/jobs/" and case.method == "POST" and is_dict:
            # Nodes, chunk size, parameters, priority… stay generated.
            case.body.update(known["submission"], frames=frames)
        if operation.path == "/api/workflows/" and case.method == "POST" and is_dict:
            case.body.update(known["workflow"])  # inputs, options, labels, engine… generated
        return case

    generated = operation.as_strategy(generation_mode=mode)
    steered = st.tuples(generated, st.sampled_from(FRAME_SPECS)).map(lambda p: realistic(*p))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests every run: CI stays deterministic
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(generated, steered))
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        if operation.path == "/api/clusters/{id}/resize/" and response.status_code == 501:
            return  # documented: clusters.services.resize is not installed here yet
        if response.status_code >= 500:
            errors.append(
                f"{case.method} {case.formatted_path} {mode.value} -> {response.status_code}: "
                f"{response.text[:300]}"
            )

    run()
    return errors


def test_no_operation_answers_with_a_server_error(
    api_schema: Any, api_key: str, known: dict[str, Any], queued: Any
) -> None:
    headers = {"Authorization": f"Token {api_key}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 28
    errors = [
        error
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for error in fuzz(operation, mode, headers, known)
    ]
    assert not errors, "\n".join(errors)
