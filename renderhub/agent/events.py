"""What the agent reports: exit codes and statuses, the cancel flag, and the emitter.

Every event is one JSON object per line on ``out`` (flushed at once) and a readable line
in ``work_dir/agent.log``.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .spec import Spec

# Exit codes, also sent as finished.exit_code with the matching status.
EXIT_OK = 0
EXIT_ERROR = 1  # the agent itself failed (a directory it cannot create, a copy that fails)
EXIT_BAD_SPEC = 2
EXIT_INPUT_MISSING = 3
EXIT_RENDERER_FAILED = 4
EXIT_CANCELLED = 5
EXIT_TIMEOUT = 6

STATUSES = {
    EXIT_OK: "success",
    EXIT_ERROR: "error",
    EXIT_BAD_SPEC: "bad_spec",
    EXIT_INPUT_MISSING: "input_missing",
    EXIT_RENDERER_FAILED: "renderer_failed",
    EXIT_CANCELLED: "cancelled",
    EXIT_TIMEOUT: "timeout",
}

MAX_REASON = 2000


@dataclass
class CancelFlag:
    """Set from a signal handler (a plain attribute: no locks inside a handler)."""

    requested: bool = False
    reason: str = "cancelled"

    def request(self, reason: str) -> None:
        self.reason = reason
        self.requested = True


class Cancelled(Exception):
    pass


class Emitter:
    """Writes events as JSON lines to ``out`` and readable lines to agent.log."""

    def __init__(self, out: IO[str] | None, spec: Spec | None = None) -> None:
        self.out = out
        self.log: IO[str] | None = None
        self.prefix = ""
        if spec is not None:
            self.prefix = f"job={spec.job} task={spec.task} "

    def open_log(self, path: Path) -> None:
        # Open for the whole run (events arrive one by one); close() ends it.
        self.log = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "time": time.time(), **fields}
        if self.out is not None:
            try:
                self.out.write(json.dumps(record) + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):  # nobody listens any more; keep going
                self.out = None
        if self.log is not None:
            self.log.write(_human(record, self.prefix) + "\n")
            self.log.flush()
        return record

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


def _human(record: dict[str, Any], prefix: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["time"]))
    millis = int(record["time"] % 1 * 1000)
    fields = " ".join(
        f"{key}={value if isinstance(value, int | float) else json.dumps(value)}"
        for key, value in record.items()
        if key not in ("event", "time")
    )
    return f"{stamp}.{millis:03d} {prefix}{record['event']} {fields}".rstrip()


def clip(text: str) -> str:
    """At most MAX_REASON characters, keeping the end (where errors usually are)."""
    return text if len(text) <= MAX_REASON else "..." + text[-(MAX_REASON - 3) :]


def describe_exit(code: int) -> str:
    """A renderer's exit status in words: ``exited with code 2``, ``was killed by SIGKILL``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
