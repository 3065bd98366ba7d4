"""Permissions tests give explicitly (the workflow fixtures, the API and security tests)."""

from __future__ import annotations

from typing import Any


def grant_run_on_host(user: Any) -> Any:
    """Give ``user`` the permission the miniwdl engine needs (workflows.run_on_host)."""
    from django.contrib.auth.models import Permission

    permission = Permission.objects.get(content_type__app_label="workflows", codename="run_on_host")
    user.user_permissions.add(permission)
    for cache in ("_perm_cache", "_user_perm_cache"):  # has_perm caches on the instance
        user.__dict__.pop(cache, None)
    return user
