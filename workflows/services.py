"""Workflow run operations. Admin actions, pages, CLI and beat all call these.

A run is created only after everything about it was checked (WDL, inputs, options,
labels, folders, the engine's configuration), and is handed to its engine by a task
enqueued when the transaction commits. Engines report through :func:`record`
(:mod:`.recording`, the one place a run's state and calls change): miniwdl's runner calls
it every second from the worker, the beat task :func:`poll_runs` after asking a remote
engine.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from projects.models import Project
from renderhub import storage

from . import access, imports, options, runtime_notes, validation
from .choices import ACTIVE_RUN_STATES, Engine, RunState
from .engines import EngineError, LogText, get_engine
from .models import Call, WorkflowRun
from .recording import announce, end_run, record

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

MAX_SOURCE_BYTES = validation.MAX_WDL_BYTES
# A run whose start task was never enqueued (broker down at submission) is sent again.
REQUEUE_AFTER = timedelta(seconds=60)
# A remote run the engine never heard of this long after it was sent has been lost.
LOST_AFTER = timedelta(minutes=10)
LOG_TAIL_BYTES = 64 * 1024


class SubmissionError(ValidationError):
    """Invalid submission; ``message_dict`` maps field names to messages."""


class NotPermitted(SubmissionError):
    """The user may not submit this at all (the API answers 403, forms show it on the field)."""


@dataclass
class WorkflowRequest:
    project: Project
    wdl_source: str = ""
    wdl_url: str = ""
    inputs: Any = field(default_factory=dict)
    options: Any = field(default_factory=dict)
    labels: Any = field(default_factory=dict)
    dependencies_url: str = ""
    # The zip itself (an upload, or the CLI's local file), stored with the run at submission.
    dependencies_zip: bytes | None = None
    # Reads files next to a local main WDL (the CLI): its imports when no zip is given.
    beside: imports.Reader | None = None
    engine: str = Engine.MINIWDL
    name: str = ""
    working_dir: str = ""
    outputs_dir: str = ""


@dataclass
class Validated:
    source: str
    checked: validation.Checked
    dependencies: bytes | None = None  # the canonical zip of the imports (see .imports)
    store_dependencies: bool = False  # not the zip at dependencies_url: store it with the run
    warnings: list[str] = field(default_factory=list)  # accepted, but ignored or changed


def _add(errors: dict[str, list[str]], key: str, message: str) -> None:
    errors.setdefault(key, []).append(message)


def _read_url(
    project: Project, url: str, what: str, limit: int, errors: dict[str, list[str]]
) -> bytes | None:
    try:
        backend, key = storage.resolve(url)
        if not access.in_project(project, url):  # never another project's files
            _add(errors, what, f"{url} is outside this project's output prefix and mappings.")
            return None
        size = backend.stat(key).size or 0
        if size > limit:
            _add(errors, what, f"{url} is larger than {limit} bytes.")
            return None
        return backend.read(key)
    except storage.NotFound:
        _add(errors, what, f"{url} does not exist.")
    except storage.StorageError as exc:
        _add(errors, what, f"{url}: {exc}")
    return None


def _check_folder(
    request: WorkflowRequest, url: str, what: str, errors: dict[str, list[str]]
) -> None:
    if not url.endswith("/"):
        _add(errors, what, f"{url} must end with '/' (it names a folder).")
        return
    try:
        storage.resolve(url)
    except storage.StorageError as exc:
        _add(errors, what, f"{url}: {exc}")
        return
    if not access.in_project(request.project, url):
        _add(errors, what, f"{url} is outside this project's output prefix and storage mappings.")


def validate(request: WorkflowRequest, user: User | None) -> Validated:
    """Everything that can be wrong with a submission, all at once, before anything exists."""
    errors: dict[str, list[str]] = {}
    project = request.project
    if user is not None and not Project.objects.visible_to(user).filter(pk=project.pk).exists():
        raise SubmissionError({"project": ["You are not a member of this project."]})
    try:
        engine = get_engine(request.engine)
    except EngineError as exc:
        raise SubmissionError({"engine": [str(exc)]}) from None
    # Before anything is read: the embedded engine runs task commands on this machine.
    if user is not None and engine.runs_here and not access.may_run_on_host(user):
        raise NotPermitted({"engine": [access.RUN_ON_HOST_REFUSED]})
    for problem in engine.configuration_problems():
        _add(errors, "engine", problem)
    if len(request.name) > 200:
        _add(errors, "name", "The name must be at most 200 characters.")

    source = request.wdl_source
    if request.wdl_source and request.wdl_url:
        _add(errors, "wdl", "Give the WDL as text or as a URL, not both.")
    elif request.wdl_url:
        data = _read_url(project, request.wdl_url, "wdl", MAX_SOURCE_BYTES, errors)
        try:
            source = data.decode() if data is not None else ""
        except UnicodeDecodeError:
            _add(errors, "wdl", f"{request.wdl_url} is not UTF-8 text.")
    elif not source.strip():
        _add(errors, "wdl", "Give the workflow's WDL.")
    dependencies = None
    if request.dependencies_zip is not None:
        if len(request.dependencies_zip) > validation.MAX_ZIP_BYTES:
            _add(errors, "dependencies", "The dependencies zip is too large.")
        dependencies = request.dependencies_zip
    elif request.dependencies_url:
        dependencies = _read_url(
            project, request.dependencies_url, "dependencies", validation.MAX_ZIP_BYTES, errors
        )
    beside, beside_name = request.beside, "next to the WDL"
    if request.wdl_url and beside is None:
        beside, beside_name = (
            imports.storage_beside(project, request.wdl_url),
            f"next to {request.wdl_url}",
        )
    for url, what in ((request.working_dir, "working_dir"), (request.outputs_dir, "outputs_dir")):
        if url:
            _check_folder(request, url, what, errors)

    checked = None
    canonical = None
    if source.strip() and "wdl" not in errors and "dependencies" not in errors:
        try:
            canonical = imports.gather(
                source, dependencies, None if dependencies else beside, beside_name=beside_name
            )
            checked = validation.check(
                source, request.inputs, request.options, request.labels, canonical
            )
        except validation.WorkflowInvalid as exc:
            for key, messages in exc.problems.items():
                errors.setdefault(key, []).extend(messages)
    else:  # the WDL is missing or broken: check what can be checked without it
        if not isinstance(request.inputs, dict):
            _add(errors, "inputs", "The inputs must be a JSON object of input names to values.")
        for problem in validation.check_options(request.options):
            _add(errors, "options", problem)
        for problem in validation.check_labels(request.labels):
            _add(errors, "labels", problem)
    engine_warnings: list[str] = []
    if checked is not None:
        for problem in engine.check_run(
            working_dir=request.working_dir or project.output_prefix,
            outputs_dir=request.outputs_dir or project.output_prefix,
            files=checked.files,
            dependencies=canonical is not None,
        ):
            _add(errors, "engine", problem)
        for problem in access.file_input_problems(project, checked.files):  # every engine
            _add(errors, "inputs", problem)
        engine_problems, engine_warnings = engine.project_notes(project, checked.doc)
        for problem in engine_problems:
            _add(errors, "engine", problem)
    for problem in access.path_option_problems(project, request.options):
        _add(errors, "options", problem)
    if errors:
        raise SubmissionError(errors)
    assert checked is not None
    return Validated(
        source=source,
        checked=checked,
        dependencies=canonical,
        store_dependencies=canonical is not None and canonical != dependencies,
        warnings=[
            *(
                runtime_notes.miniwdl_notes(checked.doc, request.options)
                if engine.runs_here
                else []
            ),
            *options.warnings(request.options, request.engine),
            *engine_warnings,
        ],
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:60] or "workflow"


def _default_dir(run: WorkflowRun, leaf: str) -> str:
    return storage.join(
        run.project.output_prefix, "workflows", f"{run.pk}-{_slug(run.name)}", leaf + "/"
    )


def submit(request: WorkflowRequest, user: User | None = None) -> WorkflowRun:
    """Validate, create the run and enqueue its start when the transaction commits."""
    valid = validate(request, user)
    info = valid.checked.info
    dependencies_url = request.dependencies_url
    if valid.store_dependencies and valid.dependencies is not None:
        try:
            dependencies_url = imports.store(request.project, valid.dependencies, _slug(info.name))
        except storage.StorageError as exc:
            raise SubmissionError(
                {"dependencies": [f"The imports could not be stored with the run: {exc}"]}
            ) from None
    with transaction.atomic():
        run = WorkflowRun.objects.create(
            project=request.project,
            submitted_by=user,
            name=(request.name or info.name)[:200],
            engine=request.engine,
            workflow_name=info.name,
            wdl_source=valid.source,
            wdl_url=request.wdl_url,
            dependencies_url=dependencies_url,
            inputs=valid.checked.inputs,
            options=request.options,
            labels=request.labels,
            warnings=valid.warnings,
            working_dir=request.working_dir or "",
            outputs_dir=request.outputs_dir or "",
        )
        run.working_dir = run.working_dir or _default_dir(run, "work")
        run.outputs_dir = run.outputs_dir or _default_dir(run, "outputs")
        run.save(update_fields=["working_dir", "outputs_dir"])
        transaction.on_commit(lambda: _enqueue_start(run.pk))
    log.info("submitted workflow run %s (%s on %s)", run.pk, info.name, run.engine)
    return run


def _enqueue_start(run_id: int) -> None:
    from .tasks import start_run

    try:
        start_run.delay(run_id)
    except Exception:  # broker down: poll_runs sends it again
        log.exception("could not enqueue the start of workflow run %s", run_id)
        return
    WorkflowRun.objects.filter(pk=run_id, queued_at__isnull=True).update(queued_at=timezone.now())


def resubmit(run: WorkflowRun, user: User | None = None) -> WorkflowRun:
    """Submit the same workflow again (fresh folders unless it had chosen its own)."""
    request = WorkflowRequest(
        project=run.project,
        wdl_source="" if run.wdl_url else run.wdl_source,
        wdl_url=run.wdl_url,
        inputs=run.inputs,
        options=run.options,
        labels=run.labels,
        dependencies_url=run.dependencies_url,
        engine=run.engine,
        name=run.name,
        working_dir="" if run.working_dir == _default_dir(run, "work") else run.working_dir,
        outputs_dir="" if run.outputs_dir == _default_dir(run, "outputs") else run.outputs_dir,
    )
    new = submit(request, user)
    WorkflowRun.objects.filter(pk=new.pk).update(resubmitted_from=run)
    new.resubmitted_from = run
    return new


# --- starting -------------------------------------------------------------------------


def start_run(run_id: int, worker: str) -> str:
    """Hand a submitted run to its engine (miniwdl: run it here, to the end)."""
    run = WorkflowRun.objects.select_related("project").filter(pk=run_id).first()
    if run is None:
        return "skipped"
    engine = get_engine(run.engine)
    now = timezone.now()
    if getattr(engine, "runs_here", False):
        claimed = WorkflowRun.objects.filter(pk=run_id, state=RunState.SUBMITTED).update(
            state=RunState.RUNNING,
            sent_at=now,
            started_at=now,
            heartbeat_at=now,
            worker=worker,
            engine_status="running",
        )
        if not claimed:
            return "skipped"  # a duplicate delivery, or aborted before it started
        from .engines.miniwdl import miniwdl_dir

        run.refresh_from_db()
        WorkflowRun.objects.filter(pk=run_id).update(engine_run_id=str(miniwdl_dir(run)))
        final = engine.execute(run, lambda status: record(run_id, status))  # type: ignore[attr-defined]
        record(run_id, final)
        return final.state

    claimed = WorkflowRun.objects.filter(
        pk=run_id, state=RunState.SUBMITTED, sent_at__isnull=True
    ).update(sent_at=now)
    if not claimed:
        return "skipped"
    run.refresh_from_db()
    if getattr(engine, "requested_id", False) and not run.engine_run_id:
        # Chosen before sending: a retried submission cannot create a second run.
        run.engine_run_id = str(uuid.uuid4())
        WorkflowRun.objects.filter(pk=run_id).update(engine_run_id=run.engine_run_id)
    try:
        submission = engine.start(run)
    except EngineError as exc:
        if exc.transient:  # the engine is unreachable: poll_runs tries again later
            WorkflowRun.objects.filter(pk=run_id).update(
                sent_at=None, queued_at=None, poll_error=f"Could not reach the engine: {exc}"
            )
            return "retry"
        end_run(run_id, RunState.FAILED, f"The {run.get_engine_display()} refused the run: {exc}")
        return RunState.FAILED
    WorkflowRun.objects.filter(pk=run_id).update(
        engine_run_id=submission.engine_run_id,
        engine_status=submission.engine_status,
        poll_error="",
    )
    log.info("workflow run %s sent to %s as %s", run_id, run.engine, submission.engine_run_id)
    return RunState.SUBMITTED


def sync_run(run: WorkflowRun) -> str:
    """Ask a remote engine about the run once (a bounded number of requests) and record it."""
    engine = get_engine(run.engine)
    try:
        status = engine.poll(run)
    except EngineError as exc:
        if exc.status == 404 and run.sent_at and timezone.now() - run.sent_at > LOST_AFTER:
            end_run(run.pk, RunState.FAILED, f"The {run.get_engine_display()} lost the run: {exc}")
            return RunState.FAILED
        WorkflowRun.objects.filter(pk=run.pk).update(
            poll_error=str(exc)[:2000], polled_at=timezone.now()
        )
        log.warning("could not poll workflow run %s: %s", run.pk, exc)
        return run.state
    if (
        run.state == RunState.ABORTING
        and status.state == RunState.RUNNING
        and status.engine_status.lower() != "aborting"
    ):
        _abort_remote(run)  # our earlier abort request did not arrive
    record(run.pk, status)
    return WorkflowRun.objects.values_list("state", flat=True).get(pk=run.pk)


def poll_runs() -> int:
    """Beat: send unsent runs, give up on silent miniwdl workers, poll remote engines."""
    now = timezone.now()
    for run_id in WorkflowRun.objects.filter(
        state=RunState.SUBMITTED, queued_at__isnull=True, created_at__lt=now - REQUEUE_AFTER
    ).values_list("pk", flat=True):
        _enqueue_start(run_id)
    stale_before = now - timedelta(seconds=settings.RENDER_STALE_AFTER)
    for run in WorkflowRun.objects.filter(
        engine=Engine.MINIWDL,
        state__in=(RunState.RUNNING, RunState.ABORTING),
        heartbeat_at__lt=stale_before,
    ):
        if run.state == RunState.ABORTING:
            end_run(run.pk, RunState.ABORTED, "")
        else:
            end_run(
                run.pk,
                RunState.FAILED,
                f"Lost contact with {run.worker or 'its worker'} (no heartbeat for "
                f"{settings.RENDER_STALE_AFTER} s). Resubmit it: finished tasks come from the "
                "call cache.",
            )
    polled = 0
    remote = WorkflowRun.objects.filter(state__in=ACTIVE_RUN_STATES, sent_at__isnull=False)
    for run in remote.exclude(engine=Engine.MINIWDL).exclude(engine_run_id=""):
        try:
            sync_run(run)
        except Exception:  # one broken run must not stop the others
            log.exception("polling workflow run %s failed", run.pk)
        polled += 1
    return polled


# --- operations users ask for ---------------------------------------------------------


def abort(run: WorkflowRun) -> bool:
    """Stop a run; False if it had ended already. Remote engines are told at once."""
    with transaction.atomic():
        locked = WorkflowRun.objects.select_for_update().get(pk=run.pk)
        if locked.state not in (RunState.SUBMITTED, RunState.RUNNING):
            return False
        never_started = locked.state == RunState.SUBMITTED and locked.sent_at is None
        state = RunState.ABORTED if never_started else RunState.ABORTING
        WorkflowRun.objects.filter(pk=run.pk).update(
            state=state, finished_at=timezone.now() if never_started else None
        )
        announce(run.pk, locked.state, state)
    log.info("workflow run %s %s by request", run.pk, state)
    if not never_started and locked.engine != Engine.MINIWDL and locked.engine_run_id:
        _abort_remote(locked)
    return True


def _abort_remote(run: WorkflowRun) -> None:
    try:
        get_engine(run.engine).abort(run)
    except EngineError as exc:
        # The run stays aborting; the next poll asks again.
        WorkflowRun.objects.filter(pk=run.pk).update(poll_error=f"Abort failed: {exc}"[:2000])
        log.warning("could not abort workflow run %s: %s", run.pk, exc)


# --- logs and outputs ----------------------------------------------------------------


def read_log(call: Call, stream: str, limit: int = LOG_TAIL_BYTES) -> LogText:
    """The last ``limit`` bytes of a call's stdout or stderr, wherever its engine put it."""
    return get_engine(call.run.engine).read_log(call, stream, limit)


def signed_url(url: str) -> str | None:
    try:
        backend, key = storage.resolve(url)
        return backend.signed_url(key, expires=settings.SIGNED_URL_TTL)
    except storage.StorageError:
        return None
