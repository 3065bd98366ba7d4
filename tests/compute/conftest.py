"""The BatchCompute fixtures (tests/compute/fixtures.py) for every test here."""

from __future__ import annotations

from tests.compute.fixtures import (  # noqa: F401
    auto_cluster,
    bc_settings,
    bucket,
    cloud_bc,
    cloud_cluster,
    cloud_image,
    cloud_oss,
    cloud_project,
    cloud_software,
    fake_bc,
    submitted,
    unstoppable_cloud_job,
)
