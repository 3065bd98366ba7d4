"""Check a workflow before anything is submitted: WDL, inputs, options, labels.

The WDL is parsed and typechecked with miniwdl's own parser (whatever the engine), so a
syntax or type error is reported with its line and column, and the inputs JSON is
checked against the workflow's declared inputs with every problem listed at once.
Imports resolve only inside the (canonical, see :mod:`.imports`) dependencies zip, URL
imports included (fetched before, by :mod:`.imports`): a WDL can never read other files
of this machine (or the network) while it is being validated.
"""

from __future__ import annotations

import asyncio
import io
import posixpath
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import WDL
from WDL import Error as WDLError

MAX_WDL_BYTES = 5 * 1024 * 1024
MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_ZIP_FILES = 1000
MAX_LABEL_LENGTH = 255
MAIN_NAME = "workflow.wdl"
MAX_MESSAGE = 160
HTTPS_DIR = "_https"  # where URL imports sit in the dependencies zip


class WorkflowInvalid(Exception):
    """Problems with a submission: ``problems`` maps a field name to its messages."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {m}" for k, ms in problems.items() for m in ms))
        self.problems = problems


@dataclass
class InputInfo:
    name: str  # fully qualified: wf.x or wf.call.x
    type: str
    required: bool
    is_file: bool


@dataclass
class WorkflowInfo:
    """What the WDL declares, for the forms, the CLI and the engines."""

    name: str
    version: str
    is_task: bool
    inputs: list[InputInfo] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass
class Checked:
    info: WorkflowInfo
    inputs: dict[str, Any]  # with every key fully qualified (Cromwell wants that)
    files: list[str]  # File/Directory input values, for engines that stage them
    doc: Any = None  # the typechecked document (WDL.Tree.Document)


# --- WDL ----------------------------------------------------------------------------


def _position(exc: Exception) -> str:
    pos = getattr(exc, "pos", None)
    if pos is None:
        return ""
    where = f"line {pos.line}, column {pos.column}"
    uri = posixpath.basename(pos.uri or "")
    return f"{uri} {where}" if uri and uri != MAIN_NAME else where


def _wdl_problems(exc: Exception) -> list[str]:
    if isinstance(exc, WDLError.MultipleValidationErrors):
        return [m for inner in exc.exceptions for m in _wdl_problems(inner)]
    if isinstance(exc, WDLError.ImportError):
        cause = exc.__cause__
        if cause is not None and isinstance(
            cause, WDLError.SyntaxError | WDLError.ValidationError | WDLError.ImportError
        ):
            return [f"{_position(exc)}: {exc}: " + "; ".join(_wdl_problems(cause))]
        detail = f" ({cause})" if cause is not None and str(cause) else ""
        return [f"{_position(exc)}: {exc}{detail}"]
    kind = "syntax error" if isinstance(exc, WDLError.SyntaxError) else "error"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # The parser quotes the whole rest of the file as the unexpected token: keep a glimpse.
    message = re.sub(r" at line \d+, column \d+\.?$", "", message)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    where = _position(exc)
    return [f"{where}: {kind}: {message}" if where else f"{kind}: {message}"]


def url_path(url: str) -> str:
    """Where a URL import sits in the dependencies zip: ``_https/<host>/<path>``."""
    parts = urlsplit(url)
    path = posixpath.normpath("/" + parts.path).lstrip("/")
    return f"{HTTPS_DIR}/{parts.netloc}/{path}"


def unpack(dependencies: bytes, root: Path) -> None:
    """Unzip the imports, refusing members that would land outside ``root``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(dependencies))
    except zipfile.BadZipFile:
        raise WorkflowInvalid({"dependencies": ["The dependencies file is not a zip."]}) from None
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > MAX_ZIP_FILES or sum(m.file_size for m in members) > MAX_ZIP_BYTES:
        raise WorkflowInvalid({"dependencies": ["The dependencies zip is too large."]})
    for member in members:
        target = (root / member.filename).resolve()
        if not target.is_relative_to(root.resolve()) or target == (root / MAIN_NAME).resolve():
            raise WorkflowInvalid(
                {"dependencies": [f"The zip holds a file named {member.filename!r}; refused."]}
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(member))


def load(source: str, dependencies: bytes | None = None) -> WDL.Tree.Document:
    """Parse and typecheck ``source`` (imports from the ``dependencies`` zip only)."""
    if len(source.encode()) > MAX_WDL_BYTES:
        raise WorkflowInvalid({"wdl": [f"The WDL is larger than {MAX_WDL_BYTES} bytes."]})
    if not source.strip():
        raise WorkflowInvalid({"wdl": ["The WDL is empty."]})
    with tempfile.TemporaryDirectory(prefix="renderhub-wdl-") as tmp:
        root = Path(tmp).resolve()
        if dependencies:
            unpack(dependencies, root)
        main = root / MAIN_NAME
        main.write_text(source)

        async def read_source(
            uri: str, path: list[str], importer: WDL.Tree.Document | None
        ) -> WDL.ReadSourceResult:
            if uri.startswith(("http://", "https://")):
                target = (root / url_path(uri)).resolve()
            else:
                base = Path(importer.pos.abspath).parent if importer else root
                target = (base / uri).resolve()
            if not target.is_relative_to(root) or not target.is_file():
                raise WDLError.InputError(f"{uri} is not among the imported files")
            return WDL.ReadSourceResult(source_text=target.read_text(), abspath=str(target))

        try:
            return asyncio.run(
                WDL.load_async(str(main), path=[], read_source=read_source, import_max_depth=10)
            )
        except (
            WDLError.SyntaxError,
            WDLError.ValidationError,
            WDLError.MultipleValidationErrors,
            WDLError.ImportError,
        ) as exc:
            raise WorkflowInvalid({"wdl": _wdl_problems(exc)}) from None


