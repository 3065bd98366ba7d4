"""The admin's System status page: connectivity, render workers, effective settings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from clusters.choices import NodeState
from clusters.models import ClusterNode
from ops import status
from tests.fakes.oss import FakeOSS

STATUS_URL = "/admin/status/"
OSS_SECRET = "status-oss-secret-Hq93LzP"
BC_SECRET = "status-batchcompute-secret-Vv72mKa"
DJANGO_SECRET = "status-django-secret-key-" + "Jx4" * 20
ENDPOINT_PASSWORD = "endpoint-password-Rr51"
PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"


@pytest.fixture(autouse=True)
def _admin_settings(settings: Any) -> None:
    """Cheap password hashing; static URLs without a collectstatic manifest (fresh var/)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}


@pytest.fixture(scope="module")
def fake_oss() -> Iterator[FakeOSS]:
    with FakeOSS(access_key_id="status-key-id", access_key_secret=OSS_SECRET) as server:
        server.create_bucket("status-bucket")
        yield server


def rows(html: str, section: str) -> str:
    """The HTML of one <h2> section of the page."""
    start = html.index(f"<h2>{section}")
    end = html.find("<h2>", start + 1)
    return html[start : end if end != -1 else len(html)]


# --- who may see it ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.embedded
def test_it_sends_anonymous_users_to_the_login(client: Any) -> None:
    response = client.get(STATUS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_it_sends_users_who_are_not_staff_to_the_login(client: Any, django_user_model) -> None:
    user = django_user_model.objects.create_user("norm", password="pw-norm-1")
    client.force_login(user)
    response = client.get(STATUS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert "Effective configuration" not in response.content.decode()


@pytest.mark.django_db
def test_staff_who_are_not_superusers_get_403(client: Any, bob: Any) -> None:
    client.force_login(bob)
    response = client.get(STATUS_URL)
    assert response.status_code == 403
    assert "Effective configuration" not in response.content.decode()


@pytest.mark.django_db
def test_the_admin_index_links_to_it(client: Any, alice: Any) -> None:
    client.force_login(alice)
    html = client.get("/admin/").content.decode()
    assert f'href="{STATUS_URL}"' in html
    assert "System status" in html


# --- what it shows ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.embedded
def test_it_shows_every_service_reachable(client: Any, alice: Any) -> None:
    client.force_login(alice)
    response = client.get(STATUS_URL)
    assert response.status_code == 200
    html = rows(response.content.decode(), "Connectivity")
    for name in ("database", "broker", "storage"):
        assert re.search(rf"<td>{name}</td>\s*<td>[^<]*<img[^>]*> reachable", html), name
    assert "unreachable" not in html


@pytest.mark.django_db
def test_it_shows_an_unreachable_storage_with_its_reason(
    client: Any, alice: Any, settings: Any
) -> None:
    settings.STORAGE_URL = "oss://bucket/"
    settings.OSS_ENDPOINT = ""
    client.force_login(alice)
    html = rows(client.get(STATUS_URL).content.decode(), "Connectivity")
    assert re.search(r"<td>storage</td>\s*<td>.*?unreachable", html, re.S)
    assert "OSS_ENDPOINT" in html  # the reason names the missing setting


@pytest.mark.django_db
def test_it_checks_oss_storage_without_showing_the_secret(
    client: Any, alice: Any, settings: Any, fake_oss: FakeOSS
) -> None:
    settings.STORAGE_URL = "oss://status-bucket/renderhub/"
    settings.OSS_ENDPOINT = fake_oss.endpoint
    settings.OSS_ACCESS_KEY_ID = fake_oss.access_key_id
    settings.OSS_ACCESS_KEY_SECRET = OSS_SECRET
    client.force_login(alice)
    html = client.get(STATUS_URL).content.decode()
    assert re.search(r"<td>storage</td>\s*<td>[^<]*<img[^>]*> reachable", html)
    assert OSS_SECRET not in html


@pytest.mark.django_db
def test_a_rejected_oss_secret_is_reported_but_not_shown(
    client: Any, alice: Any, settings: Any, fake_oss: FakeOSS
) -> None:
    wrong = "wrong-oss-secret-Pp40QwE"
    settings.STORAGE_URL = "oss://status-bucket/renderhub/"
    settings.OSS_ENDPOINT = fake_oss.endpoint
    settings.OSS_ACCESS_KEY_ID = fake_oss.access_key_id
    settings.OSS_ACCESS_KEY_SECRET = wrong
    settings.STORAGE_RETRIES = 0
    client.force_login(alice)
    html = client.get(STATUS_URL).content.decode()
    connectivity = rows(html, "Connectivity")
    assert "SignatureDoesNotMatch" in connectivity
    assert wrong not in html
    assert OSS_SECRET not in html


@pytest.mark.django_db
def test_it_lists_render_workers_with_their_load(client: Any, alice: Any, cluster: Any) -> None:
    now = timezone.now()
    ClusterNode.objects.create(
        cluster=cluster,
        name="render@box-1",
        state=NodeState.BUSY,
        cpu_percent=87.5,
        memory_percent=41.0,
        last_seen=now - timedelta(minutes=3),
    )
    ClusterNode.objects.create(cluster=cluster, name="render@box-2", state=NodeState.STARTING)
    client.force_login(alice)
    html = rows(client.get(STATUS_URL).content.decode(), "Render workers")
    assert "No render worker has reported yet" not in html
    # Each name links to the node's page.
    box1 = re.search(
        r'<tr><td><a href="[^"]*/nodes/render@box-1/">render@box-1</a></td>.*?</tr>', html, re.S
    )
    assert box1 is not None
    assert all(text in box1.group(0) for text in (cluster.name, "Busy", "87.5", "41.0", "3"))
    box2 = re.search(r"<tr><td><a [^>]*>render@box-2</a></td>.*?</tr>", html, re.S)
    assert box2 is not None
    assert "never" in box2.group(0)  # not " ago" with an empty time
    # The one seen most recently comes first, one never seen last.
    assert html.index("render@box-1") < html.index("render@box-2")


@pytest.mark.django_db
@pytest.mark.embedded
def test_it_says_when_no_worker_has_reported(client: Any, alice: Any) -> None:
    client.force_login(alice)
    html = rows(client.get(STATUS_URL).content.decode(), "Render workers")
    assert "No render worker has reported yet" in html


@pytest.mark.django_db
def test_it_shows_settings_with_secrets_hidden(client: Any, alice: Any, settings: Any) -> None:
    settings.OSS_ACCESS_KEY_ID = "LTAIvisiblekeyid"
    settings.OSS_ACCESS_KEY_SECRET = OSS_SECRET
    settings.BATCHCOMPUTE_ACCESS_KEY_SECRET = BC_SECRET
    settings.BATCHCOMPUTE_ENDPOINT = f"https://bcuser:{ENDPOINT_PASSWORD}@bc.example.com/"
    settings.RENDER_TIMEOUT = 4321
    settings.SECRET_KEY = DJANGO_SECRET
    client.force_login(alice)
    response = client.get(STATUS_URL)
    assert response.status_code == 200
    html = response.content.decode()
    for secret in (OSS_SECRET, BC_SECRET, DJANGO_SECRET, ENDPOINT_PASSWORD):
        assert secret not in html
    config = rows(html, "Effective configuration")
    shown = dict(re.findall(r"<tr><th>(\w+)</th><td><code>(.*?)</code></td></tr>", config))
    assert shown["OSS_ACCESS_KEY_SECRET"] == "set (hidden)"
    assert shown["BATCHCOMPUTE_ACCESS_KEY_SECRET"] == "set (hidden)"
    assert shown["OSS_ACCESS_KEY_ID"] == "LTAIvisiblekeyid"
    assert shown["BATCHCOMPUTE_ENDPOINT"] == "https://bcuser:***@bc.example.com/"
    assert shown["RENDER_TIMEOUT"] == "4321"
    assert "SECRET_KEY" not in shown


@pytest.mark.django_db
def test_an_unset_secret_is_shown_as_not_set(client: Any, alice: Any, settings: Any) -> None:
    settings.OSS_ACCESS_KEY_SECRET = ""
    client.force_login(alice)
    config = rows(client.get(STATUS_URL).content.decode(), "Effective configuration")
    assert "<tr><th>OSS_ACCESS_KEY_SECRET</th><td><code>not set</code></td></tr>" in config


# --- status.py units --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgres://render:db-pass-1@db.example.com:5432/renderhub",
            "postgres://render:***@db.example.com:5432/renderhub",
        ),
        ("redis://:redis-pass-2@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://user:p@ss:w0rd@redis:6380/1", "rediss://user:***@redis:6380/1"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("redis://justauser@redis:6379/0", "redis://justauser@redis:6379/0"),
        ("oss://bucket/prefix/", "oss://bucket/prefix/"),
        ("not a url", "not a url"),
    ],
)
def test_mask_url_hides_passwords(url: str, masked: str) -> None:
    assert status.mask_url(url) == masked


