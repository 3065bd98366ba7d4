"""``Authorization: Token <key>`` (or ``Bearer <key>``) with the keys of api.models.ApiToken."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from . import services
from .models import ApiToken

KEYWORDS = ("token", "bearer")
INVALID = "Invalid, expired or revoked token."


class TokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].decode("latin-1").lower() not in KEYWORDS:
            return None  # not ours: session authentication may still apply
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Token <key>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(INVALID) from None
        token = services.authenticate_key(key)
        if token is None:
            raise exceptions.AuthenticationFailed(INVALID)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to requests without credentials.
        return 'Token realm="api"'
