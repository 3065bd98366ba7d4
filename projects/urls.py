from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from . import views

app_name = "projects"
urlpatterns: list[URLPattern | URLResolver] = [
    path("<int:pk>/browse/", views.browser, name="browse"),
    path("<int:pk>/uploads/", views.upload_start, name="upload-start"),
    path("<int:pk>/uploads/<str:token>/", views.upload_piece, name="upload"),
    path("<int:pk>/uploads/<str:token>/complete/", views.upload_complete, name="upload-complete"),
]
