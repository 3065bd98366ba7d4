from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "RenderHub"
admin.site.site_title = "RenderHub"
admin.site.index_title = "Control panel"

urlpatterns = [
    path("", include("ops.urls")),  # /healthz and the admin's System status page
    path("", include("renderhub.accounts")),  # /login/ and /logout/ for the pages
    path("admin/", admin.site.urls),
    path("", include("renderhub.storage.urls")),
    path("api/", include("api.urls")),
    path("workflows/", include("workflows.urls")),
    path("clusters/", include("clusters.urls")),
    path("projects/", include("projects.pages")),  # New project
    path("projects/", include("projects.urls")),
    path("software/", include("images.urls")),
    path("", include("jobs.urls")),
]
