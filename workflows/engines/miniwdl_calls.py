"""Reading a miniwdl run directory: its call folders as Cromwell-style calls, and why a
run or a call failed (the deepest cause in miniwdl's error JSON, where it happened: call,
attempt, task, file and line; the tail of stderr).

A task-only WDL has no call folders: miniwdl runs the task in the run folder itself, which
is then read as the run's one call (named after the task, in the folder ``call-<task>``
of the working folder, like any other call's logs).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from renderhub import storage

from ..choices import CallStatus
from .base import CallInfo

if TYPE_CHECKING:
    from ..models import WorkflowRun

TAIL_LINES = 20
EXIT_EVENT = "renderhub exit"  # logged by the plugin after each attempt (miniwdl_plugin)
CACHED_EVENT = "done (cached)"  # logged by miniwdl when a call's outputs come from the cache
ADJUSTED = {  # miniwdl's warnings when it lowers a task's runtime values to the machine's
    "runtime.cpu adjusted to host limit": "cpu",
    "runtime.memory adjusted to host limit": "memory",
}
WDL_DIR = "wdl"  # below the run folder: the main WDL and its imports
MAIN_NAME = "workflow.wdl"  # the main WDL's name in there (validation.MAIN_NAME)
TAIL_CHARS = 3000
CALL_DIR_RE = re.compile(r"^call-(?P<name>[A-Za-z][A-Za-z0-9_]*)(?P<indices>(-\d+)*)$")


def run_dir(run: WorkflowRun) -> Path:
    return Path(settings.WORKFLOW_WORK_DIR) / f"run-{run.pk}"


def miniwdl_dir(run: WorkflowRun) -> Path:
    return run_dir(run) / "miniwdl"


class RunDirReader:
    """Cromwell-style calls from miniwdl's call directories (memoised once they end)."""

    def __init__(self, run: WorkflowRun) -> None:
        self.run = run
        self.dir = miniwdl_dir(run)
        self.wdl_dir = run_dir(run) / WDL_DIR
        self.workflow = run.workflow_name or "workflow"
        self.finished: dict[str, list[CallInfo]] = {}

    @property
    def task_only(self) -> bool:
        """miniwdl ran a task, not a workflow: the run folder is the call's folder."""
        return (self.dir / "task.log").exists() and not (self.dir / "workflow.log").exists()

    @property
    def task_folder(self) -> str:
        return f"call-{self.workflow}"

    def path(self, folder: str) -> Path:
        """The local folder of a call folder name (a task-only run's is the run folder)."""
        if self.task_only and folder == self.task_folder:
            return self.dir
        return self.dir / folder

    def call_folders(self, base: Path | None = None, prefix: str = "") -> list[str]:
        if base is None and self.task_only:
            return [self.task_folder]
        base = base or self.dir
        found: list[str] = []
        if not base.is_dir():
            return found
        for path in sorted(base.iterdir()):
            if path.is_dir() and CALL_DIR_RE.match(path.name):
                found.append(prefix + path.name)
                if (path / "workflow.log").exists():
                    found += self.call_folders(path, prefix + path.name + "/")
        return found

    def calls(self) -> list[CallInfo]:
        calls: list[CallInfo] = []
        for folder in self.call_folders():
            if folder in self.finished:
                calls += self.finished[folder]
                continue
            found = self.read_call(folder)
            if found and all(c.status in TERMINAL for c in found):
                self.finished[folder] = found
            calls += found
        return calls

    def fqn(self, folder: str) -> tuple[str, int]:
        if self.task_only and folder == self.task_folder:
            return self.workflow, -1
        names = [self.workflow]
        shard = -1
        for part in folder.split("/"):
            match = CALL_DIR_RE.match(part)
            assert match is not None
            names.append(match["name"])
            indices = [int(i) for i in match["indices"].split("-") if i]
            shard = indices[-1] if indices else -1
        return ".".join(names), shard

    def read_call(self, folder: str) -> list[CallInfo]:
        path = self.path(folder)
        name, shard = self.fqn(folder)
        # One key per attempt, stable from the moment the folder appears.
        base = CallInfo(key=f"{folder}#1", name=name, shard=shard, backend_job_id=folder)
        if (path / "workflow.log").exists():  # a sub-workflow call: one row, its calls follow
            events = _events(path / "workflow.log.json")
            base.started_at = _timestamp(events[0]["timestamp"]) if events else _mtime(path)
            return [self._ended(base, path) or _with(base, status=CallStatus.RUNNING)]
        events = _events(path / "task.log.json")
        starts = [e["timestamp"] for e in events if _is_start(e)]
        exits = [e for e in events if e.get("message") == EXIT_EVENT]
        attempts = max(len(starts), _count_attempts(path))
        if attempts == 0:
            if (ended := self._ended(base, path)) is not None:
                cached = any(e.get("message") == CACHED_EVENT for e in events)
                hit = cached and ended.status == CallStatus.DONE
                source = _cached_from(path) if hit else None
                return [_with(ended, cache_hit=hit, cached_from=source)]
            return [_with(base, status=CallStatus.STARTING, started_at=_mtime(path))]
        rows = []
        for attempt in range(1, attempts + 1):
            suffix = "" if attempt == 1 else str(attempt)
            row = _with(
                base,
                key=f"{folder}#{attempt}",
                attempt=attempt,
                started_at=_timestamp(starts[attempt - 1]) if attempt <= len(starts) else None,
                stdout=self.log_url(folder, f"stdout{suffix}.txt"),
                stderr=self.log_url(folder, f"stderr{suffix}.txt"),
            )
            exit_status = _exit_status(exits, attempt)
            if attempt < attempts:
                row.status = CallStatus.RETRYABLE_FAILURE
                row.finished_at = _timestamp(starts[attempt]) if attempt < len(starts) else None
                row.return_code = exit_status
            else:
                ended = self._ended(row, path, exit_status, _return_codes(exits))
                row = ended or _with(row, status=CallStatus.RUNNING)
            rows.append(row)
        return rows

    def _ended(
        self,
        row: CallInfo,
        path: Path,
        exit_status: int | None = None,
        return_codes: Any = None,
    ) -> CallInfo | None:
        if (path / "outputs.json").exists():
            return _with(
                row,
                status=CallStatus.DONE,
                return_code=exit_status,  # a code the task accepted (returnCodes), not always 0
                finished_at=_mtime(path / "outputs.json"),
                started_at=row.started_at or _mtime(path / "task.log"),
            )
        error = read_json(path / "error.json")
        if error is None:
            return None
        cause = error.get("cause") or error
        status = CallStatus.ABORTED if cause.get("error") == "Terminated" else CallStatus.FAILED
        code = cause.get("exit_status")
        return _with(
            row,
            status=status,
            return_code=code if isinstance(code, int) else exit_status,
            finished_at=_mtime(path / "error.json"),
            failure_message=call_failure(cause, return_codes, self.wdl_dir)
            if status == CallStatus.FAILED
            else "",
        )

    def log_url(self, folder: str, name: str) -> str:
        return storage.join(self.run.working_dir, "calls", folder, name)

    def local_log(self, url: str) -> Path | None:
        """The local file behind a call log URL of this run, while it is not copied yet."""
        prefix = storage.join(self.run.working_dir, "calls/")
        if not url.startswith(prefix):
            return None
        folder, _sep, name = url.removeprefix(prefix).rpartition("/")
        path = (self.path(folder) / name).resolve()
        return path if path.is_relative_to(self.dir.resolve()) and path.is_file() else None

    def adjustments(self) -> list[str]:
        """cpu and memory miniwdl lowered to the machine's when the task ran (values that
        were expressions: constants were warned about at submission)."""
        found: list[str] = []
        for folder in self.call_folders():
            name, _shard = self.fqn(folder)
            for event in _events(self.path(folder) / "task.log.json"):
                what = ADJUSTED.get(str(event.get("message")))
                if what is None:
                    continue
                original, adjusted = event.get("original"), event.get("adjusted")
                if what == "memory" and isinstance(original, int) and isinstance(adjusted, int):
                    original, adjusted = _size(original), _size(adjusted)
                note = f"{name}: {what} {original} was lowered to this machine's {adjusted}."
                if note not in found:
                    found.append(note)
        return found

    def task_name(self, folder: str) -> str:
        """The task a call folder ran (a call may be named otherwise: ``call t as x``)."""
        error = read_json(self.path(folder) / "error.json") or {}
        return str(error.get("task") or "")


