"""System checks: inconsistent configuration fails `manage.py check`, not a render."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from renderhub import checks

BASE_DIR = Path(__file__).resolve().parents[2]


def ids(problems: list[Any]) -> list[str]:
    return [p.id for p in problems]


def by_id(problems: list[Any], check_id: str) -> Any:
    [problem] = [p for p in problems if p.id == check_id]
    return problem


# --- storage ----------------------------------------------------------------------------


def test_it_accepts_the_test_configuration() -> None:
    assert checks.storage_configuration() == []
    assert checks.compute_configuration() == []


def test_it_wants_credentials_for_oss_storage(settings: Any) -> None:
    settings.STORAGE_URL = "oss://renders/renderhub/"
    settings.OSS_ENDPOINT = "https://oss-cn-hangzhou.aliyuncs.com"
    settings.OSS_ACCESS_KEY_ID = ""
    settings.OSS_ACCESS_KEY_SECRET = ""
    error = by_id(checks.storage_configuration(), "renderhub.E001")
    assert "OSS_ACCESS_KEY_ID" in error.msg
    assert "OSS_ACCESS_KEY_SECRET" in error.msg
    assert "OSS_ENDPOINT" not in error.msg  # it is set
    assert error.is_serious()


def test_it_names_every_missing_oss_setting(settings: Any) -> None:
    settings.STORAGE_URL = "oss://renders/"
    settings.OSS_ENDPOINT = settings.OSS_ACCESS_KEY_ID = settings.OSS_ACCESS_KEY_SECRET = ""
    error = by_id(checks.storage_configuration(), "renderhub.E001")
    for name in ("OSS_ENDPOINT", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"):
        assert name in error.msg


def test_it_accepts_oss_storage_with_credentials(settings: Any) -> None:
    settings.STORAGE_URL = "oss://renders/"
    settings.OSS_ENDPOINT = "https://oss-cn-hangzhou.aliyuncs.com"
    settings.OSS_ACCESS_KEY_ID = "LTAIkeyid"
    settings.OSS_ACCESS_KEY_SECRET = "check-secret"
    assert checks.storage_configuration() == []


def test_an_oss_error_never_shows_the_secret(settings: Any) -> None:
    settings.STORAGE_URL = "oss://renders/"
    settings.OSS_ENDPOINT = ""
    settings.OSS_ACCESS_KEY_ID = "LTAIkeyid"
    settings.OSS_ACCESS_KEY_SECRET = "check-secret-Zz90"
    error = by_id(checks.storage_configuration(), "renderhub.E001")
    assert "check-secret-Zz90" not in f"{error.msg} {error.hint}"


@pytest.mark.parametrize("url", ["s3://bucket/", "/srv/renderhub/storage", "http://example.com/"])
def test_it_rejects_other_storage_schemes(settings: Any, url: str) -> None:
    settings.STORAGE_URL = url
    problems = checks.storage_configuration()
    assert ids(problems) == ["renderhub.E003"]
    error = problems[0]
    assert repr(url) in error.msg


def test_it_rejects_a_file_storage_url_outside_the_storage_root(settings: Any) -> None:
    settings.STORAGE_URL = "file:///somewhere/else/"
    error = by_id(checks.storage_configuration(), "renderhub.E002")
    assert "LOCAL_STORAGE_ROOT" in f"{error.msg} {error.hint}"


def test_it_accepts_a_file_storage_url_inside_the_storage_root(settings: Any) -> None:
    settings.STORAGE_URL = (Path(settings.LOCAL_STORAGE_ROOT) / "renderhub").as_uri()
    assert checks.storage_configuration() == []


# --- compute ----------------------------------------------------------------------------


def test_it_wants_a_stale_timeout_of_at_least_two_heartbeats(settings: Any) -> None:
    settings.RENDER_HEARTBEAT_SECONDS = 10
    settings.RENDER_STALE_AFTER = 19
    assert "renderhub.E011" in ids(checks.compute_configuration())
    settings.RENDER_STALE_AFTER = 20
    assert "renderhub.E011" not in ids(checks.compute_configuration())


def test_it_wants_a_visibility_timeout_longer_than_a_render(settings: Any) -> None:
    settings.RENDER_TIMEOUT = 3600
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    error = by_id(checks.compute_configuration(), "renderhub.E021")
    assert "RENDER_TIMEOUT" in error.msg
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3601}
    assert "renderhub.E021" not in ids(checks.compute_configuration())


def test_it_wants_batchcompute_keys_with_a_region(settings: Any) -> None:
    settings.BATCHCOMPUTE_REGION = "cn-hangzhou"
    settings.BATCHCOMPUTE_ACCESS_KEY_ID = "LTAIkeyid"
    settings.BATCHCOMPUTE_ACCESS_KEY_SECRET = ""
    error = by_id(checks.compute_configuration(), "renderhub.E010")
    assert "BATCHCOMPUTE" in error.msg
    settings.BATCHCOMPUTE_ACCESS_KEY_SECRET = "bc-secret"
    assert "renderhub.E010" not in ids(checks.compute_configuration())


def test_it_wants_at_least_one_node_per_job(settings: Any) -> None:
    settings.RENDER_MAX_NODES_PER_JOB = 0
    assert "renderhub.E012" in ids(checks.compute_configuration())


def test_it_warns_about_an_untested_broker(settings: Any) -> None:
    settings.CELERY_BROKER_URL = "amqp://guest:guest-pass@rabbit:5672//"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    warning = by_id(checks.compute_configuration(), "renderhub.W020")
    assert not warning.is_serious()
    assert "guest-pass" not in warning.msg


def test_manage_py_check_fails_on_an_error(settings: Any) -> None:
    settings.STORAGE_URL = "oss://renders/"
    settings.OSS_ENDPOINT = settings.OSS_ACCESS_KEY_ID = settings.OSS_ACCESS_KEY_SECRET = ""
    settings.RENDER_STALE_AFTER = 1
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "renderhub.E001" in str(raised.value)
    assert "renderhub.E011" in str(raised.value)


# --- manage.py check in a fresh process -------------------------------------------------


def manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """manage.py with only ``env`` (plus PATH): nothing from the test process leaks in."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def production_env(var_dir: Path) -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "render.example.com",
        "DJANGO_HSTS_SECONDS": "31536000",
        "DJANGO_SECURE_SSL_REDIRECT": "true",
        "DJANGO_BEHIND_PROXY": "true",
        "RENDERHUB_VAR_DIR": str(var_dir),
    }


