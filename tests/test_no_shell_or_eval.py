"""Nothing user-typed is ever executed as code: no eval/exec, no shells, no unsafe loaders.

Every .py file of the project (outside .venv and var/) is parsed with ``ast`` and checked
for calls that run text as code or through a shell, or that deserialise untrusted data
into objects. A finding is reported as ``path:line: what``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {".venv", "venv", "var", ".git", "node_modules", "__pycache__", ".hypothesis"}

#: Findings that are fine, as "relative/path.py:what" with the reason next to each.
#: Keep it empty unless there is no other way, and say why.
ALLOWED: dict[str, str] = {}

CODE_BUILTINS = {"eval", "exec", "compile", "__import__"}
MODULE_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("os", "execl"),
    ("os", "execlp"),
    ("os", "execv"),
    ("os", "execvp"),
    ("os", "spawnl"),
    ("os", "spawnlp"),
    ("pickle", "loads"),
    ("pickle", "load"),
    ("pickle", "Unpickler"),
    ("cPickle", "loads"),
    ("cPickle", "load"),
    ("dill", "loads"),
    ("dill", "load"),
    ("marshal", "loads"),
    ("marshal", "load"),
    ("shelve", "open"),
    ("yaml", "unsafe_load"),
    ("yaml", "unsafe_load_all"),
    ("yaml", "full_load"),
    ("yaml", "full_load_all"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
    ("asyncio", "create_subprocess_shell"),
    ("builtins", "eval"),
    ("builtins", "exec"),
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        if not SKIPPED_DIRS.intersection(path.relative_to(root).parts):
            yield path


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value in (False, None, 0)


def _yaml_loader_is_safe(call: ast.Call) -> bool:
    loader = next((k.value for k in call.keywords if k.arg == "Loader"), None)
    if loader is None and len(call.args) > 1:
        loader = call.args[1]
    name = _dotted(loader) if loader is not None else None
    return name is not None and name.rsplit(".", 1)[-1] in SAFE_YAML_LOADERS


def findings(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, what) for every forbidden call or import in ``source``."""
    tree = ast.parse(source, filename=filename)
    found: list[tuple[int, str]] = []
    # Names bound by "from module import name" (and aliases), to catch bare calls too.
    imported: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = node.module.split(".")[0]
            for alias in node.names:
                imported[alias.asname or alias.name] = (module, alias.name)
                if (module, alias.name) in MODULE_CALLS:
                    found.append((node.lineno, f"from {module} import {alias.name}"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is not None:
            head, _, attr = name.rpartition(".")
            qualified = (head.split(".")[-1], attr) if head else imported.get(name)
            if not head and name in CODE_BUILTINS:
                found.append((node.lineno, f"{name}()"))
            elif qualified in MODULE_CALLS:
                found.append((node.lineno, f"{'.'.join(qualified)}()"))
            elif qualified in {("yaml", "load"), ("yaml", "load_all")} and not (
                _yaml_loader_is_safe(node)
            ):
                found.append((node.lineno, f"yaml.{qualified[1]}() without SafeLoader"))
        for keyword in node.keywords:
            if keyword.arg == "shell" and not _is_false(keyword.value):
                found.append((node.lineno, f"{name or 'call'}(..., shell=...)"))
    return sorted(set(found))


def test_the_project_never_runs_text_as_code_or_through_a_shell() -> None:
    files = list(python_files(ROOT))
    assert len(files) > 50  # the scan really looks at the project
    assert ROOT / "renderhub" / "agent" / "template.py" in files
    problems = []
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        for line, what in findings(path.read_text(encoding="utf-8"), relative):
            if f"{relative}:{what}" not in ALLOWED:
                problems.append(f"{relative}:{line}: {what}")
    assert not problems, "forbidden calls:\n" + "\n".join(problems)


def test_the_scan_skips_the_virtualenv_and_var(tmp_path: Path) -> None:
    for folder in ("pkg", ".venv/lib", "var/work", "pkg/sub"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "m.py").write_text("eval('1')\n")
    assert [p.relative_to(tmp_path).as_posix() for p in python_files(tmp_path)] == [
        "pkg/m.py",
        "pkg/sub/m.py",
    ]


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("eval(text)", "eval()"),
        ("x = exec(code, {})", "exec()"),
        ("compile(src, 'f', 'exec')", "compile()"),
        ("import os\nos.system('ls ' + name)", "os.system()"),
        ("import os\nos.popen(cmd).read()", "os.popen()"),
        ("from os import system\nsystem(cmd)", "from os import system"),
        ("import subprocess\nsubprocess.run(cmd, shell=True)", "subprocess.run(..., shell=...)"),
        ("import subprocess as sp\nsp.Popen(cmd, shell=1)", "sp.Popen(..., shell=...)"),
        (
            "from subprocess import check_output\ncheck_output(c, shell=flag)",
            "check_output(..., shell=...)",
        ),
        ("import pickle\npickle.loads(blob)", "pickle.loads()"),
        ("from pickle import loads\nloads(blob)", "from pickle import loads"),
        ("import yaml\nyaml.load(text)", "yaml.load() without SafeLoader"),
        ("import yaml\nyaml.load(text, Loader=yaml.Loader)", "yaml.load() without SafeLoader"),
        ("import yaml\nyaml.load(text, yaml.FullLoader)", "yaml.load() without SafeLoader"),
        ("import yaml\nyaml.unsafe_load(text)", "yaml.unsafe_load()"),
        ("import builtins\nbuiltins.eval(s)", "builtins.eval()"),
    ],
)
def test_the_scan_finds_forbidden_calls(source: str, what: str) -> None:
    assert what in [w for _, w in findings(source)]


@pytest.mark.parametrize(
    "source",
    [
        "import subprocess\nsubprocess.run(['blender', '-b', scene], check=True)",
        "import subprocess\nsubprocess.run(argv, shell=False)",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.load(text, yaml.CSafeLoader)",
        "import yaml\nyaml.safe_load(text)",
        "import json\njson.loads(text)",
        "cursor.execute('SELECT 1')",
        "re.compile(pattern)",
        "model.eval()",
    ],
)
def test_the_scan_lets_safe_calls_pass(source: str) -> None:
    assert findings(source) == []


def test_a_finding_names_its_line() -> None:
    assert findings("x = 1\n\nimport os\nos.system('true')\n") == [(4, "os.system()")]
