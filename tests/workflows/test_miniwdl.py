"""The embedded engine for real: miniwdl run, the host-process backend, bwa/samtools/bcftools."""

from __future__ import annotations

import gzip
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from renderhub import storage
from tests.workers import wait_for
from workflows import services
from workflows.choices import CallStatus, RunState
from workflows.engines.miniwdl import miniwdl_dir
from workflows.models import WorkflowRun

from .conftest import needs_tools

pytestmark = pytest.mark.embedded


def read(url: str) -> bytes:
    backend, key = storage.resolve(url)
    return backend.read(key)


def truth_snps(text: str) -> set[int]:
    """wgsim's planted mutations that are SNPs: one reference base, one (IUPAC) base."""
    found = set()
    for line in text.splitlines():
        _chrom, pos, ref, alt, _strand = line.split("\t")
        if ref in "ACGT" and len(alt) == 1 and alt != "-":
            found.add(int(pos))
    return found


def called_snps(vcf_gz: bytes) -> set[int]:
    found = set()
    for line in gzip.decompress(vcf_gz).decode().splitlines():
        if line.startswith("#"):
            continue
        _chrom, pos, _id, ref, alts = line.split("\t")[:5]
        if len(ref) == 1 and all(len(a) == 1 for a in alts.split(",")):
            found.add(int(pos))
    return found


@needs_tools
@pytest.mark.django_db(transaction=True)
def test_the_germline_demo_runs_through_a_worker_and_finds_the_planted_snps(
    submit: Any, germline_wdl: str, small_inputs: dict[str, Any], task_worker: Any
) -> None:
    run = wait_for(submit(germline_wdl, small_inputs, labels={"demo": "germline"}))

    assert run.state == RunState.SUCCEEDED, run.failure_message
    assert run.worker  # the worker's node name
    calls = list(run.calls.all())
    # make_reference, index_reference, summarize, and 4 calls per sample.
    assert len(calls) == 11
    assert {c.status for c in calls} == {CallStatus.DONE}
    assert {(c.name, c.shard) for c in calls} >= {
        ("germline.align_markdup", 0),
        ("germline.align_markdup", 1),
        ("germline.make_reference", -1),
    }
    assert all(c.started_at and c.finished_at and c.return_code == 0 for c in calls)

    outputs = run.outputs
    assert outputs["germline.min_recall"] >= 0.95
    for sample, vcf_url, truth_url in zip(
        ("sample1", "sample2"), outputs["germline.vcfs"], outputs["germline.truth"], strict=True
    ):
        assert vcf_url.startswith(run.outputs_dir) and vcf_url.endswith(f"{sample}.vcf.gz")
        truth, called = truth_snps(read(truth_url).decode()), called_snps(read(vcf_url))
        assert len(truth) > 15
        assert len(truth & called) / len(truth) >= 0.95  # recall
        assert len(truth & called) / len(called) >= 0.95  # precision
    report = read(outputs["germline.report"]).decode().splitlines()
    assert report[0].startswith("sample\ttruth_snps\tcalled_snps")
    assert [line.split("\t")[0] for line in report[1:]] == ["sample1", "sample2"]
    assert read(outputs["germline.bams"][0])[:2] == b"\x1f\x8b"  # BGZF

    # The logs went to the working folder.
    align = next(c for c in calls if c.name == "germline.align_markdup")
    assert align.stderr.startswith(run.working_dir)
    assert b"markdup" in read(align.stderr).lower()
    assert b'"message": "done"' in read(storage.join(run.working_dir, "miniwdl.log"))


