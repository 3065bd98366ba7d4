"""Login throttling, by client address.

- After LOGIN_MAX_FAILURES wrong passwords for one user name from one address, that pair
  is refused for LOGIN_LOCKOUT_SECONDS, even with the right password.
- After LOGIN_MAX_FAILURES_PER_ADDRESS wrong passwords from one address, whatever the user
  names, that address is refused too (password spraying). A good login does not reset
  this count: an attacker's own account must not wipe it.

The address is REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT reverse proxies the entry of
X-Forwarded-For that the outermost of them added (see :func:`client_address`); an IPv6
address counts as its /64 network.

Counting happens in the cache (a file cache shared by all web processes by default), keyed
by a hash so that user names never land in cache file names.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.dispatch import receiver
from django.http import HttpRequest


def client_address(request: HttpRequest | None) -> str:
    """The client's IP address.

    Without trusted proxies it is REMOTE_ADDR: X-Forwarded-For is then whatever the client
    wrote. With N trusted proxies each appends the address it saw, so the N-th entry from
    the right is the client as the outermost proxy saw it; everything left of it is
    client-supplied and never read. A header too short or not an address means the request
    did not come through the proxies: REMOTE_ADDR again.
    """
    if request is None:
        return ""
    remote = str(request.META.get("REMOTE_ADDR", ""))
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    entries = [e.strip() for e in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    if len(entries) < count or not entries[-count]:
        return remote
    try:
        return str(ipaddress.ip_address(entries[-count]))
    except ValueError:
        return remote


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _counted_as(address: str) -> str:
    """Who failures are counted against: an IPv4 address, or the /64 network of an IPv6
    one (one subscriber's block: counting each of its 2**64 addresses apart would let
    them try five passwords per address without end)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _pair_key(address: str, username: str | None) -> str:
    name = (username or "").lower()
    return f"login-failures:{_digest(f'{name}|{_counted_as(address)}')}"


def _address_key(address: str) -> str:
    return f"login-failures-address:{_digest(_counted_as(address))}"


def is_locked_out(request: HttpRequest | None, username: str | None) -> bool:
    address = client_address(request)
    if cache.get(_pair_key(address, username), 0) >= settings.LOGIN_MAX_FAILURES:
        return True
    per_address = settings.LOGIN_MAX_FAILURES_PER_ADDRESS
    return per_address > 0 and cache.get(_address_key(address), 0) >= per_address


def lockout_message() -> str:
    minutes = max(1, round(settings.LOGIN_LOCKOUT_SECONDS / 60))
    return (
        "Too many failed logins from your address: logins are refused for up to "
        f"{minutes} minutes. Try again later, or ask an administrator."
    )


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


class ThrottledLoginForm(AuthenticationForm):
    """The pages' login, for every active user, saying so when the lockout (not the
    password) refuses it."""

    def clean(self) -> dict[str, Any]:
        if is_locked_out(self.request, self.cleaned_data.get("username")):
            raise ValidationError(lockout_message(), code="locked_out")
        return super().clean()


class ThrottledAuthenticationForm(ThrottledLoginForm, AdminAuthenticationForm):
    """The admin login: the same lockout message, and staff accounts only. An artist who
    typed the right password is sent to the pages' login rather than told it is wrong."""

    def confirm_login_allowed(self, user: Any) -> None:
        if user.is_active and not user.is_staff:
            raise ValidationError(
                "This account has no staff rights, so it cannot use the admin. Log in to "
                "RenderHub's pages instead: submitting, jobs and workflows are there.",
                code="not_staff",
            )
        super().confirm_login_allowed(user)


def _count(key: str) -> None:
    if cache.add(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        return
    # Some caches (the file cache) reset the expiry to their default on incr.
    cache.touch(key, timeout=settings.LOGIN_LOCKOUT_SECONDS)


@receiver(user_login_failed)
def _count_failure(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kw: Any
) -> None:
    address = client_address(request)
    _count(_pair_key(address, credentials.get("username")))
    _count(_address_key(address))


@receiver(user_logged_in)
def _forget_failures(sender: Any, request: Any, user: Any, **kw: Any) -> None:
    cache.delete(_pair_key(client_address(request), user.get_username()))
