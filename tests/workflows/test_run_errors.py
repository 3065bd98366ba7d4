"""Run-time errors name their call, attempt, task, file and line (issue 17, item 2); a
task-only WDL is a run with one call like any other (item 3); the calls table tells the
truth about exit statuses, retries, sub-workflows and stopped siblings (item 7)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from renderhub import storage
from workflows import services
from workflows.choices import CallStatus, RunState

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def read(url: str) -> bytes:
    backend, key = storage.resolve(url)
    return backend.read(key)


def zipped(files: dict[str, str], storage_root: Path, storage_url: str) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    (storage_root / "scenes").mkdir(exist_ok=True)
    (storage_root / "scenes" / "deps.zip").write_bytes(buffer.getvalue())
    return storage_url + "scenes/deps.zip"


LIB = """version 1.0
task parse {
  input { String s }
  command <<< echo "~{s}" >>>
  output {
    Int n = read_int(stdout())
  }
}
"""


def test_an_error_in_an_imported_file_names_that_file_and_line(
    submit: Any, storage_root: Path, storage_url: str
) -> None:
    deps = zipped({"lib/tasks.wdl": LIB}, storage_root, storage_url)
    source = """version 1.0
import "lib/tasks.wdl" as lib
workflow w {
  call lib.parse as p { input: s = "not a number" }
  output { Int n = p.n }
}
"""
    run = submit(source, dependencies_url=deps)

    assert services.start_run(run.pk, "here") == RunState.FAILED

    run.refresh_from_db()
    message = run.failure_message
    assert message.startswith("w.p failed (attempt 1, task parse at lib/tasks.wdl line 2): ")
    assert "EvalError: function evaluation failed" in message
    assert message.endswith("(lib/tasks.wdl line 6, column 13)")
    assert "(lib/tasks.wdl line 6, column 13)" in run.calls.get().failure_message


def test_a_return_code_failure_says_which_codes_the_task_accepts(submit: Any) -> None:
    # picky runs after ok: were they side by side, picky's failure could stop ok first.
    source = """version 1.0
workflow codes {
  call ok
  call picky { input: after_ok = ok.done }
}
task ok {
  command <<< exit 1 >>>
  output { Boolean done = true }
  runtime { returnCodes: [0, 1] }
}
task picky {
  input { Boolean after_ok }
  command <<< echo "grep found nothing" >&2; exit 3 >>>
  runtime { returnCodes: [0, 1, 2] }
}
"""
    run = submit(source)

    assert services.start_run(run.pk, "here") == RunState.FAILED

    run.refresh_from_db()
    assert run.failure_message == (
        "codes.picky failed (attempt 1, task picky at main WDL line 11): exit status 3 "
        "(the task accepts return codes: 0, 1, 2): grep found nothing"
    )
    ok = run.calls.get(name="codes.ok")
    # Accepted through returnCodes: Done, with the code it really exited with.
    assert (ok.status, ok.return_code) == (CallStatus.DONE, 1)


def test_a_failure_on_the_last_retry_names_the_attempt_and_every_attempt_its_code(
    submit: Any,
) -> None:
    source = """version 1.0
workflow flaky {
  call never
}
task never {
  command <<< echo "attempt failed" >&2; exit 4 >>>
  runtime { maxRetries: 2 }
}
"""
    run = submit(source)

    services.start_run(run.pk, "here")

    run.refresh_from_db()
    assert run.failure_message.startswith("flaky.never failed (attempt 3, task never at main WDL")
    attempts = [(c.attempt, c.status, c.return_code) for c in run.calls.order_by("attempt")]
    assert attempts == [
        (1, CallStatus.RETRYABLE_FAILURE, 4),
        (2, CallStatus.RETRYABLE_FAILURE, 4),
        (3, CallStatus.FAILED, 4),
    ]


TASK_ONLY = """version 1.1
task shout {
  input { String word = "hello world" }
  command <<<
    echo "~{word}" | tr a-z A-Z
    echo "shouted ~{word}" >&2
  >>>
  output { String loud = read_string(stdout()) }
}
"""


def test_a_task_only_wdl_shows_its_one_call_with_logs_in_the_working_folder(
    submit: Any,
) -> None:
    run = submit(TASK_ONLY, {"shout.word": "quiet please"})

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    run.refresh_from_db()
    assert run.outputs == {"shout.loud": "QUIET PLEASE"}
    call = run.calls.get()
    assert (call.name, call.status, call.return_code) == ("shout", CallStatus.DONE, 0)
    assert call.started_at and call.finished_at
    # The task's stdout and stderr were copied to the working folder like any call's.
    assert call.stdout.startswith(run.working_dir) and call.stderr.startswith(run.working_dir)
    assert read(call.stdout) == b"QUIET PLEASE\n"
    assert read(call.stderr) == b"shouted quiet please\n"
    assert services.read_log(call, "stderr").text == "shouted quiet please\n"


def test_a_failing_task_only_wdl_names_its_task(submit: Any, call: Any) -> None:
    source = TASK_ONLY.replace("tr a-z A-Z\n", 'tr a-z A-Z\n    echo "disk full" >&2; exit 5\n')
    run = submit(source)

    assert services.start_run(run.pk, "here") == RunState.FAILED

    run.refresh_from_db()
    assert run.failure_message == (
        "shout failed (attempt 1, task shout at main WDL line 2): exit status 5: disk full"
    )
    failed = run.calls.get()
    assert (failed.status, failed.return_code) == (CallStatus.FAILED, 5)
    logs = call("workflow_logs", str(run.pk)).out
    assert "disk full" in logs


def test_calls_miniwdl_stops_after_a_failure_are_stopped_not_aborted(submit: Any) -> None:
    source = """version 1.0
workflow race {
  call slow
  call boom
}
task slow { command <<< sleep 30 >>> }
task boom { command <<< sleep 1; exit 9 >>> }
"""
    run = submit(source)

    services.start_run(run.pk, "here")

    run.refresh_from_db()
    slow = run.calls.get(name="race.slow")
    assert slow.status == CallStatus.STOPPED
    assert slow.get_status_display() == "Stopped (another call failed)"
    assert slow.failure_message == "stopped when race.boom failed"
    assert run.failure_message.startswith("race.boom failed")


def test_a_sub_workflow_row_has_its_times_and_sorts_before_its_calls(
    submit: Any, storage_root: Path, storage_url: str
) -> None:
    sub = """version 1.0
workflow inner {
  call step
  output { String said = step.said }
}
task step {
  command <<< sleep 0.2; echo inner >>>
  output { String said = read_string(stdout()) }
}
"""
    deps = zipped({"inner.wdl": sub}, storage_root, storage_url)
    source = """version 1.0
import "inner.wdl" as inner
workflow outer {
  call inner.inner as nested
  output { String said = nested.said }
}
"""
    run = submit(source, dependencies_url=deps)

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    run.refresh_from_db()
    rows = list(run.calls.all())
    assert [c.name for c in rows] == ["outer.nested", "outer.nested.step"]
    nested = rows[0]
    assert nested.started_at and nested.finished_at
    assert nested.started_at <= rows[1].started_at
    assert nested.finished_at >= rows[1].finished_at
