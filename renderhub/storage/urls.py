from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path(
        "storage/signed/<str:token>/<str:filename>",
        views.signed_download,
        name="storage-signed",
    ),
]
