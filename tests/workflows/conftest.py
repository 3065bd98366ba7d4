"""Workflow fixtures: a private miniwdl work dir per test, the demo WDLs, a fake Cromwell."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

# The BatchCompute fixtures (a fake BatchCompute and a fake OSS), for the cloud engine.
from .grants import grant_run_on_host

DEMOS = Path(__file__).resolve().parents[2] / "workflows" / "demos"
TOOLS = ("samtools", "bwa", "bcftools", "wgsim")
HAVE_TOOLS = all(shutil.which(tool) for tool in TOOLS)
needs_tools = pytest.mark.skipif(
    not HAVE_TOOLS, reason="needs samtools (with wgsim), bwa and bcftools: make wdl-tools"
)


@pytest.fixture(autouse=True)
def _workflow_dirs(settings: Any, _private_dirs: Path) -> Path:
    settings.WORKFLOW_WORK_DIR = _private_dirs / "workflows"
    return settings.WORKFLOW_WORK_DIR


@pytest.fixture
def host_runner(bob: Any) -> Any:
    """bob, a project member allowed to run workflows on this machine (miniwdl)."""
    return grant_run_on_host(bob)


@pytest.fixture
def germline_wdl() -> str:
    return (DEMOS / "germline" / "germline.wdl").read_text()


@pytest.fixture
def small_inputs() -> dict[str, Any]:
    """The germline demo, smaller: a few seconds on two cores."""
    return {"germline.reference_length": 30000, "germline.read_pairs": 8000}


@pytest.fixture
def cromwell(settings: Any) -> Any:
    """A fake Cromwell server; the settings point the cromwell engine at it."""
    from tests.fakes.cromwell import FakeCromwell

    with FakeCromwell() as fake:
        settings.CROMWELL_URL = fake.url
        settings.CROMWELL_AUTH_HEADER = ""
        yield fake


@pytest.fixture
def submit(project: Any) -> Any:
    """Submit through the services, as the CLI, the admin and the pages do."""
    from workflows import services

    def submit(source: str, inputs: dict[str, Any] | None = None, **fields: Any) -> Any:
        user = fields.pop("user", None)
        fields.setdefault("project", project)
        request = services.WorkflowRequest(wdl_source=source, inputs=inputs or {}, **fields)
        return services.submit(request, user)

    return submit


TINY_WDL = """version 1.0

workflow tiny {
  input {
    Int n = 2
    String word = "hello"
  }
  scatter (i in range(n)) {
    call greet { input: word = word, i = i }
  }
  output {
    Array[String] lines = greet.line
    Array[File] files = greet.file
  }
}

task greet {
  input {
    String word
    Int i
  }
  command <<<
    echo "~{word} ~{i}" | tee greeting.txt
    echo "greeting ~{i} on stderr" >&2
  >>>
  output {
    String line = read_string(stdout())
    File file = "greeting.txt"
  }
}
"""


@pytest.fixture
def tiny_wdl() -> str:
    """Two scattered calls of one small task: quick to run, easy to check."""
    return TINY_WDL


@pytest.fixture
def call() -> Any:
    """call_command with captured stdout and stderr: ``call("workflows").out``."""
    from io import StringIO
    from types import SimpleNamespace

    from django.core.management import call_command

    def call(*args: Any, **options: Any) -> Any:
        out, err = StringIO(), StringIO()
        call_command(*args, stdout=out, stderr=err, **options)
        return SimpleNamespace(out=out.getvalue(), err=err.getvalue())

    return call


@pytest.fixture
def finished_run(submit: Any, tiny_wdl: str) -> Any:
    """The tiny workflow run to its end here (miniwdl, for real)."""
    from workflows import services

    run = submit(tiny_wdl)
    services.start_run(run.pk, "here")
    run.refresh_from_db()
    return run
