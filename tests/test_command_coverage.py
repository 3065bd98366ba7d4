"""Every management command has a test module named after it (like NetBox's check)."""

from __future__ import annotations

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
APPS = (
    "jobs",
    "projects",
    "images",
    "clusters",
    "renderhub",
    "workflows",
    "api",
    "ops",
    "notifications",
)


def commands() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for app in APPS:
        for module in sorted((BASE_DIR / app / "management" / "commands").glob("*.py")):
            if not module.name.startswith("_"):
                found[module.stem] = module
    return found


def test_it_finds_the_commands() -> None:
    assert {
        "submit_render",
        "jobs",
        "job",
        "logs",
        "ls",
        "upload",
        "download",
        "cancel",
        "retry",
    } <= set(commands())


def test_it_has_a_test_module_for_every_management_command() -> None:
    tests = {path.name for path in (BASE_DIR / "tests").rglob("test_*.py")}
    missing = [
        str(module.relative_to(BASE_DIR))
        for name, module in commands().items()
        if f"test_{name}.py" not in tests
    ]
    assert not missing, f"add tests/**/test_<command>.py for: {', '.join(missing)}"
