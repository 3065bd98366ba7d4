"""Command templates: argv lists whose elements may hold ``{name}`` placeholders.

Each argv element is expanded on its own, so a value can never split an element or add
one: the result always has as many elements as the template, and it is run as an argv
list, never through a shell. Only plain ``{name}`` fields are allowed: attribute or index
access (``{a.b}``, ``{a[0]}``), conversions (``{a!r}``), format specs (``{a:>4}``) and
positional fields (``{}``, ``{0}``) are rejected. ``{{`` and ``}}`` give literal braces.

Values become strings: booleans as ``true``/``false`` (lower case, as most renderers'
command lines spell them), other numbers with ``str()``. A list value is not allowed.

Django code imports this module to validate Software templates, so it must stay
standard-library only (like the whole agent).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath

#: The variables every command template may use, name -> one-line help.
TEMPLATE_VARIABLES: dict[str, str] = {
    "scene": "absolute path of the scene file",
    "scene_dir": "directory holding the scene file",
    "scene_name": "scene file name without its extension",
    "start": "first frame of the chunk",
    "end": "last frame of the chunk",
    "frames": "the chunk's frames, comma separated: 1,2,3,7",
    "frame_list": "the chunk's frames in Blender's -f syntax, with ranges: 1..3,7",
    "frame_count": "number of frames in the chunk",
    "cpus": "CPU threads the renderer may use",
    "output_dir": "directory the renderer writes its outputs to",
    "output_name": "output file name; its (last) run of # is the zero-padded frame number",
    "output_pattern": "output_dir/output_name, e.g. /out/shot_####",
}

Template = str | Sequence[str]
Value = str | int | float | bool

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LAST_HASHES = re.compile(r"#+(?=[^#]*\Z)")  # Blender numbers the last run of '#'
_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template cannot be expanded; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _elements(template: Template) -> list[str]:
    # A bare string is one argv element (never split on spaces: that would be shell-ish).
    return [template] if isinstance(template, str) else list(template)


def _where(index: int, element: str) -> str:
    return f"argument {index + 1} ({element!r})"


def _field_problem(name: str, conversion: str | None, spec: str) -> str | None:
    """Why the field ``{name!conversion:spec}`` is not a plain ``{name}``, or None."""
    shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
    shown += "}"
    if name == "" or name.isdigit():
        return f"positional field {shown} is not allowed; name a variable"
    if "." in name or "[" in name:
        return f"attribute or index access in {shown} is not allowed"
    if not _NAME.match(name):
        return f"{shown} is not a valid variable name"
    if conversion:
        return f"conversion !{conversion} in {shown} is not allowed"
    if spec:
        return f"format spec :{spec} in {shown} is not allowed"
    return None


def _parse(element: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(_FORMATTER.parse(element))
    except ValueError as exc:  # unbalanced braces
        raise TemplateError([f"{exc} (write {{{{ or }}}} for a literal brace)"]) from None


def _scan(template: Template) -> tuple[set[str], list[str]]:
    """The names used by ``template`` and the problems found in its syntax."""
    names: set[str] = set()
    errors: list[str] = []
    for index, element in enumerate(_elements(template)):
        if not isinstance(element, str):
            errors.append(f"argument {index + 1} is a {type(element).__name__}, not a string")
            continue
        try:
            parsed = _parse(element)
        except TemplateError as exc:
            errors.append(f"{_where(index, element)}: {exc}")
            continue
        for _literal, name, spec, conversion in parsed:
            if name is None:
                continue
            problem = _field_problem(name, conversion, spec or "")
            if problem:
                errors.append(f"{_where(index, element)}: {problem}")
            else:
                names.add(name)
    return names, errors


def valid_custom_name(name: str) -> str | None:
    """Why ``name`` cannot be a custom variable, or None when it can."""
    if not _NAME.match(name):
        return f"custom variable name {name!r} must be letters, digits and _ (not first a digit)"
    if name in TEMPLATE_VARIABLES:
        return f"custom variable name {name!r} clashes with the standard variable"
    return None


def validate_template(template: Template, extra_names: Iterable[str] = ()) -> list[str]:
    """Every problem with ``template`` given custom variables ``extra_names``; [] if fine."""
    extra = set(extra_names)
    errors = [problem for name in sorted(extra) if (problem := valid_custom_name(name))]
    elements = _elements(template)
    if not elements:
        errors.append("the command is empty")
    elif isinstance(elements[0], str) and not elements[0].strip():
        errors.append("the first argument (the program) is empty")
    names, syntax_errors = _scan(elements)
    errors.extend(syntax_errors)
    known = set(TEMPLATE_VARIABLES) | extra
    for name in sorted(names - known):
        errors.append(f"unknown variable {{{name}}}; known: {', '.join(sorted(known))}")
    return errors


def format_value(value: Value) -> str:
    """A variable value as it appears in argv (bools as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise TemplateError([f"value {value!r} is not a finite number"])
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError([f"value {value!r} is a {type(value).__name__}, not a string or number"])


def expand(template: Template, values: Mapping[str, object]) -> list[str]:
    """Expand each argv element of ``template`` on its own; raise TemplateError if invalid."""
    elements = _elements(template)
    names, errors = _scan(elements)
    errors += [f"unknown variable {{{name}}}" for name in sorted(names - set(values))]
    if errors:
        raise TemplateError(errors)
    argv: list[str] = []
    for index, element in enumerate(elements):
        parts: list[str] = []
        for literal, name, _spec, _conversion in _parse(element):
            parts.append(literal)
            if name is None:
                continue
            value = values[name]
            if isinstance(value, list | tuple | set | dict):
                raise TemplateError([f"{_where(index, element)}: {{{name}}} is a list"])
            try:
                parts.append(format_value(value))  # type: ignore[arg-type]
            except TemplateError as exc:
                raise TemplateError([f"{_where(index, element)}: {{{name}}}: {exc}"]) from None
        argv.append("".join(parts))
    return argv


def frame_list(frames: Sequence[int]) -> str:
    """Blender ``-f`` syntax: runs of 3+ consecutive frames become ``a..b`` (1..3,7,9,10)."""
    parts: list[str] = []
    run_start = 0
    for i in range(1, len(frames) + 1):
        if i < len(frames) and frames[i] == frames[i - 1] + 1:
            continue
        first, last = frames[run_start], frames[i - 1]
        if last - first >= 2:
            parts.append(f"{first}..{last}")
        else:
            parts.extend(str(f) for f in frames[run_start:i])
        run_start = i
    return ",".join(parts)


def split_output_name(output_name: str) -> tuple[str, int, str]:
    """(prefix, digits, suffix) around the last run of ``#``, as Blender reads it."""
    match = _LAST_HASHES.search(output_name)
    if not match:
        return output_name, 0, ""
    return output_name[: match.start()], match.end() - match.start(), output_name[match.end() :]


def output_file_name(output_name: str, frame: int) -> str:
    """``output_name`` with its last run of ``#`` replaced by the zero-padded frame number."""
    prefix, digits, suffix = split_output_name(output_name)
    return f"{prefix}{frame:0{digits}d}{suffix}" if digits else output_name


def standard_values(
    *,
    scene: str,
    frames: Sequence[int],
    cpus: int,
    output_dir: str,
    output_name: str,
) -> dict[str, Value]:
    """The standard variables' values for one chunk."""
    path = PurePosixPath(scene)
    return {
        "scene": scene,
        "scene_dir": str(path.parent),
        "scene_name": path.stem,
        "start": frames[0],
        "end": frames[-1],
        "frames": ",".join(str(f) for f in frames),
        "frame_list": frame_list(frames),
        "frame_count": len(frames),
        "cpus": cpus,
        "output_dir": output_dir,
        "output_name": output_name,
        "output_pattern": f"{output_dir.rstrip('/')}/{output_name}",
    }
