"""The chunk spec: load a JSON object, check every field, report every problem at once."""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .sandbox import KINDS, Limits
from .template import Value, validate_template

SPEC_VERSION = 1
PARSERS = ("blender", "none")
DEFAULT_KILL_GRACE = 5.0

REQUIRED = ("version", "command", "scene", "frames", "cpus", "work_dir", "output_dir")
OPTIONAL = (
    "job",
    "task",
    "variables",
    "output_name",
    "publish_dir",
    "inputs",
    "progress_parser",
    "timeout",
    "stall_timeout",
    "kill_grace",
    "env",
    "sandbox",
    "session_dir",
    "bytecode_dir",
)
SANDBOX_KEYS = {"kind", "network", "read_only", "file_size", "processes", "memory"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SpecError(ValueError):
    """The spec is unusable; ``problems`` holds one clear message per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Input:
    """Copy ``src`` (a file or a directory tree) to ``dst`` before rendering."""

    src: str
    dst: str


@dataclass(frozen=True)
class SandboxSpec:
    """How the renderer is confined (see ``sandbox.py``); the manager always says."""

    kind: str = "none"
    network: bool = False
    read_only: list[str] = field(default_factory=list)  # besides the scene's folder and inputs
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Spec:
    command: list[str]
    scene: str
    frames: list[int]
    cpus: int
    work_dir: str
    output_dir: str
    output_name: str = "frame_####"
    job: int | str | None = None
    task: int | str | None = None
    variables: dict[str, Value] = field(default_factory=dict)
    publish_dir: str | None = None
    inputs: list[Input] = field(default_factory=list)
    progress_parser: str = "none"
    timeout: float | None = None
    stall_timeout: float | None = None
    kill_grace: float = DEFAULT_KILL_GRACE
    env: dict[str, str] = field(default_factory=dict)
    sandbox: SandboxSpec = SandboxSpec()
    # Set by a manager that keeps the renderer between chunks (``--session``): the
    # renderer's scratch folder lives here, as long as the renderer does.
    session_dir: str | None = None
    # The machine's folder of the renderer's compiled Python (:mod:`.bytecode`), kept by
    # the worker or node that runs the agent; None: renderers compile it at every start.
    bytecode_dir: str | None = None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


class _Checker:
    """Collects problems while reading fields, so one pass reports them all."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []

    def bad(self, message: str) -> None:
        self.problems.append(message)

    def abs_path(self, key: str, value: object = None, *, where: str | None = None) -> str:
        value = self.data.get(key) if where is None else value
        label = where or key
        if not isinstance(value, str) or not value:
            self.bad(f"{label} must be a non-empty string path, got {value!r}")
            return ""
        if not value.startswith("/"):
            self.bad(f"{label} must be an absolute path, got {value!r}")
        if "\0" in value:
            self.bad(f"{label} contains a NUL character")
        return value

    def seconds(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None or value == 0:  # no limit
            return None
        if not _is_number(value) or value < 0:
            self.bad(f"{key} must be a number of seconds (0 or null: no limit), got {value!r}")
            return None
        return float(value)

    def ident(self, key: str) -> int | str | None:
        value = self.data.get(key)
        if value is None or _is_int(value) or isinstance(value, str):
            return value
        self.bad(f"{key} must be an integer or a string, got {value!r}")
        return None


def inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies under it (purely by name)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _check_frames(c: _Checker) -> list[int]:
    frames = c.data.get("frames")
    if not isinstance(frames, list) or not frames:
        c.bad(f"frames must be a non-empty list of frame numbers, got {frames!r}")
        return []
    wrong = [f for f in frames if not _is_int(f) or f < 0]
    if wrong:
        c.bad(f"frames must be integers >= 0; bad values: {wrong[:5]!r}")
        return []
    if any(b <= a for a, b in itertools.pairwise(frames)):
        c.bad(f"frames must be ascending with no repeats, got {frames!r}")
    return list(frames)


def _check_output_name(c: _Checker) -> str:
    name = c.data.get("output_name", "frame_####")
    if not isinstance(name, str) or not name:
        c.bad(f"output_name must be a non-empty string, got {name!r}")
        return ""
    if "/" in name or "\\" in name or "\0" in name:
        c.bad(f"output_name must be a file name, without directories: {name!r}")
    if "#" not in name:
        c.bad(f"output_name must hold a run of '#' for the frame number: {name!r}")
    return name


def _check_variables(c: _Checker) -> dict[str, Value]:
    variables = c.data.get("variables") or {}
    if not isinstance(variables, dict):
        c.bad(f"variables must be an object of name -> value, got {variables!r}")
        return {}
    for name, value in variables.items():
        ok = isinstance(value, str | bool) or _is_number(value)
        if not ok:
            c.bad(f"variables.{name} must be a string, number or boolean, got {value!r}")
    return dict(variables)


def _check_command(c: _Checker, variables: dict[str, Value]) -> list[str]:
    command = c.data.get("command")
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        c.bad(f"command must be a list of strings (an argv template), got {command!r}")
        return []
    for problem in validate_template(command, variables):
        c.bad(f"command: {problem}")
    return list(command)


def _check_inputs(c: _Checker) -> list[Input]:
    inputs = c.data.get("inputs") or []
    if not isinstance(inputs, list):
        c.bad(f"inputs must be a list of {{src, dst}} objects, got {inputs!r}")
        return []
    result: list[Input] = []
    for i, item in enumerate(inputs):
        if not isinstance(item, dict) or set(item) != {"src", "dst"}:
            c.bad(f"inputs[{i}] must be an object with exactly src and dst, got {item!r}")
            continue
        src = c.abs_path("", item["src"], where=f"inputs[{i}].src")
        dst = c.abs_path("", item["dst"], where=f"inputs[{i}].dst")
        if src and dst and (inside(dst, src) or inside(src, dst)):
            c.bad(f"inputs[{i}]: src and dst must not contain each other ({src} -> {dst})")
        result.append(Input(src=src, dst=dst))
    return result


def _check_env(c: _Checker) -> dict[str, str]:
    env = c.data.get("env") or {}
    if not isinstance(env, dict):
        c.bad(f"env must be an object of NAME -> string, got {env!r}")
        return {}
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            c.bad(f"env name {name!r} is not a valid environment variable name")
        if not isinstance(value, str) or "\0" in value:
            c.bad(f"env.{name} must be a string, got {value!r}")
    return dict(env)


def _check_sandbox(c: _Checker) -> SandboxSpec:
    data = c.data.get("sandbox")
    if data is None:
        return SandboxSpec()
    if not isinstance(data, dict) or set(data) - SANDBOX_KEYS:
        c.bad(f"sandbox must be an object with keys among {sorted(SANDBOX_KEYS)}, got {data!r}")
        return SandboxSpec()
    kind = data.get("kind", "none")
    if kind not in KINDS:
        c.bad(f"sandbox.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    network = data.get("network", False)
    if not isinstance(network, bool):
        c.bad(f"sandbox.network must be true or false, got {network!r}")
    paths = data.get("read_only") or []
    if not isinstance(paths, list):
        c.bad(f"sandbox.read_only must be a list of absolute paths, got {paths!r}")
        paths = []
    read_only = [c.abs_path("", p, where=f"sandbox.read_only[{i}]") for i, p in enumerate(paths)]
    sizes = {}
    for key in ("file_size", "processes", "memory"):
        value = data.get(key, 0)
        if not _is_int(value) or value < 0:
            c.bad(f"sandbox.{key} must be an integer >= 0 (0: no limit), got {value!r}")
            value = 0
        sizes[key] = value
    return SandboxSpec(
        kind=kind if kind in KINDS else "none",
        network=network is True,
        read_only=read_only,
        limits=Limits(**sizes),
    )


def _check_keys(c: _Checker) -> None:
    for key in REQUIRED:
        if key not in c.data:
            c.bad(f"missing required key {key!r}")
    for key in sorted(set(c.data) - set(REQUIRED) - set(OPTIONAL)):
        c.bad(f"unknown key {key!r}")
    version = c.data.get("version")
    if "version" in c.data and (not _is_int(version) or version != SPEC_VERSION):
        c.bad(f"version must be {SPEC_VERSION}, got {version!r}")


def parse_spec(data: object) -> Spec:
    """Check a decoded spec; raise SpecError listing every problem."""
    if not isinstance(data, dict):
        raise SpecError([f"the spec must be a JSON object, got {type(data).__name__}"])
    c = _Checker(data)
    _check_keys(c)
    variables = _check_variables(c)
    cpus = data.get("cpus")
    if "cpus" in data and (not _is_int(cpus) or cpus < 1):  # type: ignore[operator]
        c.bad(f"cpus must be an integer >= 1, got {cpus!r}")
    parser = data.get("progress_parser", "none")
    if parser not in PARSERS:
        c.bad(f"progress_parser must be one of {', '.join(PARSERS)}, got {parser!r}")
    grace = data.get("kill_grace", DEFAULT_KILL_GRACE)
    if not _is_number(grace) or grace < 0:
        c.bad(f"kill_grace must be a number of seconds >= 0, got {grace!r}")
    spec = Spec(
        command=_check_command(c, variables),
        scene=c.abs_path("scene") if "scene" in data else "",
        frames=_check_frames(c) if "frames" in data else [],
        cpus=cpus if _is_int(cpus) else 1,  # type: ignore[arg-type]
        work_dir=c.abs_path("work_dir") if "work_dir" in data else "",
        output_dir=c.abs_path("output_dir") if "output_dir" in data else "",
        output_name=_check_output_name(c),
        job=c.ident("job"),
        task=c.ident("task"),
        variables=variables,
        publish_dir=c.abs_path("publish_dir") if data.get("publish_dir") is not None else None,
        inputs=_check_inputs(c),
        progress_parser=parser if isinstance(parser, str) else "none",
        timeout=c.seconds("timeout"),
        stall_timeout=c.seconds("stall_timeout"),
        kill_grace=float(grace) if _is_number(grace) else DEFAULT_KILL_GRACE,
        env=_check_env(c),
        sandbox=_check_sandbox(c),
        session_dir=(c.abs_path("session_dir") if data.get("session_dir") is not None else None),
        bytecode_dir=(c.abs_path("bytecode_dir") if data.get("bytecode_dir") is not None else None),
    )
    if c.problems:
        raise SpecError(c.problems)
    return spec


def load_spec(source: str, stdin: IO[str] | None = None) -> Spec:
    """Read and check the spec at path ``source`` (``-`` reads standard input)."""
    try:
        if source == "-":
            text = (stdin or sys.stdin).read()
        else:
            text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"cannot read the spec {source!r}: {exc}"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError([f"the spec is not valid JSON: {exc}"]) from None
    return parse_spec(data)
