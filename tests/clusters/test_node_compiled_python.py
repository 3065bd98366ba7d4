"""Whether a node's renderers start with their Python compiled ahead
(renderhub.agent.bytecode), as the node reports it: a worker with the database in its
heartbeat, a render node without keys in its report; shown on the node page and in System
status, so an operator sees a build that failed instead of slower starts. A real render
node building Blender's: tests/nodes/test_node_warm_renderer.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

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


@pytest.mark.parametrize(
    ("said", "stored"),
    [
        ("/usr/bin/blender: ready (1,860 modules)", "/usr/bin/blender: ready (1,860 modules)"),
        ("x" * 5000, "x" * 500),  # bounded: a node's words go into a row and pages
        ({"state": "ready"}, ""),
        (None, ""),  # an older node says nothing
    ],
)
def test_a_render_nodes_report_is_kept_bounded(cluster: Any, said: Any, stored: str) -> None:
    from jobs.node_requests import node_report

    node_report({"node": "n1@node", "clusters": [cluster.name], "compiled_python": said})

    assert ClusterNode.objects.get(name="n1@node").compiled_python == stored


def test_the_node_page_and_system_status_show_it_as_text(
    client: Any, alice: Any, cluster: Any
) -> None:
    from jobs.node_requests import node_report

    said = "/opt/blender <b>4</b>/blender: failed (exited 1: <script>alert(1)</script>)"
    node_report({"node": "n1@node", "clusters": [cluster.name], "compiled_python": said})
    client.force_login(alice)

    escaped = said.replace("<", "&lt;").replace(">", "&gt;")
    for url in (f"/clusters/{cluster.pk}/nodes/{quote('n1@node')}/", "/admin/status/"):
        page = client.get(url).content.decode()
        assert escaped in page, url
        assert "<script>alert(1)" not in page, url
