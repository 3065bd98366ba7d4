"""Just the storage URLs, so the signed-link tests do not depend on the project's."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("", include("renderhub.storage.urls"))]
