from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from . import views

app_name = "workflows"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.run_list, name="list"),
    path("<int:pk>/", views.run_detail, name="detail"),
    path("<int:pk>/logs/", views.run_logs, name="logs"),
    path("<int:pk>/outputs/", views.run_outputs, name="outputs"),
    path("<int:pk>/abort/", views.abort, name="abort"),
    path("<int:pk>/resubmit/", views.resubmit, name="resubmit"),
]
