from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from . import views

app_name = "projects"
urlpatterns: list[URLPattern | URLResolver] = [
    path("<int:pk>/browse/", views.browser, name="browse"),
]
