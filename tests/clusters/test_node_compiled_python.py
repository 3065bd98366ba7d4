"""Whether a node's renderers start with their Python compiled ahead
(renderhub.agent.bytecode), as the node reports it: a worker with the database in its
heartbeat, a render node without keys in its report; shown on the node page and in System
status, so an operator sees a build that failed instead of slower starts. A real render
node building Blender's: tests/nodes/test_node_warm_renderer.py; a hostile node's line:
tests/security/test_node_report_line.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusters.models import ClusterNode
from renderhub.agent import bytecode
from tests.agent.test_bytecode import UNSANDBOXED, stand_in

pytestmark = pytest.mark.django_db


def test_the_local_workers_heartbeat_says_its_folders_state(
    cluster: Any, settings: Any, tmp_path: Path
) -> None:
    from jobs import heartbeat

    program, folder = stand_in(tmp_path), tmp_path / "bytecode"
    settings.RENDER_BYTECODE_DIR = str(folder)
    heartbeat.report("render@box", [cluster.name])
    node = ClusterNode.objects.get(cluster=cluster, name="render@box")
    assert node.compiled_python == "not built yet: the first Blender chunk here builds it"

    bytecode.build(str(folder), program, UNSANDBOXED)
    heartbeat.report("render@box", [cluster.name])
    node.refresh_from_db()
    assert node.compiled_python.startswith(f"{program}: ready (")

    settings.RENDER_BYTECODE_DIR = ""
    heartbeat.report("render@box", [cluster.name])
    node.refresh_from_db()
    assert node.compiled_python == "off: renderers compile their Python at every start"