TERMINAL = (
    CallStatus.DONE,
    CallStatus.FAILED,
    CallStatus.ABORTED,
    CallStatus.RETRYABLE_FAILURE,
)


def _with(info: CallInfo, **changes: Any) -> CallInfo:
    return replace(info, **changes)


def _is_start(event: dict[str, Any]) -> bool:
    return event.get("message") == "host process"


def _cached_from(path: Path) -> int | None:
    """The run whose call made a cached call's outputs (the plugin notes its folder)."""
    try:
        source = (path / "cached_from").read_text()
    except OSError:
        return None
    match = re.search(r"/run-(\d+)/miniwdl(/|$)", source.strip())
    return int(match[1]) if match else None


def _size(value: int) -> str:
    return f"{value / (1 << 30):.1f} GiB" if value >= 1 << 30 else f"{value >> 20} MiB"


def _exit_status(exits: list[dict[str, Any]], attempt: int) -> int | None:
    for event in exits:
        if event.get("attempt") == attempt and isinstance(event.get("exit_status"), int):
            return int(event["exit_status"])
    return None


def _return_codes(exits: list[dict[str, Any]]) -> Any:
    return exits[-1].get("return_codes") if exits else None


def _count_attempts(path: Path) -> int:
    return sum(1 for p in path.glob("stdout*.txt"))


