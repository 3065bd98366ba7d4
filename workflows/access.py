"""What a workflow may touch: who may run on this machine.

Project members are trusted with their projects' storage, not with the machine (issue 11):
the embedded engine runs task commands on a worker, so submitting to it needs the
``workflows.run_on_host`` permission (superusers have every permission).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

RUN_ON_HOST = "workflows.run_on_host"
RUN_ON_HOST_REFUSED = (
    "Running workflows on this machine (the miniwdl engine) needs the permission "
    "“Can run workflows on this machine” (workflows.run_on_host), which you do not have. "
    "Ask an administrator for it, or submit to a Cromwell engine."
)


def may_run_on_host(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_active and user.has_perm(RUN_ON_HOST))
