"""Which extra host folders a sandbox may read: never one that holds RenderHub's secrets.

``RENDER_SANDBOX_PATHS`` exists for renderers installed outside /usr (``/opt/blender``).
A folder that contains the var/ folder (secret key, SQLite database, broker), the .env
file, the whole local storage (every project) or the work folders (other chunks) would
undo the sandbox, so such entries are refused: by ``manage.py check`` at start, and left
out of every sandbox if they are set anyway.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def protected_paths() -> list[Path]:
    return [
        Path(p).resolve()
        for p in (
            settings.VAR_DIR,
            Path(settings.BASE_DIR) / ".env",
            settings.LOCAL_STORAGE_ROOT,
            settings.RENDER_WORK_DIR,
            settings.WORKFLOW_WORK_DIR,
        )
    ]


def exposes(path: str) -> Path | None:
    """The protected path that reading ``path`` would expose, or None."""
    folder = Path(path).resolve()
    for protected in protected_paths():
        if protected == folder or folder in protected.parents:
            return protected
    return None


def extra_read_paths() -> list[str]:
    """``RENDER_SANDBOX_PATHS`` without the entries that would expose a protected path."""
    return [p for p in settings.RENDER_SANDBOX_PATHS if exposes(p) is None]
