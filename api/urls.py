from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from . import scene_views, views, workflow_views

app_name = "api"

router = DefaultRouter()
router.register("projects", views.ProjectViewSet, basename="project")
router.register("images", views.ComputeImageViewSet, basename="image")
router.register("software", views.SoftwareViewSet, basename="software")
router.register("clusters", views.ClusterViewSet, basename="cluster")
router.register("jobs", views.RenderJobViewSet, basename="job")
router.register("workflows", workflow_views.WorkflowRunViewSet, basename="workflow")
router.register("tokens", views.ApiTokenViewSet, basename="token")

# DRF views are exempt from LoginRequiredMiddleware (DRF sets login_required = False) and
# answer 401/403 in JSON. The docs pages are for people: they redirect to the login.
urlpatterns: list[URLPattern | URLResolver] = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        login_required(SpectacularSwaggerView.as_view(url_name="api:schema")),
        name="docs",
    ),
    path(
        "redoc/",
        login_required(SpectacularRedocView.as_view(url_name="api:schema")),
        name="redoc",
    ),
    path("scenes/check/", scene_views.SceneCheckView.as_view(), name="scene-check"),
    *router.urls,
]