def test_effective_settings_never_show_database_or_broker_passwords(monkeypatch) -> None:
    fake = SimpleNamespace(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "renderhub",
                "USER": "render",
                "PASSWORD": "db-pass-Kk11",
                "HOST": "db.example.com",
            }
        },
        CELERY_BROKER_URL="redis://:broker-pass-Mm22@redis.example.com:6379/0",
        STORAGE_URL="oss://bucket/renderhub/",
        OSS_ACCESS_KEY_SECRET="oss-pass-Nn33",
        BATCHCOMPUTE_ACCESS_KEY_SECRET="",
        DEBUG=False,
    )
    monkeypatch.setattr(status, "settings", fake)
    shown = dict(status.effective_settings())
    text = repr(shown)
    for secret in ("db-pass-Kk11", "broker-pass-Mm22", "oss-pass-Nn33"):
        assert secret not in text
    assert shown["DATABASES"] == "postgresql renderhub @ db.example.com"
    assert shown["CELERY_BROKER_URL"] == "redis://:***@redis.example.com:6379/0"
    assert shown["OSS_ACCESS_KEY_SECRET"] == "set (hidden)"
    assert shown["BATCHCOMPUTE_ACCESS_KEY_SECRET"] == "not set"
    assert shown["DEBUG"] == "False"
    assert list(shown) == list(status.SHOWN_SETTINGS)