def executable(doc: WDL.Tree.Document) -> WDL.Tree.Workflow | WDL.Tree.Task:
    if doc.workflow is not None:
        return doc.workflow
    if len(doc.tasks) == 1:
        return doc.tasks[0]
    raise WorkflowInvalid(
        {"wdl": ["The WDL has no workflow; it must have one (or exactly one task)."]}
    )


def _holds_files(ty: WDL.Type.Base) -> bool:
    if isinstance(ty, WDL.Type.File | WDL.Type.Directory):
        return True
    return any(_holds_files(p) for p in ty.parameters)


def describe(doc: WDL.Tree.Document) -> WorkflowInfo:
    exe = executable(doc)
    required = {b.name for b in exe.required_inputs}
    inputs = [
        InputInfo(
            name=f"{exe.name}.{b.name}",
            type=str(b.value.type),
            required=b.name in required,
            is_file=_holds_files(b.value.type),
        )
        for b in exe.available_inputs
    ]
    outputs = [f"{exe.name}.{b.name}" for b in (exe.effective_outputs or [])]
    return WorkflowInfo(
        name=exe.name,
        version=str(doc.effective_wdl_version),
        is_task=isinstance(exe, WDL.Tree.Task),
        inputs=sorted(inputs, key=lambda i: i.name),
        outputs=outputs,
    )


# --- inputs, options, labels ----------------------------------------------------------


def _file_values(value: WDL.Value.Base) -> Iterator[str]:
    if isinstance(value, WDL.Value.File | WDL.Value.Directory):
        yield value.value
    for child in value.children:
        yield from _file_values(child)


def check_inputs(
    doc: WDL.Tree.Document, inputs: Any
) -> tuple[dict[str, Any], list[str], list[str]]:
    """(inputs with qualified keys, File values, problems): unknown keys, wrong types, missing."""
    if not isinstance(inputs, dict):
        return {}, [], ["The inputs must be a JSON object of input names to values."]
    exe = executable(doc)
    available = exe.available_inputs
    prefix = exe.name + "."
    problems: list[str] = []
    normalized: dict[str, Any] = {}
    files: list[str] = []
    given: set[str] = set()
    for key, value in inputs.items():
        if not isinstance(key, str) or key.startswith("#"):  # "#" keys are comments
            continue
        name = key.removeprefix(prefix)
        if not available.has_binding(name):
            problems.append(f"{key}: {exe.name} has no input by that name.")
            continue
        decl = available[name]
        # An input with a default may be given null.
        ty = decl.type.copy(optional=True) if decl.expr is not None else decl.type
        try:
            parsed = WDL.Value.from_json(ty, value)
        except Exception as exc:  # miniwdl raises several kinds for bad values
            detail = "" if str(exc).startswith("couldn't construct") else f" ({exc})"
            problems.append(f"{key}: expected {decl.type}, got {_short(value)}{detail}.")
            given.add(name)  # given, if wrong: not also "missing"
            continue
        given.add(name)
        normalized[prefix + name] = value
        files.extend(_file_values(parsed))
    for binding in exe.required_inputs:
        if binding.name not in given:
            problems.append(
                f"{prefix}{binding.name}: required input ({binding.value.type}) is missing."
            )
    return normalized, files, problems


def _short(value: Any) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_options(options: Any) -> list[str]:
    from .options import problems

    return problems(options)


def check_labels(labels: Any) -> list[str]:
    if not isinstance(labels, dict):
        return ["Labels must be a JSON object of names to values."]
    problems = []
    for key, value in labels.items():
        if not isinstance(key, str) or not key.strip():
            problems.append("A label needs a name.")
        elif not isinstance(value, str):
            problems.append(f"Label {key!r}: the value must be text.")
        elif len(key) > MAX_LABEL_LENGTH or len(value) > MAX_LABEL_LENGTH:
            problems.append(f"Label {key!r}: names and values are at most 255 characters.")
    return problems


def check(
    source: str, inputs: Any, options: Any, labels: Any = None, dependencies: bytes | None = None
) -> Checked:
    """Everything that can be wrong, all at once; raises :class:`WorkflowInvalid`."""
    problems: dict[str, list[str]] = {}
    if options_problems := check_options(options):
        problems["options"] = options_problems
    if label_problems := check_labels(labels or {}):
        problems["labels"] = label_problems
    try:
        doc = load(source, dependencies)
        info = describe(doc)
        normalized, files, input_problems = check_inputs(doc, inputs)
    except WorkflowInvalid as exc:
        raise WorkflowInvalid({**exc.problems, **problems}) from None
    if input_problems:
        problems["inputs"] = input_problems
    if problems:
        raise WorkflowInvalid(problems)
    return Checked(info=info, inputs=normalized, files=files, doc=doc)
