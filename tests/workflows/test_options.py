"""Cromwell's workflow options mean something (issue 17, item 6): type-checked, unknown
keys warned, the final_* folders honoured by miniwdl inside the project's storage and
refused outside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from renderhub import storage
from workflows import services
from workflows.choices import Engine, RunState
from workflows.engines.cromwell_servers import SHARED_CACHE_NOTE

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def refused(submit: Any, tiny_wdl: str, **fields: Any) -> list[str]:
    with pytest.raises(services.SubmissionError) as refusal:
        submit(tiny_wdl, **fields)
    return refusal.value.message_dict["options"]


def test_option_values_are_type_checked(submit: Any, tiny_wdl: str) -> None:
    options = {
        "read_from_cache": "false",
        "write_to_cache": 0,
        "default_runtime_attributes": ["docker"],
        "use_relative_output_paths": "yes",
        "workflow_failure_mode": "KeepGoing",
        "continueOnReturnCode": [0, "1"],
    }

    assert refused(submit, tiny_wdl, options=options) == [
        'read_from_cache must be true or false, not the text "false".',
        "write_to_cache must be true or false, not 0.",
        'default_runtime_attributes must be a JSON object, not ["docker"].',
        'use_relative_output_paths must be true or false, not the text "yes".',
        "workflow_failure_mode must be NoNewCalls or ContinueWhilePossible.",
        'continueOnReturnCode must be true, false, a return code or a list of them, not [0, "1"].',
    ]


def test_unknown_and_ignored_options_are_warned_everywhere(
    submit: Any, tiny_wdl: str, call: Any, tmp_path: Path, project: Any, client: Any, alice: Any
) -> None:
    import json

    options = {"read_from_cach": False, "workflow_failure_mode": "ContinueWhilePossible"}
    run = submit(tiny_wdl, options=options)

    assert run.warnings == [
        "read_from_cach is not a workflow option RenderHub knows (a typo?): passed on as they "
        "are, and ignored by miniwdl.",
        "The miniwdl engine ignores these Cromwell options: workflow_failure_mode.",
    ]
    (tmp_path / "tiny.wdl").write_text(tiny_wdl)
    (tmp_path / "options.json").write_text(json.dumps(options))
    result = call(
        "submit_workflow",
        str(tmp_path / "tiny.wdl"),
        "--project",
        "shots",
        "--options",
        str(tmp_path / "options.json"),
    )
    assert "warning: read_from_cach is not a workflow option" in result.err
    client.force_login(alice)
    assert (
        "read_from_cach is not a workflow option"
        in client.get(f"/workflows/{run.pk}/").content.decode()
    )


def test_cromwell_gets_unknown_options_with_a_warning_but_no_miniwdl_note(
    submit: Any, tiny_wdl: str, cromwell: Any
) -> None:
    run = submit(tiny_wdl, engine=Engine.CROMWELL, options={"workflow_failure_mode": "NoNewCalls"})

    assert run.warnings == [SHARED_CACHE_NOTE]  # only the shared server's, none of miniwdl's


def read(url: str) -> bytes:
    backend, key = storage.resolve(url)
    return backend.read(key)


def test_miniwdl_honours_the_final_folders_inside_the_project(
    submit: Any, tiny_wdl: str, storage_root: Path, storage_url: str
) -> None:
    final = storage_url + "scenes/final/"
    options = {
        "final_workflow_outputs_dir": final + "outputs/",
        "final_call_logs_dir": final + "logs/",
        "final_workflow_log_dir": str(storage_root / "scenes" / "final" / "wflog"),  # a path
    }
    run = submit(tiny_wdl, options=options)

    assert services.start_run(run.pk, "here") == RunState.SUCCEEDED

    out = storage_root / "scenes" / "final"
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert copied == [
        f"logs/tiny/{run.pk}/call-greet-0/stderr.txt",
        f"logs/tiny/{run.pk}/call-greet-0/stdout.txt",
        f"logs/tiny/{run.pk}/call-greet-1/stderr.txt",
        f"logs/tiny/{run.pk}/call-greet-1/stdout.txt",
        f"outputs/tiny/{run.pk}/files/0/greeting.txt",
        f"outputs/tiny/{run.pk}/files/1/greeting.txt",
        f"wflog/workflow.{run.pk}.log",
    ]
    assert read(final + f"outputs/tiny/{run.pk}/files/1/greeting.txt") == b"hello 1\n"


def test_relative_output_paths_flatten_and_a_clash_fails_the_run(
    submit: Any, tiny_wdl: str, storage_root: Path, storage_url: str
) -> None:
    options = {
        "final_workflow_outputs_dir": storage_url + "scenes/flat/",
        "use_relative_output_paths": True,
    }
    single = submit(tiny_wdl, {"tiny.n": 1}, options=options)
    assert services.start_run(single.pk, "here") == RunState.SUCCEEDED
    assert (storage_root / "scenes" / "flat" / "greeting.txt").read_text() == "hello 0\n"

    clash = submit(tiny_wdl, {"tiny.n": 2}, options=options)

    assert services.start_run(clash.pk, "here") == RunState.FAILED
    clash.refresh_from_db()
    assert clash.failure_message.startswith(
        "use_relative_output_paths: two outputs would both be greeting.txt in "
    )


def test_final_folders_outside_the_project_are_refused(
    submit: Any, tiny_wdl: str, storage_url: str
) -> None:
    problems = refused(
        submit, tiny_wdl, options={"final_call_logs_dir": storage_url + "elsewhere/logs/"}
    )

    assert problems == [
        f"final_call_logs_dir: {storage_url}elsewhere/logs/ is outside this project's storage "
        "(its output prefix and mappings); leave it out to use the run's folders, or name a "
        "folder inside it."
    ]
