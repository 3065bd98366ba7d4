from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views

admin.site.site_header = "RenderHub"
admin.site.site_title = "RenderHub"
admin.site.index_title = "Control panel"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/status/", views.system_status, name="system-status"),
    path("admin/", admin.site.urls),
    path("", include("renderhub.storage.urls")),
    path("api/", include("api.urls")),
    path("workflows/", include("workflows.urls")),
    path("clusters/", include("clusters.urls")),
    path("projects/", include("projects.urls")),
    path("", include("jobs.urls")),
]