def test_check_deploy_is_clean_in_production(tmp_path: Path) -> None:
    result = manage(["check", "--deploy"], production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr + result.stdout


def test_check_deploy_notices_a_missing_hsts_header(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["DJANGO_HSTS_SECONDS"]
    result = manage(["check", "--deploy"], env)
    assert "security.W004" in result.stdout + result.stderr


def test_check_is_clean_with_zero_configuration(tmp_path: Path) -> None:
    result = manage(["check"], {"RENDERHUB_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout


def test_check_fails_fast_on_oss_storage_without_a_key(tmp_path: Path) -> None:
    env = {"RENDERHUB_VAR_DIR": str(tmp_path), "STORAGE_URL": "oss://renders/renderhub/"}
    result = manage(["check"], env)
    assert result.returncode != 0
    assert "renderhub.E001" in result.stderr
    assert "OSS_ACCESS_KEY_SECRET" in result.stderr


# --- the sandbox ------------------------------------------------------------------------


def test_it_warns_when_members_input_runs_unconfined(settings: Any) -> None:
    settings.RENDER_SANDBOX = "none"
    settings.WORKFLOW_SANDBOX = "none"
    found = [p for p in checks.sandbox_configuration() if p.id == "renderhub.W031"]
    assert [p.msg.split(" is ")[0] for p in found] == ["RENDER_SANDBOX", "WORKFLOW_SANDBOX"]
    assert "bubblewrap" in (found[0].hint or "")


def test_it_rejects_an_unknown_sandbox(settings: Any) -> None:
    settings.RENDER_SANDBOX = "docker"
    assert (
        "must be one of bwrap, none" in by_id(checks.sandbox_configuration(), "renderhub.E030").msg
    )


def test_it_warns_when_bubblewrap_cannot_run_here(settings: Any, monkeypatch: Any) -> None:
    from renderhub.agent import sandbox

    monkeypatch.setattr(sandbox.shutil, "which", lambda *a, **k: None)  # not installed
    settings.RENDER_SANDBOX = settings.WORKFLOW_SANDBOX = "bwrap"
    warnings = [p for p in checks.sandbox_configuration() if p.id == "renderhub.W032"]
    assert len(warnings) == 2
    assert "apt-get install bubblewrap" in warnings[0].msg


def test_sandbox_paths_never_expose_var_or_storage(settings: Any, tmp_path: Any) -> None:
    from renderhub import sandbox_paths

    settings.RENDER_SANDBOX_PATHS = [
        str(tmp_path / "opt-blender"),
        str(settings.VAR_DIR.parent),  # holds var/
        str(settings.LOCAL_STORAGE_ROOT),
    ]
    errors = [p for p in checks.sandbox_configuration() if p.id == "renderhub.E033"]
    assert len(errors) == 2
    assert sandbox_paths.extra_read_paths() == [str(tmp_path / "opt-blender")]
