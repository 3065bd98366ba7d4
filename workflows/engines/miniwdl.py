"""The embedded engine: ``miniwdl run`` in a subprocess of the worker, tasks in a sandbox.

miniwdl's Python API only works on a process's main thread and once per process, so a
Celery task runs the ``miniwdl run`` CLI instead, with RenderHub's host-process backend
(``miniwdl_plugin/``: each task command in a bubblewrap sandbox, see ``miniwdl_files``),
a generated configuration and miniwdl's call cache. While it runs, the run directory is
read every second (call directories, their logs and results) and reported as
Cromwell-style calls (``miniwdl_calls``); a run marked *aborting* gets SIGTERM, which miniwdl
passes on to every task's process group. At the end the declared outputs are copied to
the run's outputs folder and the logs to its working folder, both through
``renderhub.storage``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from django.conf import settings

from renderhub import storage

from .. import validation
from ..choices import CallStatus, RunState
from . import miniwdl_final
from .base import (
    CallInfo,
    Engine,
    EngineError,
    LogText,
    RunStatus,
    Submission,
    read_dependencies,
)
from .miniwdl_calls import RunDirReader, failure_message, miniwdl_dir, read_json, run_dir, tail
from .miniwdl_files import BACKEND as BACKEND  # bench/workflows.py runs miniwdl with it
from .miniwdl_files import miniwdl_config, published_files, stage

if TYPE_CHECKING:
    from ..models import Call, WorkflowRun

log = logging.getLogger(__name__)

PLUGIN_DIR = Path(__file__).resolve().parent / "miniwdl_plugin"
READ_SECONDS = 1.0  # how often the run directory is read while miniwdl runs
BEAT_SECONDS = 2.0  # heartbeats while staging inputs and copying outputs
# miniwdl needs a few seconds after SIGTERM: each task gets SIGTERM, then SIGKILL after 5 s.
ABORT_GRACE_SECONDS = 20.0
LOG_SUFFIXES = (".txt", ".json", ".log")  # a call folder's logs and results, not its data
# What the worker passes on to miniwdl and so to every task: not its secrets.
PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHELL")

# A report gets the run's status and says whether to keep going (False: abort it).
Report = Callable[[RunStatus], bool]


def engine() -> MiniwdlEngine:
    return MiniwdlEngine()


class MiniwdlEngine(Engine):
    name = "miniwdl"
    runs_here = True

    def configuration_problems(self) -> list[str]:
        from renderhub.agent.sandbox import problem

        # Task commands are what members wrote: never run them outside the sandbox asked for.
        if reason := problem(settings.WORKFLOW_SANDBOX):
            return [f"The miniwdl engine cannot sandbox tasks (WORKFLOW_SANDBOX): {reason}."]
        return []

    def start(self, run: WorkflowRun) -> Submission:
        raise EngineError("miniwdl runs are executed by a worker, not submitted.")

    def poll(self, run: WorkflowRun) -> RunStatus:
        """What the run directory says now (only meaningful on the machine running it)."""
        return RunStatus(
            state=RunState.RUNNING,
            engine_status="running",
            calls=RunDirReader(run).calls(),
        )

    def abort(self, run: WorkflowRun) -> None:
        """Nothing to send: the worker running it sees *aborting* within a second."""

    def execute(self, run: WorkflowRun, report: Report) -> RunStatus:
        return MiniwdlRun(run, report).execute()

    def read_log(self, call: Call, stream: str, limit: int) -> LogText:
        log = super().read_log(call, stream, limit)
        if log.ok:
            return log
        # Not copied to storage yet (the call still runs): read it in the run folder.
        reported = call.stdout if stream == "stdout" else call.stderr
        if (path := RunDirReader(call.run).local_log(reported)) is None:
            return log
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - limit))
            return LogText(fh.read().decode("utf-8", errors="replace"), str(path), True)


# --- running -------------------------------------------------------------------------


class MiniwdlRun:
    def __init__(self, run: WorkflowRun, report: Report) -> None:
        self.run = run
        self.report = report
        self.root = run_dir(run)
        self.dir = miniwdl_dir(run)
        self.reader = RunDirReader(run)
        self.process: subprocess.Popen[bytes] | None = None
        self.descendants: dict[int, float] = {}  # pid -> create time, killed at the end
        self.abort_sent_at: float | None = None
        self.published_logs: set[str] = set()
        self.local_inputs: list[str] = []  # staged inputs that are files of local storage
        self.last_beat = 0.0

    def execute(self) -> RunStatus:
        try:
            argv = self.prepare()
            self.launch(argv)
            self.watch()
        except EngineError as exc:
            return RunStatus(RunState.FAILED, "failed", failure_message=str(exc))
        except Exception as exc:
            log.exception("miniwdl run of %s failed inside RenderHub", self.run)
            return RunStatus(
                RunState.FAILED, "failed", failure_message=f"RenderHub error running miniwdl: {exc}"
            )
        finally:
            self.kill_everything()  # whatever happened, no task process outlives the run
        return self.finish()

    # preparing

    def prepare(self) -> list[str]:
        if self.root.exists():  # an earlier, interrupted attempt of this very run
            shutil.rmtree(self.root)
        wdl_dir = self.root / "wdl"
        wdl_dir.mkdir(parents=True)
        dependencies = read_dependencies(self.run.dependencies_url)
        if dependencies:
            validation.unpack(dependencies, wdl_dir)
        main = wdl_dir / validation.MAIN_NAME
        main.write_text(self.run.wdl_source)
        inputs = self.root / "inputs.json"
        inputs.write_text(json.dumps(self.stage_inputs(dependencies), indent=1))
        cfg = self.root / "miniwdl.cfg"
        cfg.write_text(miniwdl_config(self.run.options, self.local_inputs, self.run.project_id))
        return [
            sys.executable,
            "-m",
            "renderhub_miniwdl_host",  # miniwdl's CLI, ended if this worker dies
            "run",
            str(main),
            "--input",
            str(inputs),
            "--dir",
            f"{self.dir}/.",
            "--cfg",
            str(cfg),
            "--log-json",
            "--no-color",
            "--no-outside-imports",
            "-o",
            str(self.root / "result.json"),
        ]

    def stage_inputs(self, dependencies: bytes | None) -> dict[str, Any]:
        """The inputs with each File/Directory storage URL replaced by a local path."""
        import WDL

        doc = validation.load(self.run.wdl_source, dependencies)
        exe = validation.executable(doc)
        values = WDL.values_from_json(self.run.inputs, exe.available_inputs, namespace=exe.name)
        staged: dict[str, str] = {}

        inputs = self.root / "inputs"

        def local(item: WDL.Value.File | WDL.Value.Directory) -> str:
            if item.value not in staged:
                path = stage(item.value, inputs / str(len(staged)), self.beat)
                if not path.is_relative_to(inputs):  # not copied: the task reads it in place
                    self.local_inputs.append(str(path))
                staged[item.value] = str(path)
            return staged[item.value]

        values = WDL.Value.rewrite_env_paths(values, local)
        return WDL.values_to_json(values, namespace=exe.name)

    def launch(self, argv: list[str]) -> None:
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env.update(PYTHONPATH=str(PLUGIN_DIR), NO_COLOR="1", PYTHONUNBUFFERED="1")
        env["RENDERHUB_MINIWDL_PARENT"] = str(os.getpid())
        with open(self.root / "miniwdl.log", "wb") as log_file:
            self.process = subprocess.Popen(
                argv,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                start_new_session=True,
            )
        log.info("miniwdl run of %s started (pid %s)", self.run, self.process.pid)

    def watch(self) -> None:
        assert self.process is not None
        while self.process.poll() is None:
            self.note_descendants()
            status = RunStatus(RunState.RUNNING, "running", calls=self.calls())
            self.publish_finished_call_logs(status.calls or [])
            if not self.report(status) and self.abort_sent_at is None:
                log.info("aborting the miniwdl run of %s", self.run)
                self.abort_sent_at = time.monotonic()
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signal.SIGTERM)
            if self.abort_sent_at and time.monotonic() - self.abort_sent_at > ABORT_GRACE_SECONDS:
                self.kill_everything()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(READ_SECONDS)

    def calls(self) -> list[CallInfo]:
        """The calls now; those miniwdl stopped because another failed are not *aborted*."""
        calls = self.reader.calls()
        if self.abort_sent_at is not None:
            return calls
        failed = next((c for c in calls if c.status == CallStatus.FAILED), None)
        reason = f"stopped when {failed.label} failed" if failed else "stopped by miniwdl"
        return [
            replace(c, status=CallStatus.STOPPED, failure_message=reason)
            if c.status == CallStatus.ABORTED
            else c
            for c in calls
        ]

    def note_descendants(self) -> None:
        assert self.process is not None
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            with contextlib.suppress(psutil.Error):
                self.descendants.setdefault(child.pid, child.create_time())

    def kill_everything(self) -> None:
        """miniwdl, and every task process it ever started that is still there."""
        if self.process is not None and self.process.poll() is None:
            self.note_descendants()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid, created in self.descendants.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created:  # not a recycled pid
                    proc.kill()

    def beat(self, *_args: Any) -> None:
        """Keep the run's heartbeat fresh during long copies (progress calls come often)."""
        if time.monotonic() - self.last_beat >= BEAT_SECONDS:
            self.last_beat = time.monotonic()
            self.report(RunStatus(RunState.RUNNING, "running"))

    # finishing

    def finish(self) -> RunStatus:
        assert self.process is not None
        status = self._finish()
        status.warnings = self.reader.adjustments()
        return status

    def _finish(self) -> RunStatus:
        assert self.process is not None
        calls = self.calls()
        result = read_json(self.root / "result.json") or {}
        aborted = self.abort_sent_at is not None
        try:
            self.publish_logs()
            miniwdl_final.copy_logs(self.run, self.reader)  # final_*_log(s)_dir options
        except storage.StorageError as exc:
            log.warning("could not copy the logs of %s: %s", self.run, exc)
        if self.process.returncode == 0 and "outputs" in result:
            try:
                outputs = self.publish_outputs(result["outputs"])
                files = list(published_files(self.dir / "out"))
                miniwdl_final.copy_outputs(self.run, files, self.dir, self.beat)
            except (storage.StorageError, miniwdl_final.FinalCopyError) as exc:
                where = self.run.outputs_dir
                return RunStatus(
                    RunState.FAILED,
                    "failed",
                    calls=calls,
                    failure_message=str(exc)
                    if isinstance(exc, miniwdl_final.FinalCopyError)
                    else f"The workflow succeeded but copying its outputs to {where} failed: {exc}",
                )
            return RunStatus(RunState.SUCCEEDED, "succeeded", calls=calls, outputs=outputs)
        if aborted:
            return RunStatus(RunState.ABORTED, "aborted", calls=calls)
        message = failure_message(result, calls, self.reader) or (
            f"miniwdl exited with status {self.process.returncode}: "
            + tail(self.root / "miniwdl.log")
        )
        return RunStatus(RunState.FAILED, "failed", calls=calls, failure_message=message)

    def publish_outputs(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """Copy miniwdl's out/ folder to the outputs folder; outputs name the copies."""
        urls: dict[str, str] = {}
        backend, prefix = storage.resolve(self.run.outputs_dir)
        for real, relative in published_files(self.dir / "out"):
            backend.upload_file(real, prefix + relative, progress=self.beat)
            urls[str(real)] = storage.join(self.run.outputs_dir, relative)

        def rewrite(value: Any) -> Any:
            # By real path: a cached run's outputs name the files of the run that made them.
            if isinstance(value, str) and value.startswith("/"):
                return urls.get(os.path.realpath(value), value)
            if isinstance(value, list):
                return [rewrite(v) for v in value]
            if isinstance(value, dict):
                return {k: rewrite(v) for k, v in value.items()}
            return value

        return {key: rewrite(value) for key, value in outputs.items()}

    def publish_finished_call_logs(self, calls: list[CallInfo]) -> None:
        for call in calls:
            if call.status in (CallStatus.DONE, CallStatus.FAILED, CallStatus.ABORTED):
                folder = call.backend_job_id
                if folder not in self.published_logs:
                    self.published_logs.add(folder)
                    with contextlib.suppress(storage.StorageError, OSError):
                        self.publish_call_logs(folder)

    def publish_call_logs(self, folder: str) -> None:
        backend, prefix = storage.resolve(storage.join(self.run.working_dir, "calls/"))
        for path in sorted(self.reader.path(folder).glob("*")):
            if path.is_symlink() or not path.is_file():
                continue  # only what miniwdl wrote: a link could lead anywhere on the worker
            if path.suffix in LOG_SUFFIXES or path.name == "command":
                backend.upload_file(path, f"{prefix}{folder}/{path.name}")

    def publish_logs(self) -> None:
        backend, prefix = storage.resolve(self.run.working_dir)
        for name in ("miniwdl.log", "inputs.json", "result.json"):
            if (path := self.root / name).is_file():
                backend.upload_file(path, prefix + name)
        for name in ("workflow.log", "outputs.json", "error.json"):
            if (path := self.dir / name).is_file():
                backend.upload_file(path, prefix + name)
        for folder in self.reader.call_folders():
            if folder not in self.published_logs:
                self.publish_call_logs(folder)