def test_a_failing_check_reports_the_error_without_credentials() -> None:
    def probe() -> str:
        raise ConnectionError("cannot reach postgres://render:db-pass-Qq44@db:5432/renderhub")

    check = status._timed("database", probe)
    assert check.ok is False
    assert check.detail.startswith("ConnectionError: cannot reach")
    assert "db-pass-Qq44" not in check.detail


@pytest.mark.django_db
def test_it_shows_whether_renderers_and_wdl_tasks_are_confined(
    client: Any, alice: Any, settings: Any
) -> None:
    settings.RENDER_SANDBOX = "bwrap"
    settings.WORKFLOW_SANDBOX = "none"
    client.force_login(alice)
    html = rows(client.get(STATUS_URL).content.decode(), "Sandbox")
    render, workflow = html.split("<td>WORKFLOW_SANDBOX</td>")
    from renderhub.agent import sandbox

    if sandbox.problem("bwrap") is None:
        assert "confined" in render and "not confined" not in render
    assert "not confined" in workflow and "runs as the worker&#x27;s user" in workflow


@pytest.mark.django_db
def test_it_lists_projects_whose_output_dir_this_machine_refuses(
    client: Any, alice: Any, project: Any, image: Any, storage_url: str, settings: Any
) -> None:
    """A project saved before the rule (or before the settings moved) keeps a folder the
    local worker refuses: the superuser sees which, why, and where to change it."""
    from projects.models import Project

    stored = f"{settings.LOCAL_STORAGE_ROOT}/projects/trailer/"
    trailer = Project.objects.create(name="trailer", image=image, output_prefix=storage_url + "t/")
    Project.objects.filter(pk=trailer.pk).update(node_output_dir=stored)
    client.force_login(alice)

    page = client.get(STATUS_URL).content.decode()

    html = rows(page, "Projects whose renderers may not write here")
    assert f"/admin/projects/project/{trailer.pk}/change/" in html
    assert stored in html and "the local storage" in html
    assert project.name not in html  # the default /tmp/renderhub/output/ is fine
    Project.objects.filter(pk=trailer.pk).update(node_output_dir="/tmp/renderhub/trailer/")
    assert "may not write here" not in client.get(STATUS_URL).content.decode()
