"""Which extra host folders a sandbox may read: never one that holds RenderHub's secrets.

``RENDER_SANDBOX_PATHS`` exists for renderers installed outside /usr (``/opt/blender``).
A folder that contains the var/ folder (secret key, SQLite database, broker), the .env
file, the whole local storage (every project) or the work folders (other chunks) would
undo the sandbox, so such entries are refused: by ``manage.py check`` at start, and left
out of every sandbox if they are set anyway.

A project's node temp output dir is where the local worker's renderers write; the same
folders are refused there (``output_root_refusal``), but for the work folder's ``output``
folder, which is kept for that.
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


def _within(folder: Path, parent: Path) -> bool:
    return folder == parent or parent in folder.parents


def exposes(path: str) -> Path | None:
    """The protected path that reading ``path`` would expose, or None."""
    folder = Path(path).resolve()
    for protected in protected_paths():
        if _within(protected, folder):
            return protected
    return None


def extra_read_paths() -> list[str]:
    """``RENDER_SANDBOX_PATHS`` without the entries that would expose a protected path."""
    return [p for p in settings.RENDER_SANDBOX_PATHS if exposes(p) is None]


OUTPUT_FOLDER = "output"  # RENDER_WORK_DIR/output: where renderers on this machine may write


def output_root_refusal(root: str) -> str | None:
    """Why this machine's renderers may not write under ``root`` (a project's node temp
    output dir), or None. A chunk writes in a new ``root/job-N/…`` folder; in the var
    folder, the checkout, the local storage (other projects' files), the downloads, the
    workflows' or the chunks' own work folders, or the renderers' compiled Python, that
    would put a renderer's files among RenderHub's. Of the render work folder only its
    ``output`` folder is set aside."""
    if not root.startswith("/"):
        return f"{root} is not an absolute path on this machine."
    try:
        folder = Path(root).resolve()
    except (OSError, RuntimeError) as exc:  # a link loop: RuntimeError before Python 3.13
        return f"{root} cannot be followed on this machine ({exc})."
    work, var, checkout = (
        Path(p).resolve() for p in (settings.RENDER_WORK_DIR, settings.VAR_DIR, settings.BASE_DIR)
    )
    places = {
        Path(settings.LOCAL_STORAGE_ROOT).resolve(): "the local storage (LOCAL_STORAGE_ROOT)",
        Path(settings.AUTO_DOWNLOAD_DIR).resolve(): "the downloads folder (AUTO_DOWNLOAD_DIR)",
        Path(settings.WORKFLOW_WORK_DIR).resolve(): "the workflow work folder",
        Path(settings.STATIC_ROOT).resolve(): "the web server's static files",
        Path(settings.MEDIA_ROOT).resolve(): "the web server's media files",
        work: "the render work folder (RENDER_WORK_DIR)",
        var: "RenderHub's var folder",
        checkout: "RenderHub's own folder",
    }
    if settings.RENDER_BYTECODE_DIR:  # every later renderer runs what is in there
        bytecode = Path(settings.RENDER_BYTECODE_DIR).resolve()
        places[bytecode] = "the renderers' compiled Python (RENDER_BYTECODE_DIR)"
    # The folders that hold RENDER_WORK_DIR/output by design; storage, downloads and the
    # web's files never do, even if someone nested them there.
    holders = {work, var, checkout}
    for protected, name in places.items():
        if _within(folder, protected) and not (
            protected in holders and _within(folder, work / OUTPUT_FOLDER)
        ):
            return (
                f"{root} is in {name}, where renderers must not write. Use a folder of its "
                f"own, like {work / OUTPUT_FOLDER}/."
            )
    return None
