"""Settings come from the environment only; with nothing set, everything lives under var/.

Each test imports the settings in a fresh process with a controlled environment, so the
test process's own environment and settings are never touched.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
django.setup()
from django.conf import settings as s
from renderhub.celery import app
db = s.DATABASES["default"]
print(json.dumps({
    "secret_key": s.SECRET_KEY,
    "debug": s.DEBUG,
    "allowed_hosts": s.ALLOWED_HOSTS,
    "engine": db["ENGINE"],
    "db_name": str(db["NAME"]),
    "db_host": db.get("HOST", ""),
    "db_user": db.get("USER", ""),
    "db_password": db.get("PASSWORD", ""),
    "db_port": str(db.get("PORT", "")),
    "conn_max_age": db.get("CONN_MAX_AGE"),
    "broker": s.CELERY_BROKER_URL,
    "broker_transport": type(app.connection_for_write().transport).__module__,
    "transport": s.CELERY_BROKER_TRANSPORT_OPTIONS,
    "storage_url": s.STORAGE_URL,
    "local_storage_root": str(s.LOCAL_STORAGE_ROOT),
    "var_dir": str(s.VAR_DIR),
    "session_cookie_secure": s.SESSION_COOKIE_SECURE,
    "hsts": s.SECURE_HSTS_SECONDS,
    "proxy_header": s.SECURE_PROXY_SSL_HEADER,
    "render_timeout": s.RENDER_TIMEOUT,
}))
"""


def load_settings(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=BASE_DIR,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DJANGO_SETTINGS_MODULE": "renderhub.settings",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_zero_config_keeps_a_private_random_secret_key(tmp_path: Path) -> None:
    var = tmp_path / "var"
    loaded = load_settings({"RENDERHUB_VAR_DIR": str(var)})
    key_file = var / "secret_key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert loaded["secret_key"] == key
    assert len(key) >= 50
    assert len(set(key)) > 20  # random, not a placeholder
    assert "insecure" not in key
    # The key is kept: a restart must not log everybody out.
    assert load_settings({"RENDERHUB_VAR_DIR": str(var)})["secret_key"] == key


def test_two_installations_get_different_keys(tmp_path: Path) -> None:
    first = load_settings({"RENDERHUB_VAR_DIR": str(tmp_path / "a")})["secret_key"]
    second = load_settings({"RENDERHUB_VAR_DIR": str(tmp_path / "b")})["secret_key"]
    assert first != second


def test_zero_config_runs_embedded_under_var(tmp_path: Path) -> None:
    var = tmp_path / "var"
    loaded = load_settings({"RENDERHUB_VAR_DIR": str(var)})
    assert loaded["var_dir"] == str(var.resolve())
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["db_name"] == str(var.resolve() / "db.sqlite3")
    assert loaded["broker"] == "filesystem://"
    assert loaded["broker_transport"] == "renderhub.fs_broker"  # messages written whole
    for sub in ("queue", "processed", "control"):
        assert (var / "broker" / sub).is_dir()
    assert loaded["transport"]["data_folder_in"] == str(var.resolve() / "broker" / "queue")
    assert loaded["local_storage_root"] == str(var.resolve() / "storage")
    assert loaded["storage_url"] == (var.resolve() / "storage").as_uri()
    assert loaded["debug"] is False
    assert loaded["allowed_hosts"] == ["localhost", "127.0.0.1", "[::1]"]
    assert loaded["session_cookie_secure"] is True
    assert loaded["proxy_header"] is None


def test_a_secret_key_from_the_environment_wins_and_is_not_written(tmp_path: Path) -> None:
    var = tmp_path / "var"
    loaded = load_settings(
        {"RENDERHUB_VAR_DIR": str(var), "DJANGO_SECRET_KEY": "from-the-environment-" + "x" * 40}
    )
    assert loaded["secret_key"] == "from-the-environment-" + "x" * 40
    assert not (var / "secret_key").exists()


def test_database_url_selects_postgresql(tmp_path: Path) -> None:
    loaded = load_settings(
        {
            "RENDERHUB_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://render:db-pass@db.example.com:5433/renderhub",
        }
    )
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert loaded["db_name"] == "renderhub"
    assert loaded["db_host"] == "db.example.com"
    assert loaded["db_port"] == "5433"
    assert loaded["db_user"] == "render"
    assert loaded["db_password"] == "db-pass"
    assert loaded["conn_max_age"] == 60


def test_a_redis_broker_gets_a_visibility_timeout_beyond_the_render_timeout(
    tmp_path: Path,
) -> None:
    loaded = load_settings(
        {
            "RENDERHUB_VAR_DIR": str(tmp_path),
            "CELERY_BROKER_URL": "redis://redis.example.com:6379/0",
            "RENDER_TIMEOUT": "7200",
        }
    )
    assert loaded["broker"] == "redis://redis.example.com:6379/0"
    assert loaded["transport"]["visibility_timeout"] > loaded["render_timeout"] == 7200
    assert not (tmp_path / "broker").exists()


def test_production_switches(tmp_path: Path) -> None:
    loaded = load_settings(
        {
            "RENDERHUB_VAR_DIR": str(tmp_path),
            "DJANGO_ALLOWED_HOSTS": "render.example.com,render2.example.com",
            "DJANGO_HSTS_SECONDS": "31536000",
            "DJANGO_BEHIND_PROXY": "true",
        }
    )
    assert loaded["allowed_hosts"] == ["render.example.com", "render2.example.com"]
    assert loaded["hsts"] == 31536000
    assert loaded["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_an_empty_secret_key_file_is_replaced(tmp_path: Path) -> None:
    # What a crash between creating and writing the file leaves behind.
    var = tmp_path / "var"
    var.mkdir()
    (var / "secret_key").write_text("")
    loaded = load_settings({"RENDERHUB_VAR_DIR": str(var)})
    assert len(loaded["secret_key"]) >= 50
    assert (var / "secret_key").read_text().strip() == loaded["secret_key"]
    assert stat.S_IMODE((var / "secret_key").stat().st_mode) == 0o600
    assert sorted(p.name for p in var.iterdir() if p.name.startswith(".secret_key")) == []


def test_processes_starting_together_share_one_key(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    code = (
        "import django; django.setup(); "
        "from django.conf import settings; print(settings.SECRET_KEY)"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "renderhub.settings",
        "RENDERHUB_VAR_DIR": str(var),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert keys == {(var / "secret_key").read_text().strip()}
