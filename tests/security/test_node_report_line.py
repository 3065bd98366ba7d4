"""A render node without keys is trusted with its chunks, not with the manager's pages:
the line it reports about its renderers' compiled Python (renderhub.agent.bytecode) is
kept bounded, only as text, and shown escaped on the node page and in System status."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from clusters.models import ClusterNode

pytestmark = pytest.mark.django_db


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
