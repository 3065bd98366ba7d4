"""BatchCompute's public ``:cromwell`` app: what ``bcs asub cromwell`` submits.

A run becomes one App job of the app ``:cromwell`` with the inputs ``WDL``,
``WORKFLOW_INPUTS``, ``WORKFLOW_OPTIONS`` (OSS files RenderHub stages under the run's
working folder) and ``WORKING_DIR``, and the output ``OUTPUTS_DIR``. The app runs a
Cromwell server with its BCS backend, which turns each call into a BatchCompute job of
its own; the run's state is the App job's, and its calls come from the Cromwell metadata
the app leaves in ``OUTPUTS_DIR/workflow_metadata.json`` when it ends. Cromwell dropped
that backend after release 80, so this path is Cromwell ≤ 80 (whatever the app runs).

The BatchCompute SDK (GPL-2.0) is reached only through RenderHub's client,
``renderhub.batchcompute`` (signed requests, timeouts, bounded retries), never imported here.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from renderhub import storage
from renderhub.batchcompute import AppJobPlan, BatchCompute, BatchComputeError, State
from renderhub.cloud import get_client, tagged
from renderhub.compute import ComputeError

from ..choices import RunState
from .base import Engine, EngineError, RunStatus, Submission
from .cromwell import status_from_metadata, task_only_problems

if TYPE_CHECKING:
    from projects.models import Project

    from ..models import WorkflowRun

log = logging.getLogger(__name__)

APP = ":cromwell"
METADATA = "workflow_metadata.json"
STAGED = "renderhub/"  # below the working folder: the files handed to the app
# The VM that runs Cromwell itself (each call gets the instance type of its runtime cluster).
APP_CONFIG = {"InstanceType": "ecs.sn1ne.large", "ClassicNetwork": False, "Timeout": 86400 * 7}
# A RenderHub option (removed before the options reach Cromwell): App job Config overrides.
CONFIG_OPTION = "bcs_app_config"
STATES: dict[str, RunState] = {  # a job's state as the API reports it (a str)
    State.WAITING: RunState.SUBMITTED,
    State.RUNNING: RunState.RUNNING,
    State.FINISHED: RunState.SUCCEEDED,
    State.FAILED: RunState.FAILED,
    State.STOPPED: RunState.ABORTED,
}


def engine() -> BatchComputeCromwellEngine:
    return BatchComputeCromwellEngine()


def _engine_error(exc: Exception) -> EngineError:
    return EngineError(
        str(exc), transient=getattr(exc, "transient", False), status=getattr(exc, "status", None)
    )


class BatchComputeCromwellEngine(Engine):
    name = "batchcompute-cromwell"

    def client(self) -> BatchCompute:
        try:
            return get_client()
        except ComputeError as exc:
            raise EngineError(str(exc)) from None

    def configuration_problems(self) -> list[str]:
        try:
            self.client()
        except EngineError as exc:
            return [f"The BatchCompute Cromwell engine cannot be used: {exc}"]
        return []

    def project_notes(self, project: Project, doc: Any) -> tuple[list[str], list[str]]:
        return task_only_problems(doc), []

    def check_run(
        self, *, working_dir: str, outputs_dir: str, files: list[str], dependencies: bool
    ) -> list[str]:
        problems = []
        if dependencies:
            problems.append("The BatchCompute Cromwell app takes one WDL file, no imports zip.")
        for url, what in ((working_dir, "working folder"), (outputs_dir, "outputs folder")):
            if not url.startswith("oss://"):
                problems.append(
                    f"The BatchCompute Cromwell app reads and writes OSS: the {what} must be "
                    f"an oss:// folder (not {url})."
                )
        for value in files:
            if not value.startswith("oss://"):
                problems.append(f"{value}: File inputs must be oss:// objects on BatchCompute.")
        return problems

    # --- submitting --------------------------------------------------------------------

    def stage(self, run: WorkflowRun) -> dict[str, str]:
        """Write the WDL, inputs and options to OSS; their URLs by the app's input names."""
        if run.dependencies_url:
            raise EngineError("The BatchCompute Cromwell app takes one WDL file, no imports zip.")
        options = {k: v for k, v in (run.options or {}).items() if k != CONFIG_OPTION}
        files = {
            "WDL": ("workflow.wdl", run.wdl_source.encode(), "text/plain"),
            "WORKFLOW_INPUTS": ("inputs.json", json.dumps(run.inputs).encode(), "application/json"),
            "WORKFLOW_OPTIONS": ("options.json", json.dumps(options).encode(), "application/json"),
        }
        folder = storage.join(run.working_dir, STAGED)
        urls = {}
        try:
            backend, prefix = storage.resolve(folder)
            for name, (filename, data, content_type) in files.items():
                backend.write(prefix + filename, data, content_type=content_type)
                urls[name] = storage.join(folder, filename)
        except storage.StorageError as exc:
            raise EngineError(f"Could not stage the workflow to {folder}: {exc}") from None
        return urls

    def start(self, run: WorkflowRun) -> Submission:
        staged = self.stage(run)
        plan = AppJobPlan(
            name=tagged(f"workflow-{run.pk}"),
            description=f"RenderHub workflow run #{run.pk} {run.name}",
            app=APP,
            inputs={**staged, "WORKING_DIR": run.working_dir},
            outputs={"OUTPUTS_DIR": run.outputs_dir},
            log_url=storage.join(run.working_dir, "logs/"),
            config={**APP_CONFIG, **(run.options or {}).get(CONFIG_OPTION, {})},
        )
        client = self.client()
        # The run's id and creation time to the microsecond, both stored on the row, make
        # the token: a retried create is the same job, and another install (or a restored
        # database) reusing the id never matches it.
        token = f"renderhub-workflow-{run.pk}-{run.created_at:%Y%m%d%H%M%S%f}"
        try:
            job_id = client.create_app_job(plan, token)
        except BatchComputeError as exc:
            raise _engine_error(exc) from None
        return Submission(job_id, State.WAITING)

    # --- following -----------------------------------------------------------------------

    def poll(self, run: WorkflowRun) -> RunStatus:
        try:
            job = self.client().get_job(run.engine_run_id)
        except BatchComputeError as exc:
            raise _engine_error(exc) from None
        state = STATES.get(job.state, RunState.RUNNING)
        status = RunStatus(
            state=state,
            engine_status=job.state,
            started_at=job.started,
            finished_at=job.ended,
            failure_message=job.message if state == RunState.FAILED else "",
        )
        if state in (RunState.SUCCEEDED, RunState.FAILED):
            self.add_metadata(run, status)
        return status

    def add_metadata(self, run: WorkflowRun, status: RunStatus) -> None:
        """Calls, outputs and Cromwell's own verdict from the metadata the app left."""
        url = storage.join(run.outputs_dir, METADATA)
        try:
            backend, key = storage.resolve(url)
            metadata = json.loads(backend.read(key))
        except storage.NotFound:
            status.engine_status += f" (no {METADATA})"
            return
        except (storage.StorageError, ValueError) as exc:
            raise EngineError(f"Could not read {url}: {exc}", transient=True) from None
        cromwell = status_from_metadata(metadata)
        status.calls = cromwell.calls
        status.outputs = dict(metadata.get("outputs") or {})
        status.engine_status += f" (Cromwell: {cromwell.engine_status})"
        if cromwell.state == RunState.FAILED:
            status.state = RunState.FAILED
        if status.state == RunState.FAILED:
            reasons = [status.failure_message, cromwell.failure_message]
            status.failure_message = "\n".join(r for r in reasons if r)

    def abort(self, run: WorkflowRun) -> None:
        try:
            self.client().stop_job(run.engine_run_id)  # False: it had ended already
        except BatchComputeError as exc:
            raise _engine_error(exc) from None
