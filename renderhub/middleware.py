"""Edge validation shared by every view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import resolve_url


class RejectNulBytesMiddleware:
    """A NUL byte in a query string or form field is never meaningful, and PostgreSQL text
    columns cannot hold one: answer 400 here instead of failing deep inside a query."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        params = [request.GET]
        if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            params.append(request.POST)
        for query in params:
            for key, values in query.lists():
                if "\x00" in key or any("\x00" in value for value in values):
                    return HttpResponseBadRequest("NUL bytes are not allowed in parameters.")
        return self.get_response(request)


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's, except that the admin's own pages send anonymous users to the admin's
    login (for staff) rather than the pages' login (for everyone)."""

    def handle_no_permission(self, request: HttpRequest, view_func: Any) -> HttpResponseRedirect:
        match = request.resolver_match
        if match is None or match.namespace != "admin" or getattr(view_func, "login_url", None):
            return super().handle_no_permission(request, view_func)
        # Both logins live on this site: the path alone is the "next" URL.
        return redirect_to_login(
            request.get_full_path(),
            resolve_url("admin:login"),
            self.get_redirect_field_name(view_func),
        )
