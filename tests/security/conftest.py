"""Fixtures the attacks share with other folders' tests."""

from tests.jobs.conftest import fake_software  # noqa: F401
from tests.nodes.conftest import manager, nodes  # noqa: F401
