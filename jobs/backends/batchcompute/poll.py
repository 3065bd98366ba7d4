"""Polling: one beat cycle brings every active cloud job's chunks and frames up to date.

Polling costs, per active job and cycle, one ``get_job``; a page of ``list_instances`` only
when the job's instance counts changed (at most BATCHCOMPUTE_POLL_PAGES pages, a longer
listing continues next cycle); and, while instances run, one OSS listing of the events
folder plus a ranged read of each file that grew; and, in a cycle where an instance ended,
one listing of the output folder (a frame is done when its file is there). Everything the
poller knows is in the database, so a restarted manager carries on where it stopped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jobs import services
from jobs.choices import FrameState, TaskState
from jobs.models import CloudJob, CloudJobState, Frame, RenderJob, Task
from renderhub import batchcompute as bc
from renderhub import storage
from renderhub.cloud import get_client
from renderhub.compute import ComputeError

from .common import OPEN, TASK, close, frame_pattern, take_lease
from .finish import release_due
from .submit import launch

log = logging.getLogger(__name__)

TAIL_BYTES = 4000
CLOCK_SKEW = timedelta(minutes=10)  # between this manager's clock and the storage's
EVENT_READS_PER_JOB = 50  # events files read per job and cycle, besides those of ended instances
TASK_FIELDS = ("job_id", "index", "state", "attempts", "node", "cloud_job_id", "cloud_instance")


@dataclass
class PollReport:
    polled: int = 0
    submitted: int = 0
    failed: int = 0
    released: int = 0
    to_finish: list[int] = field(default_factory=list)


def poll_all() -> PollReport:
    """One cycle: resume interrupted submissions, poll every active cloud job, release."""
    report = PollReport()
    now = timezone.now()
    resumable = CloudJob.objects.filter(state=CloudJobState.SUBMITTING).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )
    for cloud_job in resumable:
        report.submitted += launch(cloud_job) == CloudJobState.ACTIVE
    for pk in CloudJob.objects.filter(state=CloudJobState.ACTIVE).values_list("pk", flat=True):
        try:
            report.polled += poll(pk)
        except (ComputeError, storage.StorageError) as exc:
            report.failed += 1
            log.warning("polling cloud job %s failed: %s", pk, exc)
        except Exception:  # one broken job must not stop the others' polling and release
            report.failed += 1
            log.exception("polling cloud job %s failed", pk)
    report.to_finish = list(
        CloudJob.objects.filter(state=CloudJobState.ENDED, finished_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    report.released = release_due()
    return report


def poll_job(job: RenderJob) -> None:
    for pk in job.cloud_jobs.filter(state=CloudJobState.ACTIVE).values_list("pk", flat=True):
        poll(pk)


def poll(cloud_job_id: int) -> bool:
    """Bring one cloud job's chunks and frames up to date; False if another poller has it."""
    if not take_lease(cloud_job_id, CloudJobState.ACTIVE):
        return False
    cloud_job = CloudJob.objects.select_related("job").get(pk=cloud_job_id)
    try:
        _Poll(cloud_job).run()
    except Exception as exc:
        CloudJob.objects.filter(pk=cloud_job_id).update(error=str(exc)[:2000])
        raise
    finally:
        CloudJob.objects.filter(pk=cloud_job_id).update(lease_until=None)
    return True


