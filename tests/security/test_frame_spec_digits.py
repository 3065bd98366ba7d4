"""Finding 10 of issue 11: a 5000-digit frame number answered 500.

``int()`` refuses strings of more than 4300 digits with a plain ValueError, which the
frame spec parser let through instead of a FrameSpecError. The parser now counts digits
first, so the submit page's estimate, the REST API and the CLI all answer with the reason.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from api import services as api_services
from jobs.framespec import MAX_FRAME, FrameSpecError, parse_frame_spec
from jobs.models import RenderJob

HUGE = "9" * 5000
TOO_LONG = "has 5000 digits: frame numbers and steps go up to 10000000."


@pytest.mark.django_db
@pytest.mark.parametrize("spec", [HUGE, f"1-{HUGE}", f"1-10x{HUGE}", f"-{HUGE}", f"1,{HUGE}"])
def test_the_estimate_answers_with_the_reason_not_500(
    client: Any, bob: Any, project: Any, spec: str
) -> None:
    client.force_login(bob)
    response = client.get("/submit/estimate/", {"project": project.pk, "frames": spec})
    assert response.status_code == 200  # the test client would raise on a 500
    assert TOO_LONG in response.content.decode()
    assert response.context["estimate"] is None


@pytest.mark.django_db
def test_the_api_refuses_too_many_digits_with_the_reason(
    bob: Any, project: Any, blender_software: Any, cluster: Any, scene_url: str
) -> None:
    _token, key = api_services.create_token(bob, "ci")
    api = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    body = {
        "project": project.name,
        "software": blender_software.name,
        "cluster": cluster.name,
        "scenes": [scene_url],
        "frames": "1-" + "9" * 400,  # the field allows 500 characters
    }
    response = api.post("/api/jobs/", body, format="json")
    assert response.status_code == 400
    assert "has 400 digits" in str(response.json()["frames"])
    assert not RenderJob.objects.exists()


@pytest.mark.django_db
def test_the_cli_refuses_too_many_digits_with_the_reason(
    project: Any, blender_software: Any, cluster: Any, scene_url: str
) -> None:
    with pytest.raises(CommandError, match=TOO_LONG):
        call_command(
            "submit_render", "--project", project.name, "--scene", scene_url, "--frames", HUGE
        )
    assert not RenderJob.objects.exists()


@given(st.integers(1, 6000), st.sampled_from(["{n}", "1-{n}", "0-1x{n}", "{n}-{n}", "5,{n}"]))
def test_numbers_of_any_length_parse_or_raise_frame_spec_error(digits: int, shape: str) -> None:
    spec = shape.format(n="1" + "0" * (digits - 1))
    try:
        frames = parse_frame_spec(spec)
    except FrameSpecError:
        return
    assert frames and max(frames) <= MAX_FRAME


@given(st.text(alphabet="0123456789-x, ", max_size=300))
def test_spec_like_text_parses_or_raises_frame_spec_error(text: str) -> None:
    try:
        frames = parse_frame_spec(text)
    except FrameSpecError:
        return
    assert frames == sorted(set(frames))
