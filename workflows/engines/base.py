"""The one interface every workflow engine implements, and what it reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from renderhub import storage

from ..choices import CallStatus

if TYPE_CHECKING:
    from projects.models import Project

    from ..models import Call, WorkflowRun


class EngineError(Exception):
    """The engine refused or could not be reached; the message is meant for users.

    ``transient`` errors (timeouts, 5xx, connection resets that outlasted our bounded
    retries) leave the run as it is, to be polled again; the others end it.
    """

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.status = status


@dataclass
class CallInfo:
    """One attempt of one shard of a call, as the engine reports it."""

    key: str
    name: str
    shard: int = -1
    attempt: int = 1
    status: str = CallStatus.NOT_STARTED
    backend_status: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    return_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    backend_job_id: str = ""
    cache_hit: bool = False
    cached_from: int | None = None  # the RenderHub run whose call made a cached call's outputs
    cache_source: str = ""  # the engine's id of that run (Cromwell's), mapped to cached_from
    failure_message: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}[{self.shard}]" if self.shard >= 0 else self.name


@dataclass
class RunStatus:
    """A run's state mapped onto RunState, with the engine's own word kept verbatim."""

    state: str
    engine_status: str = ""
    calls: list[CallInfo] | None = None  # None: the engine did not say this time
    failure_message: str = ""
    outputs: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    warnings: list[str] | None = None  # learnt while running: added to the run's warnings


@dataclass
class LogText:
    text: str
    source: str  # where it was read from, or why it could not be
    ok: bool


@dataclass
class Submission:
    """What ``start`` hands back: the engine's id for the run and anything it learnt."""

    engine_run_id: str
    engine_status: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    name: str
    runs_here = False  # True: a worker executes the run itself (execute), to the end
    requested_id = False  # True: RenderHub picks engine_run_id before start (idempotent)

    def configuration_problems(self) -> list[str]:
        """Why this engine cannot take runs here (missing settings), or nothing."""
        return []

    def project_notes(self, project: Project, doc: Any) -> tuple[list[str], list[str]]:
        """(problems, warnings) of running the WDL document ``doc`` for ``project`` here."""
        return [], []

    def check_run(
        self, *, working_dir: str, outputs_dir: str, files: list[str], dependencies: bool
    ) -> list[str]:
        """Engine-specific problems with a run about to be created (e.g. its folders).

        The folders are the run's own, or the project's output prefix they will go under.
        """
        return []

    @abstractmethod
    def start(self, run: WorkflowRun) -> Submission:
        """Hand the run to the engine (remote engines return at once)."""

    @abstractmethod
    def poll(self, run: WorkflowRun) -> RunStatus:
        """The run's state and calls now; a terminal state carries the outputs."""

    @abstractmethod
    def abort(self, run: WorkflowRun) -> None:
        """Ask the engine to stop the run (it reports Aborted when it has)."""

    def read_log(self, call: Call, stream: str, limit: int) -> LogText:
        """The tail of a call's stdout or stderr, from where the engine reported it."""
        reported = call.stdout if stream == "stdout" else call.stderr
        if not reported:
            return LogText("", "the engine has not reported this log", False)
        # A plain path is on the engine's machine: readable only inside our local storage.
        url = reported if "://" in reported else f"file://{reported}"
        try:
            backend, key = storage.resolve(url)
            size = backend.stat(key).size or 0
            data = backend.read(key, start=max(0, size - limit)) if size else b""
        except storage.NotFound:
            return LogText("", f"{reported} is not there (yet)", False)
        except storage.StorageError as exc:
            if "://" not in reported:
                return LogText(
                    "", f"{reported} is not readable here (it is on the engine's machine)", False
                )
            return LogText("", f"{reported}: {exc}", False)
        return LogText(data.decode("utf-8", errors="replace"), reported, True)


MAX_DEPENDENCIES_BYTES = 50 * 1024 * 1024


def read_dependencies(url: str) -> bytes | None:
    """The run's dependencies zip, from storage (checked at submission, so it was there)."""
    if not url:
        return None
    try:
        backend, key = storage.resolve(url)
        if (backend.stat(key).size or 0) > MAX_DEPENDENCIES_BYTES:
            raise EngineError(f"The dependencies zip {url} is too large.")
        return backend.read(key)
    except storage.StorageError as exc:
        raise EngineError(f"Could not read the dependencies zip {url}: {exc}") from None
