"""The fake BatchCompute running instances for real (``run_commands = True``).

A scheduler thread starts due instances (by job priority, after their upstream tasks,
one per running VM of a cluster, at most ``max_parallel``); each runs in a work dir of its
own: the package (PackagePath) is fetched from the OSS fake and unpacked, Mounts and
InputMapping are materialised under a per-instance node root (writable mounts are copied
back while the command runs), the CommandLine runs with the BATCH_COMPUTE_DAG_*
environment, and afterwards OutputMapping, LogMapping, stdout and stderr land in the OSS
fake as BatchCompute names them.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from .batchcompute_jobs import Jobs
from .batchcompute_state import TERMINAL, Instance, Job, Task, under


class Runner(Jobs):
    # --- the scheduler and instance execution -------------------------------------------

    def _schedule(self) -> None:
        while not self._stopping.wait(0.02):
            if not self.run_commands:
                continue
            try:
                with self._lock:
                    self.tick()
                    self._start_due()
            except Exception as exc:  # the fake itself failed: tests check this list
                self.internal_errors.append(exc)

    def _slots(self, task: Task) -> int:
        """How many more instances of ``task`` may start now."""
        free = self.max_parallel - len(self._running)
        cluster_id = task.desc.get("ClusterId") or ""
        if cluster_id:  # one instance per running VM of the cluster at a time
            busy = sum(
                1
                for j in self.jobs.values()
                for t, i in j.instances()
                if i.state == "Running" and t.desc.get("ClusterId") == cluster_id
            )
            vms = self.running_vms(cluster_id) if cluster_id in self.clusters else 0
            free = min(free, vms - busy)
        return free

    def _start_due(self) -> None:
        for job in sorted(self.jobs.values(), key=lambda j: -int(j.desc["Priority"])):
            if job.state not in ("Waiting", "Running"):
                continue
            for task in job.tasks.values():
                if task.state in TERMINAL or not self._upstream_done(job, task):
                    continue
                for inst in task.instances:
                    if inst.state == "Waiting" and self._slots(task) > 0:
                        self._begin(job, task, inst)
                        key = (job.id, task.name, inst.index)
                        self._running.add(key)
                        threading.Thread(
                            target=self._execute, args=(job, task, inst), daemon=True
                        ).start()

    def _upstream_done(self, job: Job, task: Task) -> bool:
        deps = job.desc["DAG"].get("Dependencies") or {}
        upstream = [name for name, children in deps.items() if task.name in children]
        return all(job.tasks[name].state == "Finished" for name in upstream)

    def _execute(self, job: Job, task: Task, inst: Instance) -> None:
        key = (job.id, task.name, inst.index)
        vm = Path(
            tempfile.mkdtemp(prefix=f"{job.id[-6:]}-{task.name}-{inst.index}-", dir=self.work_root)
        )
        try:
            with self._lock:
                injected = inst.fail_attempts > 0
                if injected:
                    inst.fail_attempts -= 1
            if injected:
                code, error = 137, ("InstanceLost", "The VM running the instance was lost.")
            else:
                code, error = self._run(job, task, inst, vm)
            with self._lock:
                self._end_attempt(job, task, inst, code, *error)
        except Exception as exc:
            self.internal_errors.append(exc)
            with self._lock:
                self._end_attempt(job, task, inst, 1, "FakeError", repr(exc))
        finally:
            with self._lock:
                self._running.discard(key)
            if not self.keep_work_dirs:
                shutil.rmtree(vm, ignore_errors=True)

    def _run(self, job: Job, task: Task, inst: Instance, vm: Path) -> tuple[int, tuple[str, str]]:
        desc = task.desc
        params = desc.get("Parameters") or {}
        command = params.get("Command") or {}
        root, work = vm / "root", vm / "workdir"
        work.mkdir(parents=True)
        root.mkdir()
        if package := command.get("PackagePath"):
            data = self._oss_read(package)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(work, filter="data")
        writable: list[tuple[Path, str]] = []
        # Files as they came from OSS: a mount writes back only what the command changed.
        synced: dict[Path, tuple[int, int]] = {}
        for entry in (desc.get("Mounts") or {}).get("Entries") or []:
            local = under(root, entry["Destination"])
            self._download_prefix(entry["Source"], local)
            if entry.get("WriteSupport"):
                writable.append((local, entry["Source"]))
                for path in local.rglob("*"):
                    if path.is_file():
                        stat = path.stat()
                        synced[path] = (stat.st_size, stat.st_mtime_ns)
        for source, destination in (desc.get("InputMapping") or {}).items():
            self._download_prefix(source, under(root, destination))
        env = {
            **os.environ,
            **{k: str(v) for k, v in (command.get("EnvVars") or {}).items()},
            "BATCH_COMPUTE_DAG_JOB_ID": job.id,
            "BATCH_COMPUTE_DAG_TASK_ID": task.name,
            "BATCH_COMPUTE_DAG_INSTANCE_ID": str(inst.index),
            "BATCH_COMPUTE_OSS_HOST": "oss-fake.aliyuncs.com",
            "BATCH_COMPUTE_REGION": self.region,
            "BATCH_COMPUTE_CLUSTER_ID": desc.get("ClusterId") or "auto",
            "BATCH_COMPUTE_WORKER_ID": f"worker-{inst.index}",
            self.node_root_env: str(root),
        }
        stdout, stderr = vm / "stdout", vm / "stderr"
        timeout = float(desc.get("Timeout") or 3600)
        started = time.monotonic()
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            try:
                process = subprocess.Popen(
                    shlex.split(command.get("CommandLine") or ""),
                    cwd=work,
                    env=env,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                err.write(f"cannot run the command line: {exc}\n".encode())
                process = None
            inst.process = process
            timed_out = False
            while process is not None and process.poll() is None:
                if inst.stop.wait(self.sync_interval):
                    self._kill(inst)
                elif time.monotonic() - started > timeout:
                    timed_out = True
                    self._kill(inst)
                for local, source in writable:
                    self._upload_tree(local, source, synced)
            code = process.wait() if process is not None else 127
        for local, source in writable:
            self._upload_tree(local, source, synced)
        for local_dir, target in (desc.get("OutputMapping") or {}).items():
            self._upload_tree(under(root, local_dir), target, {})
        name = f"{job.id}.{task.name}.{inst.index}"
        for local_file, target in (desc.get("LogMapping") or {}).items():
            path = under(root, local_file)
            if path.is_file():
                self._oss_write(f"{target}{path.name}.{name}", path.read_bytes())
        self._oss_write(f"{params.get('StdoutRedirectPath', '')}stdout.{name}", stdout.read_bytes())
        self._oss_write(f"{params.get('StderrRedirectPath', '')}stderr.{name}", stderr.read_bytes())
        if timed_out:
            return 137, ("Timeout", f"The instance ran longer than {timeout:g} s.")
        return code, ("", "")

    # --- OSS, through the OSS fake's own tables -----------------------------------------

    def _split(self, url: str) -> tuple[str, str]:
        if not url.startswith("oss://"):
            raise ValueError(f"not an OSS URL: {url!r}")
        bucket, _, key = url[len("oss://") :].partition("/")
        return bucket, key

    def _oss_read(self, url: str) -> bytes:
        bucket, key = self._split(url)
        obj = self.oss.get(bucket, key)
        if obj is None:
            raise FileNotFoundError(url)
        return bytes(obj.data)

    def _oss_write(self, url: str, data: bytes) -> None:
        if url.startswith("oss://"):
            bucket, key = self._split(url)
            self.oss.put(bucket, key, data)

    def _download_prefix(self, url: str, local: Path) -> None:
        bucket, prefix = self._split(url)
        local.mkdir(parents=True, exist_ok=True)
        for key in self.oss.keys(bucket):
            if key.startswith(prefix) and not key.endswith("/"):
                target = local / key[len(prefix) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.oss.get(bucket, key).data)

    def _upload_tree(self, local: Path, url: str, synced: dict[Path, tuple[int, int]]) -> None:
        if not local.is_dir():
            return
        for path in sorted(local.rglob("*")):
            if not path.is_file():
                continue
            try:
                stat = path.stat()
                mark = (stat.st_size, stat.st_mtime_ns)
                if synced.get(path) == mark:
                    continue
                data = path.read_bytes()
            except OSError:
                continue  # removed while we looked
            self._oss_write(url + path.relative_to(local).as_posix(), data)
            synced[path] = mark
