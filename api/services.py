"""API tokens. The admin, the API views and the management command call these (webhooks
and e-mail are notifications.services')."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.utils import timezone

from projects.services import check_member

from .models import ApiToken

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from projects.models import Project

log = logging.getLogger(__name__)

TOKEN_PREFIX = "rh_"  # noqa: S105 (a marker that tells keys apart, not a secret)
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per token per minute

# --- API tokens -------------------------------------------------------------------------


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast unsalted hash is enough (as GitHub does for PATs).
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A fresh key with its prefix and hash: ``(key, prefix, key_hash)``."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return key, key[:11], hash_key(key)


def create_token(
    user: User,
    name: str,
    *,
    expires_at: datetime | None = None,
    project: Project | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its key; the key is not stored and cannot be shown again."""
    check_member(user, project)
    key, prefix, key_hash = new_key()
    token = ApiToken(
        user=user,
        name=name.strip()[:100] or "API token",
        prefix=prefix,
        key_hash=key_hash,
        expires_at=expires_at,
        project=project,
    )
    token.full_clean(exclude=["key_hash", "prefix"])
    token.save()
    log.info("created API token %s for %s", token.prefix, user)
    return token, key


def revoke_token(token: ApiToken) -> bool:
    """Revoke now; False if it already was."""
    revoked = bool(
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )
    if revoked:
        log.info("revoked API token %s of %s", token.prefix, token.user_id)
    token.refresh_from_db(fields=["revoked_at"])
    return revoked


def authenticate_key(key: str) -> ApiToken | None:
    """The active token with this key (of an active user), recording its use; else None."""
    if not key.startswith(TOKEN_PREFIX) or len(key) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()
    if token is None or not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
