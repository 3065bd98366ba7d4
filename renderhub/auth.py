"""Login throttling: after LOGIN_MAX_FAILURES wrong passwords for one user name from one
address, that pair is refused for LOGIN_LOCKOUT_SECONDS, even with the right password.

Counting happens in the cache (a file cache shared by all web processes by default), keyed
by a hash so that user names never land in cache file names.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest


def _key(request: HttpRequest | None, username: str | None) -> str:
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    digest = hashlib.sha256(f"{(username or '').lower()}|{address}".encode()).hexdigest()
    return f"login-failures:{digest}"


def is_locked_out(request: HttpRequest | None, username: str | None) -> bool:
    return cache.get(_key(request, username), 0) >= settings.LOGIN_MAX_FAILURES


class ThrottledModelBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if is_locked_out(request, username):
            raise PermissionDenied("too many failed logins")  # stops every backend
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def _count_failure(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kw: Any
) -> None:
    key = _key(request, credentials.get("username"))
    cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)


@receiver(user_logged_in)
def _forget_failures(sender: Any, request: Any, user: Any, **kw: Any) -> None:
    cache.delete(_key(request, user.get_username()))
