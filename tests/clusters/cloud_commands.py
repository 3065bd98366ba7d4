"""Shared by the cluster command tests: call_command with captured output."""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO
from typing import Any

from django.core.management import call_command


@dataclass
class Result:
    out: str
    err: str


def run(*args: Any, **options: Any) -> Result:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return Result(out.getvalue(), err.getvalue())
