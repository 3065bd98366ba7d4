"""Finding 3 of issue 11, part two: what a WDL task can reach once it runs.

A member allowed to run workflows on this machine still gets only their task's folder: the
real ``miniwdl`` engine runs each command in the real bubblewrap sandbox. Submitted through
the real API with a token, a workflow tries what the review did and more: read the Django
secret key, read the worker's environment (``/proc/self/environ``, the worker's own
``/proc/<pid>/environ``), read another project's files, write into another project's
folder, the storage root, ``var/`` and its own call folder, connect to a port listening on
127.0.0.1, and smuggle files out through symlinks the worker would follow afterwards. Each
attempt fails, and nothing the run left in storage holds a secret.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from api import services as api_services
from projects.models import Project
from renderhub import storage
from tests.workflows.grants import grant_run_on_host
from workflows import services
from workflows.choices import RunState
from workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db

CANARY = "canary-3f9a1c-never-in-a-task"

# Each task tries one thing and says what happened; none of them fails the run, so every
# attempt is made and reported. Paths come in as Strings: a WDL can name anything.
ATTACKS = """version development
workflow attack {
  input {
    String secret_key
    String worker_environ
    String other_file
    Array[String] targets
    Int port
  }
  call read_file as read_key { input: path = secret_key }
  call read_file as read_other { input: path = other_file }
  call read_file as read_worker_env { input: path = worker_environ }
  call own_env
  call write_outside { input: targets = targets }
  call connect { input: port = port }
  call leak_dir { input: target = secret_key }
  output {
    String key = read_key.out
    String other = read_other.out
    String worker_env = read_worker_env.out
    String environment = own_env.out
    String writes = write_outside.out
    String network = connect.out
    Directory smuggled = leak_dir.d
  }
}

task read_file {
  input { String path }
  command <<< cat "~{path}" 2>&1 || echo "REFUSED" >>>
  output { String out = read_string(stdout()) }
}

task own_env {
  command <<<
    env
    tr '\\0' '\\n' < /proc/self/environ
    whoami; id -u
  >>>
  output { String out = read_string(stdout()) }
}

task write_outside {
  input { Array[String] targets }
  command <<<
    for target in ~{sep(" ", targets)}; do
      if echo pwned > "$target"; then echo "WROTE $target"; else echo "REFUSED $target"; fi
    done
    if ln -s /etc/hostname ../leak.txt; then echo "LINKED"; else echo "REFUSED link"; fi
  >>>
  output { String out = read_string(stdout()) }
}

task connect {
  input { Int port }
  command <<<
    python3 - <<'PY'
import socket
try:
    socket.create_connection(("127.0.0.1", ~{port}), timeout=3).sendall(b"exfiltrated")
    print("CONNECTED")
except OSError as exc:
    print("REFUSED", exc)
PY
    if (exec 3<>/dev/tcp/127.0.0.1/~{port}); then echo "CONNECTED"; else echo "REFUSED bash"; fi
  >>>
  output { String out = read_string(stdout()) }
}

task leak_dir {
  input { String target }
  command <<<
    mkdir -p d
    echo harmless > d/ok.txt
    # A link to a folder inside a Directory output: miniwdl checks only file links, and
    # the worker copies the outputs with its own rights after the task.
    ln -s "$(dirname "~{target}")" d/var
  >>>
  output { Directory d = "d" }
}
"""


@pytest.fixture(autouse=True)
def _workflow_dirs(settings: Any, _private_dirs: Path) -> None:
    settings.WORKFLOW_WORK_DIR = _private_dirs / "workflows"
    settings.WORKFLOW_SANDBOX = "bwrap"
    settings.WORKFLOW_TASK_NETWORK = False


@pytest.fixture
def secret_key_file() -> Path:
    path = Path(django_settings.VAR_DIR) / "secret_key"
    if not path.is_file():  # DJANGO_SECRET_KEY came from the environment: a stand-in
        path.write_text(django_settings.SECRET_KEY)
    return path


@pytest.fixture
def other_project(image: Any, storage_root: Path, storage_url: str) -> Project:
    """Another lab's project and a file of it; bob is no member."""
    lab = Project.objects.create(name="lab", image=image, output_prefix=storage_url + "lab/")
    (storage_root / "lab").mkdir()
    (storage_root / "lab" / "results.txt").write_text("the other lab's unpublished results\n")
    return lab


@pytest.fixture
def listener() -> Any:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    yield server
    server.close()


