from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/status/", views.system_status, name="system-status"),
    path(
        "admin/status/create-cluster/",
        views.create_cluster_for_workers,
        name="create-cluster-for-workers",
    ),
]