@pytest.mark.django_db
def test_a_failing_task_stderr_becomes_the_failure_message(submit: Any) -> None:
    source = """version 1.0
workflow broken {
  scatter (i in range(2)) {
    call step { input: i = i }
  }
}
task step {
  input { Int i }
  command <<<
    echo "working on ~{i}"
    if [ ~{i} = 1 ]; then
      echo "samtools sort: failed to read header from 'input.bam'" >&2
      exit 3
    fi
  >>>
}
"""
    run = submit(source)

    assert services.start_run(run.pk, "here") == RunState.FAILED

    run.refresh_from_db()
    assert run.failure_message.startswith(
        "broken.step[1] failed (attempt 1, task step at main WDL line 7): exit status 3:"
    )
    assert "failed to read header from 'input.bam'" in run.failure_message
    failed = run.calls.get(shard=1)
    assert failed.status == CallStatus.FAILED and failed.return_code == 3
    assert "failed to read header" in failed.failure_message
    assert "failed to read header" in services.read_log(failed, "stderr").text
    assert run.finished_at is not None and run.outputs == {}


@pytest.mark.django_db
def test_each_attempt_of_a_retried_task_is_a_call(submit: Any) -> None:
    # The sandbox lets a task write only its work/; a failed attempt's work/ is kept beside
    # the next one's (read-only), which is how the second attempt knows it is one.
    source = """version 1.0
workflow flaky {
  call once
  output { String said = once.said }
}
task once {
  command <<<
    if [ ! -d ../work.attempt1 ]; then echo "transient failure" >&2; exit 1; fi
    echo second time lucky
  >>>
  output { String said = read_string(stdout()) }
  runtime { maxRetries: 1 }
}
"""
    run = submit(source)

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    run.refresh_from_db()
    first, second = run.calls.order_by("attempt")
    assert (first.attempt, first.status) == (1, CallStatus.RETRYABLE_FAILURE)
    assert (second.attempt, second.status) == (2, CallStatus.DONE)
    assert "transient failure" in services.read_log(first, "stderr").text
    assert services.read_log(second, "stdout").text == "second time lucky\n"
    assert run.outputs == {"flaky.said": "second time lucky"}


@pytest.mark.django_db
def test_identical_calls_come_from_the_call_cache(submit: Any, tiny_wdl: str) -> None:
    first = submit(tiny_wdl, {"tiny.n": 2})
    services.start_run(first.pk, "here")
    again = submit(tiny_wdl, {"tiny.n": 3})

    assert services.start_run(again.pk, "here") == RunState.SUCCEEDED

    again.refresh_from_db()
    cached = {c.shard: c.cache_hit for c in again.calls.all()}
    assert cached == {0: True, 1: True, 2: False}
    assert again.outputs["tiny.lines"] == ["hello 0", "hello 1", "hello 2"]
    # Cached outputs were copied from the first run's files into this run's folder.
    assert all(url.startswith(again.outputs_dir) for url in again.outputs["tiny.files"])
    assert read(again.outputs["tiny.files"][0]) == b"hello 0\n"


@pytest.mark.django_db
def test_the_cache_can_be_switched_off_by_the_options(submit: Any, tiny_wdl: str) -> None:
    services.start_run(submit(tiny_wdl).pk, "here")
    run = submit(tiny_wdl, options={"read_from_cache": False})

    services.start_run(run.pk, "here")

    assert not run.calls.filter(cache_hit=True).exists()
    assert run.calls.count() == 2


@pytest.mark.django_db
def test_file_inputs_are_staged_from_storage(
    submit: Any, project: Any, storage_root: Path, storage_url: str
) -> None:
    (storage_root / "scenes" / "data").mkdir(parents=True)
    (storage_root / "scenes" / "data" / "reads.txt").write_text("ACGT\nTTGA\n")
    source = """version 1.0
workflow count {
  input { File reads }
  call lines { input: f = reads }
  output { Int n = lines.n }
}
task lines {
  input { File f }
  command <<< wc -l < "~{f}" >>>
  output { Int n = read_int(stdout()) }
}
"""
    run = submit(source, {"count.reads": storage_url + "scenes/data/reads.txt"})

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    run.refresh_from_db()
    assert run.outputs == {"count.n": 2}


