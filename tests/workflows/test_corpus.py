"""The WDL corpus (issue 17): each workflow of ``corpus/`` run by ``miniwdl run`` itself and
through RenderHub (submit as the CLI does, imports read next to the WDL, the embedded
engine), with the outputs compared: values equal, files equal byte for byte.

The corpus covers what public workflows use: draft-2, 1.0 and 1.1; nested imports in
folders; structs; scatter, ``if`` and ``select_all``; ``glob``; ``stdout()`` as a File;
``returnCodes``; ``maxRetries``; a task-only WDL; sub-workflows; Map, Pair, optional
inputs and the standard library. Every task is tiny: the whole corpus takes well under
two minutes (``pytest -k "not corpus"`` leaves it out).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from renderhub import storage
from workflows import imports, services
from workflows.choices import RunState
from workflows.engines.miniwdl import PLUGIN_DIR, miniwdl_config

CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = sorted(
    [p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*.wdl")] + ["nested/main.wdl"]
)
DATA = "@data/"  # an inputs value naming a file of corpus/data/

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_the_corpus_has_at_least_twelve_workflows_of_every_version() -> None:
    assert len(CASES) >= 12
    versions = set()
    for case in CASES:
        first = (CORPUS / case).read_text().lstrip().splitlines()[0]
        versions.add(first.split()[1] if first.startswith("version") else "draft-2")
    assert versions == {"draft-2", "1.0", "1.1"}


def inputs_for(case: str, data_root: str) -> dict[str, Any]:
    path = (CORPUS / case).with_suffix(".json")
    text = path.read_text() if path.exists() else "{}"
    return json.loads(text.replace(f'"{DATA}', f'"{data_root}'))


def miniwdl_run(case: str, tmp_path: Path) -> dict[str, Any]:
    """``miniwdl run`` as a user runs it, with RenderHub's host backend (no containers)."""
    from django.conf import settings

    # In the workflows folder, like RenderHub's runs (the plugin opens write_lines() files
    # there to the sandbox's user when the worker runs as root).
    run_dir = Path(settings.WORKFLOW_WORK_DIR) / "miniwdl-run"
    (tmp_path / "inputs.json").write_text(json.dumps(inputs_for(case, f"{CORPUS}/data/")))
    (tmp_path / "miniwdl.cfg").write_text(
        miniwdl_config(
            {"read_from_cache": False, "write_to_cache": False},
            [str(CORPUS / "data")],  # the inputs' folder, besides the workflows folder
        )
    )
    argv = [sys.executable, "-m", "WDL", "run", str(CORPUS / case)]
    argv += ["--input", str(tmp_path / "inputs.json"), "--dir", f"{run_dir}/."]
    argv += ["--cfg", str(tmp_path / "miniwdl.cfg"), "-o", str(tmp_path / "out.json")]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(PLUGIN_DIR)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs: dict[str, Any] = json.loads((tmp_path / "out.json").read_text())["outputs"]
    return outputs


def normalized(value: Any, read: Any) -> Any:
    """Outputs with each file replaced by (name, bytes), whichever engine named it."""
    if isinstance(value, list):
        return [normalized(v, read) for v in value]
    if isinstance(value, dict):
        return {k: normalized(v, read) for k, v in value.items()}
    if isinstance(value, str) and (found := read(value)) is not None:
        return found
    return value


def local_file(value: str) -> Any:
    if value.startswith("/") and Path(value).is_file():
        return ("file", Path(value).name, Path(value).read_bytes())
    return None


def storage_file(value: str) -> Any:
    if not value.startswith("file://"):
        return None
    backend, key = storage.resolve(value)
    return ("file", Path(key).name, backend.read(key))


@pytest.mark.parametrize("case", CASES)
def test_renderhub_and_miniwdl_agree(
    case: str, tmp_path: Path, project: Any, storage_root: Path, storage_url: str
) -> None:
    expected = miniwdl_run(case, tmp_path)

    shutil.copytree(CORPUS / "data", storage_root / "scenes" / "corpus-data")
    wdl = CORPUS / case
    request = services.WorkflowRequest(
        project=project,
        wdl_source=wdl.read_text(),
        inputs=inputs_for(case, storage_url + "scenes/corpus-data/"),
        options={"read_from_cache": False},
        beside=imports.local_beside(wdl.parent),
    )
    run = services.submit(request)
    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED, run.failure_message

    run.refresh_from_db()
    assert normalized(run.outputs, storage_file) == normalized(expected, local_file)
    assert run.calls.exists() and not run.calls.filter(status="Failed").exists()
