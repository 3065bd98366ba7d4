"""Cromwell's workflow options: type-checked, unknown keys warned, and what each engine
does with them (issue 17, item 6).

A wrong type is refused (``"read_from_cache": "false"`` is text, and would leave the cache
on); a key RenderHub does not know, or one the chosen engine does not apply, is accepted
with a warning saying so. The ``final_*`` folders must be in the project's storage
(:func:`workflows.access.path_option_problems`); miniwdl honours them too
(:mod:`workflows.engines.miniwdl_final`).
"""

from __future__ import annotations

from typing import Any

from .choices import Engine

TEXT = "text"
FLAG = "true or false"
OBJECT = "a JSON object"
NUMBER = "a number"

# Option -> what it must be. Cromwell's engine-wide options, then backend-specific ones
# seen in real options files (Google's, BatchCompute's), which only those backends read.
KNOWN: dict[str, str] = {
    "read_from_cache": FLAG,
    "write_to_cache": FLAG,
    "default_runtime_attributes": OBJECT,
    "final_workflow_outputs_dir": TEXT,
    "final_call_logs_dir": TEXT,
    "final_workflow_log_dir": TEXT,
    "use_relative_output_paths": FLAG,
    "final_workflow_outputs_dir_metadata": TEXT,
    "workflow_failure_mode": TEXT,
    "continueOnReturnCode": "true, false, a return code or a list of them",
    "backend": TEXT,
    "memory_retry_multiplier": NUMBER,
    "workflow_callback_uri": TEXT,
    "delete_intermediate_output_files": FLAG,
    "monitoring_script": TEXT,
    "monitoring_image": TEXT,
    "google_project": TEXT,
    "google_compute_service_account": TEXT,
    "google_labels": OBJECT,
    "jes_gcs_root": TEXT,
    "gcp_batch_gcs_root": TEXT,
    "auth_bucket": TEXT,
    "defaultRuntimeOptions": OBJECT,
    "bcs_workflow_tag": TEXT,
    "bcs_app_config": OBJECT,  # RenderHub's, for the BatchCompute Cromwell app
}
FAILURE_MODES = ("NoNewCalls", "ContinueWhilePossible")
# What the embedded engine applies; the rest is Cromwell's business.
MINIWDL_APPLIES = frozenset(
    {
        "read_from_cache",
        "write_to_cache",
        "default_runtime_attributes",
        "final_workflow_outputs_dir",
        "final_call_logs_dir",
        "final_workflow_log_dir",
        "use_relative_output_paths",
    }
)


def _fits(kind: str, value: Any) -> bool:
    if kind == FLAG:
        return isinstance(value, bool)
    if kind == TEXT:
        return isinstance(value, str)
    if kind == OBJECT:
        return isinstance(value, dict)
    if kind == NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    # continueOnReturnCode
    codes = value if isinstance(value, list) else [value]
    return isinstance(value, bool) or all(
        isinstance(c, int) and not isinstance(c, bool) for c in codes
    )


def _shown(value: Any) -> str:
    import json

    if isinstance(value, str):
        return f"the text {json.dumps(value)}"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def problems(options: Any) -> list[str]:
    """Options of the wrong type (refused)."""
    if not isinstance(options, dict):
        return ['The options must be a JSON object (e.g. {"read_from_cache": false}).']
    found = []
    for key, value in options.items():
        kind = KNOWN.get(key)
        if kind is not None and not _fits(kind, value):
            found.append(f"{key} must be {kind}, not {_shown(value)}.")
        elif key == "workflow_failure_mode" and value not in FAILURE_MODES:
            found.append(f"workflow_failure_mode must be {' or '.join(FAILURE_MODES)}.")
    return found


def warnings(options: Any, engine: str) -> list[str]:
    """Options accepted but not applied: unknown ones, and those the engine ignores."""
    if not isinstance(options, dict):
        return []
    unknown = sorted(k for k in options if k not in KNOWN)
    found = []
    if unknown:
        what = "is not a workflow option" if len(unknown) == 1 else "are not workflow options"
        found.append(
            f"{', '.join(unknown)} {what} RenderHub knows (a typo?): passed on as "
            + ("they are." if engine != Engine.MINIWDL else "they are, and ignored by miniwdl.")
        )
    if engine == Engine.MINIWDL:
        ignored = sorted(k for k in options if k in KNOWN and k not in MINIWDL_APPLIES)
        if ignored:
            names = ", ".join(ignored)
            found.append(f"The miniwdl engine ignores these Cromwell options: {names}.")
    return found
