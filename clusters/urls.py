from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from . import views

app_name = "clusters"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.cluster_list, name="list"),
    path("<int:pk>/", views.cluster_detail, name="detail"),
    path("<int:pk>/resize/", views.resize, name="resize"),
    path("<int:pk>/suspend/", views.suspend, name="suspend"),
]
