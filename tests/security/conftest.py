"""The BatchCompute and OSS fakes' fixtures, for attacks that go through cloud storage."""

from __future__ import annotations

from tests.compute.fixtures import (  # noqa: F401
    bc_settings,
    bucket,
    cloud_bc,
    cloud_cluster,
    cloud_image,
    cloud_oss,
    cloud_project,
    cloud_software,
    fake_bc,
)