@pytest.mark.django_db
def test_tasks_do_not_inherit_the_workers_secrets(
    submit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "very-secret-value")
    monkeypatch.setenv("CROMWELL_AUTH_HEADER", "Bearer very-secret-token")
    source = """version 1.0
workflow envcheck {
  call dump
  output { String env = dump.env }
}
task dump {
  command <<< env | sort >>>
  output { String env = read_string(stdout()) }
}
"""
    run = submit(source)

    services.start_run(run.pk, "here")

    run.refresh_from_db()
    env = run.outputs["envcheck.env"]
    assert "PATH=" in env
    assert "very-secret" not in env


@pytest.mark.django_db
def test_nul_characters_a_task_prints_do_not_stop_its_run_being_recorded(submit: Any) -> None:
    source = """version 1.0
workflow nul {
  call say
  output { String said = say.out }
}
task say {
  command <<< printf 'a\\0b'; printf 'bad\\0news' >&2; exit 3 >>>
  output { String out = read_string(stdout()) }
}
"""
    run = submit(source)

    assert services.start_run(run.pk, "here") == RunState.FAILED

    run.refresh_from_db()
    assert run.failure_message.endswith("exit status 3: badnews")
    assert run.calls.get().failure_message == "exit status 3: badnews"


@pytest.mark.django_db
def test_tasks_wait_for_cpus_like_containers_would(submit: Any) -> None:
    source = """version 1.0
workflow busy {
  scatter (i in range(2)) {
    call hog { input: i = i }
  }
}
task hog {
  input { Int i }
  command <<< sleep 0.5 >>>
  runtime { cpu: 999 }
}
"""
    run = submit(source)  # cpu is clamped to the host's cores: the two cannot overlap

    services.start_run(run.pk, "here")

    first, second = sorted(run.calls.all(), key=lambda c: c.started_at)
    assert first.finished_at and second.started_at
    assert second.started_at >= first.finished_at - timedelta(seconds=0.3)


SLEEPER = """version 1.0
workflow sleeper {
  call nap
}
task nap {
  command <<<
    # A child in the background and one in the foreground: both must die on abort.
    sleep 300 &
    echo $! > background.pid
    echo $$ > shell.pid
    sleep 301
  >>>
}
"""


def _sleepers(besides: frozenset[int] = frozenset()) -> list[int]:
    """Host pids of SLEEPER's sleeps (inside the sandbox, $$ and $! are its own pids), but
    ``besides``: such sleeps the machine ran before the test (CI saw one)."""
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"]
        and p.info["cmdline"][:2] in (["sleep", "300"], ["sleep", "301"])
        and p.pid not in besides
    ]


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
@pytest.mark.django_db(transaction=True)
def test_abort_leaves_no_process_behind(submit: Any, settings: Any, sandbox: str) -> None:
    settings.WORKFLOW_SANDBOX = sandbox
    before = frozenset(_sleepers())
    run = submit(SLEEPER)
    outcome: list[str] = []

    def work() -> None:  # what a worker thread does, closing its connection after
        from django.db import connection

        try:
            outcome.append(services.start_run(run.pk, "here"))
        finally:
            connection.close()

    runner = threading.Thread(target=work)
    runner.start()
    work = miniwdl_dir(run) / "call-nap" / "work"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        (work / "shell.pid").exists()
        and run.calls.filter(status=CallStatus.RUNNING).exists()
        and len(_sleepers(before)) == 2
    ):
        time.sleep(0.1)
    pids = _sleepers(before)
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)

    assert services.abort(run)
    runner.join(60)

    assert not runner.is_alive() and outcome == [RunState.ABORTED]
    run.refresh_from_db()
    assert run.state == RunState.ABORTED
    assert run.calls.get().status == CallStatus.ABORTED
    for pid in pids:
        assert not _alive(pid), f"process {pid} survived the abort"
    assert _sleepers(before) == []


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.django_db
def test_a_run_aborted_before_it_started_never_runs(submit: Any, tiny_wdl: str) -> None:
    run = submit(tiny_wdl)

    assert services.abort(run)

    assert services.start_run(run.pk, "here") == "skipped"
    run.refresh_from_db()
    assert run.state == RunState.ABORTED
    assert not miniwdl_dir(run).exists()