def _events(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            if isinstance(event := json.loads(line), dict):
                events.append(event)
    return events


def _timestamp(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def _mtime(path: Path) -> datetime | None:
    try:
        return _timestamp(path.stat().st_mtime)
    except OSError:
        return None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tail(path: Path | str, lines: int = TAIL_LINES) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])[-TAIL_CHARS:]


def allowed_codes(codes: Any) -> str:
    if codes == "*":
        return "any"
    return ", ".join(str(c) for c in (codes if isinstance(codes, list) else [codes]))


def call_failure(
    cause: dict[str, Any], return_codes: Any = None, wdl_dir: Path | None = None
) -> str:
    """Why a call failed: the exit status (and the codes it accepts, when it says) and the
    last lines of its stderr, or the error and where in which WDL file it was raised."""
    if cause.get("error") == "CommandFailed":
        stderr = tail(cause.get("stderr_file") or "")
        text = f"exit status {cause.get('exit_status')}"
        if return_codes is not None:
            text += f" (the task accepts return codes: {allowed_codes(return_codes)})"
        return f"{text}: {stderr}" if stderr else text
    message = cause.get("message") or ""
    text = f"{cause.get('error', 'error')}: {message}".strip(": ")
    if wdl_dir is not None and (where := position(cause.get("pos"), wdl_dir)):
        text += f" ({where})"
    return text


def position(pos: Any, wdl_dir: Path, column: bool = True) -> str:
    """``lib/tasks.wdl line 6, column 13``: the file as the submission named it."""
    if not isinstance(pos, dict) or not pos.get("line"):
        return ""
    source = str(pos.get("source") or "")
    if "://" not in source and source:
        path = Path(source)
        if path.is_relative_to(wdl_dir):
            source = path.relative_to(wdl_dir).as_posix()
        source = "main WDL" if source == MAIN_NAME else source
    where = f"line {pos['line']}" + (f", column {pos.get('column')}" if column else "")
    return f"{source} {where}" if source else where


def failure_message(result: dict[str, Any], calls: list[CallInfo], reader: RunDirReader) -> str:
    """The deepest cause in miniwdl's error JSON, named after the call that failed, with its
    attempt, its task and the file and line of the task (or of the failing expression)."""
    if not result:
        return ""
    cause = result
    while isinstance(cause.get("cause"), dict):
        cause = cause["cause"]
    folder = None
    if reader.task_only:
        folder = reader.task_folder
    elif run_id := cause.get("run"):
        folder = next((f for f in reader.call_folders() if f.split("/")[-1] == run_id), None)
    if folder is None:
        failed = next((c for c in calls if c.status == CallStatus.FAILED), None)
        folder = failed.backend_job_id if failed is not None else None
    codes = None
    details = []
    where = ""
    if folder:
        name, shard = reader.fqn(folder)
        where = f"{name}[{shard}]" if shard >= 0 else name
        attempts = [c for c in calls if c.backend_job_id == folder]
        if attempts:
            last = max(c.attempt for c in attempts)
            details.append(f"attempt {last}")
        if task := reader.task_name(folder):
            error = read_json(reader.path(folder) / "error.json") or {}
            task_pos = position(error.get("pos"), reader.wdl_dir, column=False)
            details.append(f"task {task}" + (f" at {task_pos}" if task_pos else ""))
        events = _events(reader.path(folder) / "task.log.json")
        codes = _return_codes([e for e in events if e.get("message") == EXIT_EVENT])
    text = call_failure(cause, codes, reader.wdl_dir)
    if not where:
        return text
    return (
        f"{where} failed ({', '.join(details)}): {text}" if details else f"{where} failed: {text}"
    )
