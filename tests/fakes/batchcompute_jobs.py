"""The fake BatchCompute's jobs: DAG jobs of tasks of instances, their requests and their
state machine (Waiting, Running, then Finished, Failed or Stopped; failed instances are
retried up to MaxRetryCount), driven by the test or by the runner."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from typing import Any

from .batchcompute_clusters import Clusters
from .batchcompute_state import (
    NAME_RE,
    TERMINAL,
    BCError,
    Instance,
    Job,
    Task,
    conflict,
    instance_json,
    not_found,
    now,
    require,
)


class Jobs(Clusters):
    # --- test drivers ------------------------------------------------------------------

    def job_by_name(self, name: str) -> Job:
        with self._lock:
            [job] = [j for j in self.jobs.values() if j.name == name]
            return job

    def start_instances(
        self, job_id: str, task: str = "render", indices: list[int] | None = None
    ) -> None:
        """Waiting instances start Running (all, or ``indices``)."""
        with self._lock:
            job, t = self._job_task(job_id, task)
            for inst in t.instances:
                if inst.state == "Waiting" and (indices is None or inst.index in indices):
                    self._begin(job, t, inst)

    def finish_instance(
        self,
        job_id: str,
        index: int,
        *,
        task: str = "render",
        exit_code: int = 0,
        error_code: str = "",
        error_message: str = "",
    ) -> str:
        """End the instance's current attempt; returns its new state. A failure is retried
        (back to Waiting) while RetryCount < MaxRetryCount."""
        with self._lock:
            job, t = self._job_task(job_id, task)
            inst = t.instances[index]
            if inst.state == "Waiting":
                self._begin(job, t, inst)
            self._end_attempt(job, t, inst, exit_code, error_code, error_message)
            return inst.state

    def fail_job(self, job_id: str, message: str) -> None:
        """The job fails as a whole (say its AutoCluster could not be created)."""
        with self._lock:
            job = self._get_job(job_id)
            for _t, inst in job.instances():
                if inst.state not in TERMINAL:
                    self._kill(inst)
                    inst.state, inst.ended = "Stopped", now()
            self._finish_job(job, "Failed", message)

    def fail_attempts(self, job_id: str, index: int, times: int = 1, task: str = "render") -> None:
        """With run_commands: the instance's next ``times`` attempts fail (a lost VM)."""
        with self._lock:
            self._job_task(job_id, task)[1].instances[index].fail_attempts = times

    def instance(self, job_id: str, index: int, task: str = "render") -> Instance:
        with self._lock:
            return self._job_task(job_id, task)[1].instances[index]

    # --- requests ----------------------------------------------------------------------

    def _create_job(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        if (existing := self._idempotent("job", params, body)) is not None:
            return 201, {"Id": existing}
        require(body, "Name", "Priority", "DAG")
        if body.get("Type", "DAG") != "DAG":
            raise BCError(400, "InvalidType", "This fake runs DAG jobs only.")
        if not NAME_RE.match(str(body["Name"])):
            raise BCError(
                400, "InvalidName", "Name must be [A-Za-z0-9_-], not starting with a digit."
            )
        priority = body["Priority"]
        if not isinstance(priority, int) or not 0 <= priority <= 1000:
            raise BCError(400, "InvalidPriority", "Specified parameter Priority is not valid.")
        dag = body["DAG"]
        if not isinstance(dag, dict) or not dag.get("Tasks"):
            raise BCError(400, "MissingDAG.Tasks", "DAG.Tasks is mandatory for this action.")
        tasks: dict[str, Task] = {}
        for name, desc in dag["Tasks"].items():
            if not NAME_RE.match(name):
                raise BCError(400, "InvalidTaskName", f"Task name {name!r} is not valid.")
            count = desc.get("InstanceCount", 1)
            if not isinstance(count, int) or count < 1:
                raise BCError(400, "InvalidInstanceCount", "InstanceCount must be >= 1.")
            cluster_id = desc.get("ClusterId") or ""
            auto = desc.get("AutoCluster")
            if cluster_id:
                if cluster_id not in self.clusters:
                    raise BCError(400, "InvalidClusterId", f"Cluster {cluster_id} does not exist.")
            elif not auto or not auto.get("InstanceType"):
                raise BCError(400, "MissingClusterId", "ClusterId or AutoCluster is mandatory.")
            elif not (auto.get("ImageId") or auto.get("ECSImageId")):
                raise BCError(400, "MissingImageId", "AutoCluster.ImageId is mandatory.")
            tasks[name] = Task(name, desc, [Instance(i) for i in range(count)])
        deps = dag.get("Dependencies") or {}
        if any(
            name in deps.get(child, ()) for name, children in deps.items() for child in children
        ):
            raise BCError(400, "BadDAG", "It is a cyclic dag.")
        job = Job(f"job-{uuid.uuid4().hex.upper()}", body, tasks, now())
        self.jobs[job.id] = job
        self._remember("job", params, body, job.id)
        return 201, {"Id": job.id}

    def _stop_job(self, job_id: str) -> tuple[int, Any]:
        job = self._get_job(job_id)
        if job.state not in ("Waiting", "Running"):
            raise conflict(job.state)
        for task, inst in job.instances():
            if inst.state not in TERMINAL:
                self._kill(inst)
                inst.state, inst.ended = "Stopped", now()
            if task.state not in TERMINAL:
                task.state, task.ended = "Stopped", now()
        job.state, job.ended = "Stopped", now()
        return 201, None

    def _start_job(self, job_id: str) -> tuple[int, Any]:
        job = self._get_job(job_id)
        if job.state not in ("Stopped", "Failed"):
            raise conflict(job.state)
        for task, inst in job.instances():
            if inst.state != "Finished":
                inst.state, inst.ended, inst.stop = "Waiting", None, threading.Event()
            if task.state != "Finished":
                task.state = "Waiting"
        job.state, job.ended, job.message = "Waiting", None, ""
        return 201, None

    def _change_priority(self, job_id: str, body: Any) -> tuple[int, Any]:
        job = self._get_job(job_id)
        if job.state != "Stopped":
            raise conflict(job.state)
        if not isinstance(body, dict) or not isinstance(body.get("Priority"), int):
            raise BCError(400, "InvalidPriority", "Specified parameter Priority is not valid.")
        job.desc["Priority"] = body["Priority"]
        return 200, None

    def _delete_job(self, job_id: str) -> tuple[int, Any]:
        job = self._get_job(job_id)
        if job.state not in TERMINAL:
            raise conflict(job.state)
        del self.jobs[job_id]
        return 204, None

    def _list_instances(self, segments: list[str], params: dict[str, str]) -> tuple[int, Any]:
        job, task = self._job_task(segments[1], segments[3])
        start = int(params.get("Marker") or 0)
        limit = max(1, min(100, int(params.get("MaxItemCount") or 50)))
        items = [i for i in task.instances if i.index >= start]
        state = params.get("State")
        if state:
            items = [i for i in items if i.state == state]
        page, rest = items[:limit], items[limit:]
        return 200, {
            "Items": [instance_json(job, task, i) for i in page],
            "NextMarker": str(rest[0].index) if rest else "",
        }

    def _get_instance(self, segments: list[str]) -> tuple[int, Any]:
        job, task = self._job_task(segments[1], segments[3])
        index = int(segments[5]) if segments[5].isdigit() else -1
        if not 0 <= index < len(task.instances):
            raise not_found()
        return 200, instance_json(job, task, task.instances[index])

    # --- the state machine -------------------------------------------------------------

    def _begin(self, job: Job, task: Task, inst: Instance) -> None:
        moment = now()
        inst.state, inst.started, inst.ended = "Running", moment, None
        inst.node_ip = inst.node_ip or f"192.168.1.{inst.index % 250 + 2}"
        if task.state == "Waiting":
            task.state, task.started = "Running", moment
        if job.state == "Waiting":
            job.state, job.started = "Running", moment

    def _end_attempt(
        self, job: Job, task: Task, inst: Instance, exit_code: int, code: str, message: str
    ) -> None:
        if inst.state != "Running":
            return  # stopped meanwhile
        inst.exit_code, inst.error_code, inst.error_message = exit_code, code, message
        inst.ended, inst.progress = now(), 100 if exit_code == 0 else inst.progress
        if exit_code == 0:
            inst.state = "Finished"
        elif inst.retry_count < int(task.desc.get("MaxRetryCount") or 0):
            inst.retry_count += 1
            inst.state, inst.started = "Waiting", None
            return
        else:
            inst.state = "Failed"
        fail_job = job.desc.get("JobFailOnInstanceFail", True)
        failed_for_good = any(i.state == "Failed" for i in task.instances)
        if failed_for_good and not fail_job and self.failed_instance_keeps_job_running:
            return  # the other reading: task and job stay Running
        if all(i.state in TERMINAL for i in task.instances):
            failed = any(i.state == "Failed" for i in task.instances)
            task.state, task.ended = ("Failed" if failed else "Finished"), now()
        if inst.state == "Failed" and fail_job:
            for _t, other in job.instances():
                if other.state not in TERMINAL:
                    self._kill(other)
                    other.state, other.ended = "Stopped", now()
            self._finish_job(job, "Failed", f"Instance {inst.index} of task {task.name} failed.")
        elif all(t.state in TERMINAL for t in job.tasks.values()):
            self._finish_job(job, "Finished", "")

    def _finish_job(self, job: Job, state: str, message: str) -> None:
        for task in job.tasks.values():
            if task.state not in TERMINAL:
                task.state, task.ended = ("Stopped" if state != "Finished" else state), now()
        job.state, job.message, job.ended = state, message, now()
        if state == "Finished" and job.desc.get("AutoRelease"):
            self.jobs.pop(job.id, None)

    def _kill(self, inst: Instance) -> None:
        inst.stop.set()
        if inst.process is not None and inst.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(inst.process.pid, signal.SIGKILL)
