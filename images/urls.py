from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from . import views

app_name = "images"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.software_list, name="software-list"),
    path("new/", views.software_new, name="software-new"),
    path("<int:pk>/", views.software_edit, name="software-edit"),
]
