"""Reading a miniwdl run directory: its call folders as Cromwell-style calls, and why a
run or a call failed (the deepest cause in miniwdl's error JSON, the tail of stderr)."""

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
        self.workflow = run.workflow_name or "workflow"
        self.finished: dict[str, list[CallInfo]] = {}

    def call_folders(self, base: Path | None = None, prefix: str = "") -> list[str]:
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
        path = self.dir / folder
        name, shard = self.fqn(folder)
        # One key per attempt, stable from the moment the folder appears.
        base = CallInfo(key=f"{folder}#1", name=name, shard=shard, backend_job_id=folder)
        if (path / "workflow.log").exists():  # a sub-workflow call: one row, its calls follow
            return [self._ended(base, path) or _with(base, status=CallStatus.RUNNING)]
        starts = [e["timestamp"] for e in _events(path / "task.log.json") if _is_start(e)]
        attempts = max(len(starts), _count_attempts(path))
        if attempts == 0:
            if (ended := self._ended(base, path)) is not None:  # served from the call cache
                return [_with(ended, cache_hit=ended.status == CallStatus.DONE, return_code=None)]
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
            if attempt < attempts:
                row.status = CallStatus.RETRYABLE_FAILURE
                row.finished_at = _timestamp(starts[attempt]) if attempt < len(starts) else None
            else:
                ended = self._ended(row, path)
                row = ended or _with(row, status=CallStatus.RUNNING)
            rows.append(row)
        return rows

    def _ended(self, row: CallInfo, path: Path) -> CallInfo | None:
        if (path / "outputs.json").exists():
            return _with(
                row,
                status=CallStatus.DONE,
                return_code=0,
                finished_at=_mtime(path / "outputs.json"),
                started_at=row.started_at or _mtime(path / "task.log"),
            )
        error = read_json(path / "error.json")
        if error is None:
            return None
        cause = error.get("cause") or error
        status = CallStatus.ABORTED if cause.get("error") == "Terminated" else CallStatus.FAILED
        return _with(
            row,
            status=status,
            return_code=cause.get("exit_status"),
            finished_at=_mtime(path / "error.json"),
            failure_message=call_failure(cause) if status == CallStatus.FAILED else "",
        )

    def log_url(self, folder: str, name: str) -> str:
        return storage.join(self.run.working_dir, "calls", folder, name)

    def local_log(self, url: str) -> Path | None:
        """The local file behind a call log URL of this run, while it is not copied yet."""
        prefix = storage.join(self.run.working_dir, "calls/")
        if not url.startswith(prefix):
            return None
        path = (self.dir / url.removeprefix(prefix)).resolve()
        return path if path.is_relative_to(self.dir.resolve()) and path.is_file() else None


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


def call_failure(cause: dict[str, Any]) -> str:
    """A failed command's exit status and the last lines of its stderr."""
    if cause.get("error") == "CommandFailed":
        stderr = tail(cause.get("stderr_file") or "")
        text = f"exit status {cause.get('exit_status')}"
        return f"{text}: {stderr}" if stderr else text
    message = cause.get("message") or ""
    return f"{cause.get('error', 'error')}: {message}".strip(": ")


def failure_message(result: dict[str, Any], calls: list[CallInfo], reader: RunDirReader) -> str:
    """The deepest cause in miniwdl's error JSON, named after the call that failed."""
    cause = result
    while isinstance(cause.get("cause"), dict):
        cause = cause["cause"]
    if not result:
        return ""
    failed = next((c for c in calls if c.status == CallStatus.FAILED), None)
    where = ""
    if run_id := cause.get("run"):
        folder = next((f for f in reader.call_folders() if f.split("/")[-1] == run_id), None)
        if folder:
            name, shard = reader.fqn(folder)
            where = f"{name}[{shard}]" if shard >= 0 else name
    elif failed is not None:
        where = failed.name
    text = call_failure(cause)
    if cause.get("pos") and cause.get("error") not in ("CommandFailed",):
        pos = cause["pos"]
        text += f" (line {pos.get('line')}, column {pos.get('column')})"
    return f"{where} failed: {text}" if where else text
