"""Where the BatchCompute code lives: the GPL SDK in one module, a Django-free client."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ("projects", "images", "clusters", "jobs", "workflows", "api", "ops", "notifications")
SKIP = {".venv", "var", ".git", "node_modules", "__pycache__"}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (top level or inside functions), absolute names only."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def sources() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if not SKIP.intersection(p.relative_to(ROOT).parts[:-1])]


def test_the_gpl_sdk_is_imported_in_one_module_only() -> None:
    importers = {
        str(p.relative_to(ROOT))
        for p in sources()
        if any(n == "batchcompute" or n.startswith("batchcompute.") for n in imports(p))
    }
    assert importers == {"renderhub/batchcompute/client.py"}


def test_the_client_is_django_free_and_the_foundation_imports_no_domain_app() -> None:
    for folder in ("renderhub/batchcompute", "renderhub/compute"):
        for path in (ROOT / folder).glob("*.py"):
            for name in imports(path):
                top = name.split(".")[0]
                assert top != "django", f"{path.relative_to(ROOT)} imports {name}"
                assert top not in DOMAIN, f"{path.relative_to(ROOT)} imports {name}"