@pytest.mark.django_db
def test_a_run_whose_worker_went_silent_is_given_up(
    submit: Any, tiny_wdl: str, settings: Any
) -> None:
    from django.utils import timezone

    run = submit(tiny_wdl)
    long_ago = timezone.now() - timedelta(seconds=settings.RENDER_STALE_AFTER + 5)
    WorkflowRun.objects.filter(pk=run.pk).update(
        state=RunState.RUNNING, sent_at=long_ago, heartbeat_at=long_ago, worker="gone@host"
    )

    services.poll_runs()

    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert run.failure_message.startswith("Lost contact with gone@host")


@pytest.mark.django_db
def test_a_duplicate_delivery_does_nothing(submit: Any, tiny_wdl: str) -> None:
    run = submit(tiny_wdl)
    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    assert services.start_run(run.pk, "elsewhere") == "skipped"

    run.refresh_from_db()
    assert run.worker == "here"


def test_the_plugin_is_found_without_installing_anything() -> None:
    """miniwdl lists the backend through the in-repo dist-info, on the plugin folder's path."""
    import subprocess
    import sys

    from workflows.engines.miniwdl import PLUGIN_DIR

    script = (
        "from importlib.metadata import entry_points;"
        "print([e.value for e in entry_points(group='miniwdl.plugin.container_backend')])"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(PLUGIN_DIR)}
    found = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert "renderhub_miniwdl_host:HostProcess" in found.stdout


# A stand-in worker: starts miniwdl the way the engine does, then waits to be killed.
WORKER = """
import os, subprocess, sys, time
env = dict(os.environ, RENDERHUB_MINIWDL_PARENT=str(os.getpid()))
subprocess.Popen(sys.argv[1:], env=env, start_new_session=True)
time.sleep(600)
"""


def test_miniwdl_stops_its_tasks_when_its_worker_dies(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from workflows.engines.miniwdl import PLUGIN_DIR, miniwdl_config

    (tmp_path / "sleeper.wdl").write_text(SLEEPER)
    (tmp_path / "miniwdl.cfg").write_text(miniwdl_config({"read_from_cache": False}))
    argv = [sys.executable, "-m", "renderhub_miniwdl_host", "run", str(tmp_path / "sleeper.wdl")]
    argv += ["--dir", f"{tmp_path}/run/.", "--cfg", str(tmp_path / "miniwdl.cfg")]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(PLUGIN_DIR)}
    before = frozenset(_sleepers())
    worker = subprocess.Popen([sys.executable, "-c", WORKER, *argv], env=env)
    pid_file = tmp_path / "run" / "call-nap" / "work" / "shell.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and len(_sleepers(before)) == 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = _sleepers(before)
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)

    worker.send_signal(signal.SIGKILL)  # no chance to clean up: the kernel tells miniwdl
    worker.wait()

    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)


@pytest.mark.django_db
def test_imports_come_from_the_dependencies_zip(
    submit: Any, storage_root: Path, storage_url: str
) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "tasks/shout.wdl",
            "version 1.0\ntask shout {\n  input { String word }\n"
            '  command <<< echo "~{word}" | tr a-z A-Z >>>\n'
            "  output { String loud = read_string(stdout()) }\n}\n",
        )
    (storage_root / "scenes").mkdir(exist_ok=True)
    (storage_root / "scenes" / "deps.zip").write_bytes(buffer.getvalue())
    source = (
        'version 1.0\nimport "tasks/shout.wdl" as lib\n'
        'workflow main {\n  call lib.shout { input: word = "quiet" }\n'
        "  output { String loud = shout.loud }\n}\n"
    )
    run = submit(source, dependencies_url=storage_url + "scenes/deps.zip")

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    run.refresh_from_db()
    assert run.outputs == {"main.loud": "QUIET"}
    assert run.calls.get().name == "main.shout"