def accepted(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def submit_through_the_api(user: Any, source: str, inputs: dict[str, Any]) -> WorkflowRun:
    _token, key = api_services.create_token(user, "attack")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    body = {"project": "shots", "wdl_source": source, "inputs": inputs}
    response = client.post("/api/workflows/", body, format="json")
    assert response.status_code == 201, response.content
    return WorkflowRun.objects.get(pk=response.json()["id"])


def everything_stored(root: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_a_task_reaches_nothing_outside_its_folder(
    bob: Any,
    project: Project,
    other_project: Project,
    secret_key_file: Path,
    storage_root: Path,
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", CANARY)
    monkeypatch.setenv("DATABASE_URL", f"postgres://u:{CANARY}@db/renderhub")
    secret = secret_key_file.read_text().strip()
    var = Path(django_settings.VAR_DIR)
    targets = [
        storage_root / "lab" / "pwned.txt",  # another project's folder
        storage_root / "pwned.txt",  # the storage root
        storage_root / "output" / "pwned.txt",  # its own project's folder, bypassing outputs
        var / "pwned.txt",
        tmp_path / "pwned.txt",  # any other folder of the worker
    ]
    inputs = {
        "attack.secret_key": str(secret_key_file),
        "attack.worker_environ": f"/proc/{os.getpid()}/environ",
        "attack.other_file": str(storage_root / "lab" / "results.txt"),
        "attack.targets": [str(t) for t in targets],
        "attack.port": listener.getsockname()[1],
    }
    run = submit_through_the_api(grant_run_on_host(bob), ATTACKS, inputs)

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED
    run.refresh_from_db()

    out = run.outputs
    assert out["attack.key"].endswith("REFUSED") and "No such file" in out["attack.key"]
    assert out["attack.other"].endswith("REFUSED")
    assert CANARY not in out["attack.worker_env"]  # no such process in its PID namespace
    env = out["attack.environment"]
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in env and "65534" in env
    for name in ("DATABASE_URL", "OSS_ACCESS_KEY", "DJANGO", "CELERY", "RENDERHUB_"):
        assert name not in env
    assert out["attack.writes"].count("REFUSED") == len(targets) + 1
    assert "WROTE" not in out["attack.writes"] and "LINKED" not in out["attack.writes"]
    assert not any(t.exists() for t in targets)
    assert out["attack.network"].startswith("REFUSED") and "CONNECTED" not in out["attack.network"]
    assert not accepted(listener)
    # The smuggling folder was published without what its link pointed at.
    backend, key = storage.resolve(run.outputs_dir)
    outputs = backend.local_path(key)
    published = [p.relative_to(outputs).as_posix() for p in outputs.rglob("*") if p.is_file()]
    assert [p for p in published if "/d/" in p] == ["smuggled/d/ok.txt"]
    # Nothing the run left anywhere in storage (outputs, logs, call folders) holds a secret.
    stored = everything_stored(storage_root)
    assert secret.encode() not in stored and CANARY.encode() not in stored
    assert b"unpublished results" in stored  # (the other lab's file is still only its own)
    assert stored.count(b"unpublished results") == 1


def test_a_file_output_linking_out_of_the_task_is_refused(
    bob: Any, project: Project, secret_key_file: Path, storage_root: Path
) -> None:
    source = """version 1.0
task leak {
  input { String target }
  command <<< ln -s "~{target}" key.txt >>>
  output { File key = "key.txt" }
}
"""
    run = submit_through_the_api(
        grant_run_on_host(bob), source, {"leak.target": str(secret_key_file)}
    )

    assert services.start_run(run.pk, "here") == RunState.FAILED

    run.refresh_from_db()
    assert "outside its working directory" in run.failure_message
    assert run.outputs == {}
    assert secret_key_file.read_text().strip().encode() not in everything_stored(storage_root)


def test_the_network_is_there_only_when_the_setting_allows_it(
    bob: Any, project: Project, listener: socket.socket, settings: Any
) -> None:
    settings.WORKFLOW_TASK_NETWORK = True
    source = """version 1.0
task connect {
  input { Int port }
  command <<< (exec 3<>/dev/tcp/127.0.0.1/~{port}) && echo CONNECTED >>>
  output { String out = read_string(stdout()) }
}
"""
    port = listener.getsockname()[1]
    run = submit_through_the_api(grant_run_on_host(bob), source, {"connect.port": port})

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    run.refresh_from_db()
    assert run.outputs == {"connect.out": "CONNECTED"}
    assert accepted(listener)
