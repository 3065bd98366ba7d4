"""The project's settings for the test suite, with each pytest-xdist worker on its own.

``make test`` runs the suite on two workers (``-n 2``). Each gets its own test database
from pytest-django; here, before the settings are read, each also gets its own Redis
database and var dir (the filesystem broker's folders live there): the node events'
queue has one fixed name, and two workers draining it would take each other's events.
Subprocesses the tests start (render workers, beat) inherit the environment already
set, and are not moved again.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES = 16  # Redis' default


def _own_redis_database(url: str, worker: int) -> str:
    """``url`` with its database number moved down by ``worker`` (15, 14, … for /15)."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    database = int(path) if path.isdigit() else 0
    moved = (database - worker) % REDIS_DATABASES
    return urlunsplit(parts._replace(path=f"/{moved}"))


def _apply_worker(name: str) -> None:
    number = int(name.removeprefix("gw") or 0)
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if broker.startswith(("redis://", "rediss://")):
        os.environ["CELERY_BROKER_URL"] = _own_redis_database(broker, number)
    var = os.environ.get("RENDERHUB_VAR_DIR") or str(Path(__file__).parents[1] / "var")
    own = Path(var) / f"xdist-{name}"
    own.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["RENDERHUB_VAR_DIR"] = str(own)
    os.environ["RENDERHUB_TEST_WORKER"] = name


_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker and os.environ.get("RENDERHUB_TEST_WORKER") != _worker:
    _apply_worker(_worker)

from renderhub.settings import *  # noqa: E402, F403
