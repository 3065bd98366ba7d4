from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path(
        "storage/signed/<str:token>/<str:filename>",
        views.signed_download,
        name="storage-signed",
    ),
    path(
        "storage/upload/<str:token>/<str:tail>",
        views.signed_upload,
        name="storage-upload",
    ),
]
