"""Every URL the project serves, fed malformed path values, query strings and form bodies,
as a superuser, a member and an outsider: the answer is never a server error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.django_db

# Values for path parameters: unknown ids, huge numbers, escapes, odd text.
PATH_VALUES = ["1", "99999999999999999999", "..%2F..%2Fetc%00", "%C3%BC%E2%80%AE" + "x" * 300]
JUNK = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60) | st.sampled_from(
    ["../../etc/passwd", "\x00", "1-", "1e999", "[]", "{}", "null", "-1", "9" * 40]
)
SKIP = re.compile(r"(logout|/static/)")


def routes() -> list[str]:
    """Every concrete-able route, with `<param>` placeholders."""

    def walk(patterns: list[Any], prefix: str) -> Iterator[str]:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, route)
            elif isinstance(p, URLPattern):
                yield route

    found = sorted(set(walk(get_resolver().url_patterns, "/")))
    return [r for r in found if not SKIP.search(r) and not r.startswith("/^")]


def concrete(route: str, value: str) -> str:
    route = re.sub(r"<(?:\w+:)?\w+>", value, route)
    route = re.sub(r"\(\?P<\w+>[^)]*\)", value, route)
    return route.replace("^", "").replace("$", "").replace("\\", "")


@pytest.fixture
def users(alice, bob, charlie, project) -> dict[str, Any]:
    return {"alice": alice, "bob": bob, "charlie": charlie}


@pytest.mark.parametrize("who", ["alice", "bob", "charlie"])
def test_no_url_answers_a_server_error(client, users, who: str) -> None:
    client.force_login(users[who])
    errors = []
    for route in routes():
        for value in PATH_VALUES:
            url = concrete(route, value)
            # The admin is Django's own: GET its pages; POST to ours.
            for method in ("get",) if route.startswith("/admin/") else ("get", "post"):
                response = getattr(client, method)(
                    url, {"frames": "1-x", "q": "\x00", "page": "-1", "state": "nonsense"}
                )
                if response.status_code >= 500:
                    errors.append(f"{method.upper()} {url} -> {response.status_code}")
    assert not errors, "\n".join(errors[:30])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.dictionaries(st.sampled_from(
    ["project", "software", "cluster", "scenes", "frames", "nodes", "chunk_size", "parameters",
     "priority", "name", "path", "marker", "q", "page", "state", "test_frame_first"]
), JUNK, max_size=8))  # fmt: skip
def test_forms_never_fail_on_junk(client, alice, project, data: dict[str, str]) -> None:
    client.force_login(alice)
    for route in routes():
        if "<" in route or "(?P" in route or route.startswith("/admin/"):
            continue
        response = client.post(route, data)
        assert response.status_code < 500, f"POST {route} {data!r}"
        response = client.get(route, data)
        assert response.status_code < 500, f"GET {route} {data!r}"