class _Poll:
    def __init__(self, cloud_job: CloudJob) -> None:
        self.cj = cloud_job
        self.job = cloud_job.job
        self.client = get_client()
        rows = Task.objects.filter(cloud_job=cloud_job).only(*TASK_FIELDS)  # not frames, tails
        self.tasks = {t.cloud_instance: t for t in rows}
        self.results: dict[str, Any] = dict(cloud_job.agent_results)
        self.events_after: str | None = None  # where the next cycle's event reads resume
        self._frames: dict[int, set[int]] = {}  # task pk -> its frame numbers
        self._stored: dict[int, dict[str, str]] | None = None  # frame -> {file name: URL}

    def run(self) -> None:
        cj, now = self.cj, timezone.now()
        # The reaper requeues RUNNING chunks without heartbeats; ours beat while we watch.
        Task.objects.filter(cloud_job=cj, state=TaskState.RUNNING).update(heartbeat_at=now)
        try:
            status = self.client.get_job(cj.cloud_id)
        except bc.NotFound:
            self.end(bc.State.DELETED, "the BatchCompute job was deleted outside RenderHub")
            return
        if cj.stop_requested and status.state in (bc.State.WAITING, bc.State.RUNNING):
            self.client.stop_job(cj.cloud_id)  # a stop that failed during cancel
        seen = {"state": status.state, "metrics": status.instance_metrics}
        snapshot = dict(cj.snapshot)
        ended: list[tuple[Task, bc.InstanceStatus]] = []
        complete = True
        terminal = status.state in bc.TERMINAL_STATES
        if cj.scan_marker is not None or snapshot.get("seen") != seen or terminal:
            if cj.scan_marker is None:
                snapshot["pass"] = seen  # the counts this listing pass starts from
            instances, complete = self.scan()
            for inst in instances:
                task = self.tasks.get(inst.index)
                if task is None or task.state not in OPEN or inst.state == bc.State.WAITING:
                    continue
                task = self.start(task, inst)
                if inst.state in bc.TERMINAL_STATES and task.state == TaskState.RUNNING:
                    ended.append((task, inst))
            if complete:  # unchanged for the whole pass: nothing to list until they change
                snapshot["seen"] = seen if snapshot.pop("pass", None) == seen else {}
        if ended or any(t.state == TaskState.RUNNING for t in self.tasks.values()):
            self.read_events({inst.index for _task, inst in ended})
        if self.events_after is not None:
            snapshot["events_after"] = self.events_after
        for task, inst in ended:
            self.finish_instance(task, inst, status)
        CloudJob.objects.filter(pk=cj.pk).update(
            cloud_state=status.state,
            message=status.message,
            polled_at=now,
            snapshot=snapshot,
            scan_marker=cj.scan_marker,
            agent_results=self.results,
            event_offsets=cj.event_offsets,
            error="",
        )
        if terminal and complete:
            self.end(status.state, status.message)
        elif not (terminal or cj.stop_requested) and not self.open_chunks():
            self.stop_leftover(status)

    def scan(self) -> tuple[list[bc.InstanceStatus], bool]:
        """Instances from the lowest open one, at most BATCHCOMPUTE_POLL_PAGES pages."""
        open_indices = [i for i, t in self.tasks.items() if t.state in OPEN and i is not None]
        if not open_indices:
            self.cj.scan_marker = None
            return [], True
        low = min(open_indices)
        resume = self.cj.scan_marker or 0
        marker = resume if resume > low else low
        found: list[bc.InstanceStatus] = []
        for _ in range(max(1, settings.BATCHCOMPUTE_POLL_PAGES)):
            page, next_marker = self.client.list_instances(self.cj.cloud_id, TASK, marker)
            found += page
            if next_marker is None:
                self.cj.scan_marker = None
                return found, True
            marker = next_marker
        self.cj.scan_marker = marker  # continue here next cycle
        return found, False

    def start(self, task: Task, inst: bc.InstanceStatus | None) -> Task:
        """The chunk runs (claimed from QUEUED like a worker would), on this attempt."""
        now = timezone.now()
        attempts = inst.retry_count + 1 if inst else max(task.attempts, 1)
        node = (inst.node_ip if inst else "") or task.node or "BatchCompute"
        if task.state == TaskState.QUEUED:
            if Task.objects.filter(pk=task.pk, state=TaskState.QUEUED, cloud_job=self.cj).update(
                state=TaskState.RUNNING,
                attempts=attempts,
                node=node,
                started_at=(inst.started if inst else None) or now,
                heartbeat_at=now,
                finished_at=None,
                exit_code=None,
                failure_reason="",
                log_url=storage.join(self.job.output_url, "_logs", f"task-{task.index}/"),
            ):
                services.task_started(task)
        elif task.attempts != attempts or task.node != node:  # a retry, maybe elsewhere
            if Task.objects.filter(pk=task.pk, state=TaskState.RUNNING).update(
                attempts=attempts, node=node
            ):
                task.attempts, task.node = attempts, node
            return task
        else:
            return task  # running as we knew it
        task = self.tasks[task.cloud_instance] = Task.objects.only(*TASK_FIELDS).get(pk=task.pk)
        return task

    def read_events(self, ended: set[int]) -> None:
        """The agents' JSON events that reached OSS since the last cycle.

        One listing shows which files grew; each is read from where the last read stopped.
        Files of instances that just ended are always read (their chunk is finished from
        them); of the others at most EVENT_READS_PER_JOB, taking turns across cycles.
        """
        backend, prefix = storage.resolve(self.cj.log_url + "events/")
        offsets = dict(self.cj.event_offsets)
        grown = []
        for entry in backend.walk(prefix):
            name = entry.key.removeprefix(prefix)
            if entry.size and entry.size > offsets.get(name, 0) and name.split(".")[0].isdigit():
                grown.append((int(name.split(".")[0]), name, entry.key))
        cursor = str(self.cj.snapshot.get("events_after", ""))
        now = [g for g in grown if g[0] in ended]
        rest = sorted((g for g in grown if g[0] not in ended), key=lambda g: (g[1] <= cursor, g[1]))
        for index, name, key in now + rest[:EVENT_READS_PER_JOB]:
            offset = offsets.get(name, 0)
            data = backend.read(key, start=offset)
            end = data.rfind(b"\n") + 1  # a line still being written waits for next cycle
            for line in data[:end].splitlines():
                self.apply(index, line)
            offsets[name] = offset + end
        if len(rest) > EVENT_READS_PER_JOB:
            self.events_after = rest[EVENT_READS_PER_JOB - 1][1]
        self.cj.event_offsets = offsets

    def apply(self, index: int, line: bytes) -> None:
        """Apply one line of an instance's events file.

        The file sits on storage the node writes, and on the VM the renderer runs
        unconfined: a line is checked like any input (its frame must be one of this
        instance's chunk, its seconds a sane number), and a bad line is skipped.
        """
        try:
            event = json.loads(line)
        except ValueError:
            return
        task = self.tasks.get(index)
        if task is None or not isinstance(event, dict):
            return
        kind = event.get("event")
        frame = event.get("frame")
        about_a_frame = kind in ("frame_started", "frame_done", "frame_failed")
        if about_a_frame and (not isinstance(frame, int) or frame not in self.frames_of(task)):
            log.warning("cloud job %s instance %s: ignored %.200r", self.cj.pk, index, line)
            return
        if task.state == TaskState.QUEUED and kind != "finished":
            task = self.start(task, None)  # running before the API said so
        if kind == "frame_started":
            services.frame_started(task, int(event["frame"]))
        elif kind == "frame_done":
            # Not done yet: the file reaches storage (OutputMapping) when the instance ends,
            # and only then is the frame done (finish_instance). A name is kept only if it
            # is a frame file name of this job (never "..", never another folder).
            pattern = frame_pattern(self.job)
            names = [PurePosixPath(str(p)).name for p in event.get("outputs") or []]
            names = [n for n in names if pattern.match(n)]
            rendered = self.results.setdefault(str(index), {}).setdefault("rendered", {})
            rendered[str(frame)] = {
                "name": names[0] if names else "",
                "seconds": _seconds(event.get("seconds")),
            }
        elif kind == "frame_failed":
            Frame.objects.filter(job_id=task.job_id, number=int(event["frame"])).update(
                failure_reason=str(event.get("reason", ""))[:2000]
            )
        elif kind == "finished":
            self.results.setdefault(str(index), {}).update(
                status=event.get("status"),
                reason=str(event.get("reason") or ""),
                exit_code=event.get("exit_code"),
            )

    def frames_of(self, task: Task) -> set[int]:
        if task.pk not in self._frames:
            self._frames[task.pk] = set(task.frame_set.values_list("number", flat=True))
        return self._frames[task.pk]

    def finish_instance(self, task: Task, inst: bc.InstanceStatus, status: bc.JobStatus) -> None:
        task = Task.objects.get(pk=task.pk)
        if task.state != TaskState.RUNNING:
            return
        ok = inst.state == bc.State.FINISHED
        Task.objects.filter(pk=task.pk).update(**self.tails(task))
        agent = self.results.get(str(inst.index)) or {}
        reason = "" if ok else self.reason(inst, agent, status)
        unreported, missing = self.done_frames(task, agent.get("rendered") or {})
        # Exit code 0 is not a frame: a frame the agent did not find on the node, or whose
        # file did not reach storage, was not rendered, whatever the instance's state.
        if ok and unreported:
            ok = False
            reason = (
                f"instance {inst.index} ended without reporting frame(s) "
                f"{_numbers(unreported)}: no output file was found for them"
            )
        if ok and missing:
            ok = False
            reason = (
                f"instance {inst.index} reported frame(s) {_numbers(missing)} rendered, but "
                f"no file of theirs is in {self.job.output_url}: the upload (OutputMapping) "
                "did not happen or failed"
            )
        if reason and (unreported or missing) and not ok:
            log.warning("cloud job %s instance %s: %s", self.cj.pk, inst.index, reason)
        services.task_finished(
            task,
            ok=ok,
            reason=reason,
            exit_code=0 if ok else inst.exit_code,
            retryable=False,  # BatchCompute retried it already (MaxRetryCount)
        )

    def done_frames(self, task: Task, rendered: dict[str, Any]) -> tuple[list[int], list[int]]:
        """Mark done the chunk's frames that the agent reported and whose file is in
        storage; returns the frames never reported and those reported without a file."""
        unreported: list[int] = []
        missing: list[int] = []
        open_frames = task.frame_set.exclude(state=FrameState.DONE)
        for number in open_frames.values_list("number", flat=True):
            entry = rendered.get(str(number))
            if not isinstance(entry, dict):
                unreported.append(number)
                continue
            files = self.stored().get(number, {})
            url = files.get(str(entry.get("name") or "")) or next(iter(files.values()), "")
            if not url:
                missing.append(number)
                continue
            services.frame_done(
                task,
                number,
                seconds=_seconds(entry.get("seconds")),
                output_url=url,
                thumbnail_url="",  # made by finish(), which runs once the job has ended
            )
        return unreported, missing

    def stored(self) -> dict[int, dict[str, str]]:
        """The job's non-empty frame files in its output folder written since this cloud
        job was created (an older one is another run's), by frame number: one listing per
        cycle, and only in a cycle where an instance ended."""
        if self._stored is None:
            backend, prefix = storage.resolve(self.job.output_url)
            pattern, found = frame_pattern(self.job), dict[int, dict[str, str]]()
            since, marker = self.cj.created_at - CLOCK_SKEW, None
            while True:
                page = backend.list(prefix, delimiter="/", marker=marker)
                for entry in page.entries:
                    match = pattern.match(entry.name)
                    fresh = entry.modified is None or entry.modified >= since
                    if match and not entry.is_dir and entry.size and fresh:
                        files = found.setdefault(int(match.group(1)), {})
                        files[entry.name] = backend.url_for(entry.key)
                if not (marker := page.next_marker):
                    break
            self._stored = found
        return self._stored

    def reason(self, inst: bc.InstanceStatus, agent: dict[str, Any], status: bc.JobStatus) -> str:
        parts = []
        if agent.get("reason"):
            parts.append(agent["reason"])  # the agent's own words
        elif inst.state == bc.State.STOPPED:
            parts.append("stopped on BatchCompute")
        else:
            if inst.error_message:
                code = f"{inst.error_code}: " if inst.error_code else ""
                parts.append(f"{code}{inst.error_message}")
            elif inst.exit_code:
                parts.append(f"the node command exited with {inst.exit_code}")
            if stderr := self.tail(inst.stderr_path).strip():
                parts.append(f"node stderr: {stderr[-1000:]}")
        if status.message:
            parts.append(f"BatchCompute: {status.message}")
        if inst.retry_count:
            parts.append(f"after {inst.retry_count + 1} attempts")
        return "; ".join(parts) or f"instance {inst.index} {inst.state.lower()}"

    def tails(self, task: Task) -> dict[str, str]:
        folder = storage.join(self.job.output_url, "_logs", f"task-{task.index}/")
        names = {"agent.log": "agent_log_tail", "stdout.log": "stdout_tail"}
        names["stderr.log"] = "stderr_tail"
        try:
            backend, prefix = storage.resolve(folder)
            found = {e.name: e for e in backend.list(prefix).entries if not e.is_dir}
            return {
                column: _read_tail(backend, found[name].key, found[name].size)
                for name, column in names.items()
                if name in found
            }
        except storage.StorageError as exc:  # logs are a convenience: never fail over them
            log.warning("no log tails for %s: %s", task, exc)
            return {}

    def tail(self, url: str) -> str:
        if not url.startswith("oss://"):
            return ""
        try:
            backend, key = storage.resolve(url)
            return _read_tail(backend, key, backend.stat(key).size)
        except storage.StorageError:
            return ""

    def open_chunks(self) -> bool:
        return Task.objects.filter(cloud_job=self.cj, state__in=OPEN).exists()

    def stop_leftover(self, status: bc.JobStatus) -> None:
        """Every chunk has ended but the cloud job has not: with JobFailOnInstanceFail false
        the service may keep it Running after an instance failed for good, and on an
        AutoCluster its VMs are paid for. Stop it and close it (released per policy)."""
        if not self.client.stop_job(self.cj.cloud_id):
            return  # it ended meanwhile: the next cycle reads how
        message = f"stopped by RenderHub: every chunk had ended, the job was still {status.state}"
        log.info("cloud job %s: %s", self.cj.cloud_id, message)
        close(self.cj, bc.State.STOPPED, message)

    def end(self, state: str, message: str) -> None:
        """The cloud job is over: chunks it left open fail with its message."""
        reason = f"the BatchCompute job {state.lower()}" + (f": {message}" if message else "")
        for task in Task.objects.filter(cloud_job=self.cj, state__in=OPEN):
            if task.state == TaskState.QUEUED:
                services.fail_unclaimed(task, reason)
            else:
                services.task_finished(
                    task, ok=False, reason=reason, exit_code=None, retryable=False
                )
        close(self.cj, state, message)


def _numbers(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:20])) + (", …" if len(numbers) > 20 else "")


def _read_tail(backend: storage.Storage, key: str, size: int | None) -> str:
    start = max(0, (size or 0) - TAIL_BYTES)
    return backend.read(key, start=start).decode("utf-8", errors="replace")


def _seconds(value: object) -> float:
    """A frame's render time from a node event: a number between 0 and the chunk timeout."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    seconds = float(value)
    return seconds if 0.0 <= seconds <= settings.RENDER_TIMEOUT else 0.0
