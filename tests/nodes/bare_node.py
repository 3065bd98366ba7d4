"""``python tests/nodes/bare_node.py ARGS``: ``python -m renderhub.node ARGS`` in an
interpreter where Django, the database drivers, the storage and cloud SDKs and RenderHub's
own Django parts cannot be imported, as on a machine with only requirements-node.txt."""

from __future__ import annotations

import importlib.abc
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

BLOCKED = (
    "django", "environ", "rest_framework", "psycopg", "psycopg2", "oss2", "batchcompute",
    "images", "projects", "clusters", "jobs", "workflows", "notifications", "api", "ops",
    "renderhub.settings", "renderhub.storage", "renderhub.celery", "renderhub.batchcompute",
    "renderhub.cloud", "renderhub.sandbox_paths",
)  # fmt: skip


class NotOnANode(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{name} is not on a render node")
        return None


sys.meta_path.insert(0, NotOnANode())
sys.argv[0] = "renderhub.node"
runpy.run_module("renderhub.node", run_name="__main__", alter_sys=True)
