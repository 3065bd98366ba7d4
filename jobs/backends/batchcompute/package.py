"""The node package: the agent (``renderhub/agent``) and its entry script, as a tarball.

BatchCompute fetches it as the render task's PackagePath and runs :func:`node_command` in
the unpacked folder. The entry script is ``node_entry.py`` beside this module, shipped as
``renderhub_node.py``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

from django.conf import settings

import renderhub.agent

NODE_ENTRY_NAME = "renderhub_node.py"
NODE_ENTRY_FILE = Path(__file__).resolve().parent / "node_entry.py"
_package: tuple[bytes, str] | None = None


def node_package() -> tuple[bytes, str]:
    """The node package (tar.gz bytes) and its content-addressed file name.

    Byte-for-byte reproducible (sorted members, fixed times and owners), so an unchanged
    agent maps to the same name and an uploaded package is reused.
    """
    global _package
    if _package is None:
        agent_dir = Path(renderhub.agent.__file__).resolve().parent
        files = {
            "renderhub/__init__.py": b"",
            NODE_ENTRY_NAME: NODE_ENTRY_FILE.read_bytes(),
            **{f"renderhub/agent/{p.name}": p.read_bytes() for p in sorted(agent_dir.glob("*.py"))},
        }
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(files):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
                tar.addfile(info, io.BytesIO(files[name]))
        data = gzip.compress(raw.getvalue(), mtime=0)
        _package = (data, f"renderhub-node-{hashlib.sha256(data).hexdigest()[:16]}.tar.gz")
    return _package


def node_command() -> str:
    return f"{settings.BATCHCOMPUTE_NODE_PYTHON} {NODE_ENTRY_NAME}"
