from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from . import dependency_views, views

app_name = "jobs"
urlpatterns: list[URLPattern | URLResolver] = [
    path("submit/", views.submit, name="submit"),
    path("submit/estimate/", views.submit_estimate, name="submit-estimate"),
    path("submit/files/", dependency_views.submit_dependencies, name="submit-dependencies"),
    path("jobs/", views.running_jobs, name="running"),
    path("jobs/finished/", views.finished_jobs, name="finished"),
    path("jobs/<int:pk>/", views.job_detail, name="detail"),
    path("jobs/<int:pk>/cancel/", views.cancel, name="cancel"),
    path("jobs/<int:pk>/retry/", views.retry, name="retry"),
    path("jobs/<int:pk>/pause/", views.pause, name="pause"),
    path("jobs/<int:pk>/resume/", views.resume, name="resume"),
    path("jobs/<int:pk>/movie/", views.movie, name="movie"),
    path("jobs/<int:pk>/requeue/", views.requeue, name="requeue"),
    path("jobs/<int:pk>/chunks/<int:index>/requeue/", views.requeue_chunk, name="requeue-chunk"),
    path("jobs/<int:pk>/chunks/<int:index>/logs/", views.task_logs, name="logs"),
    path(
        "jobs/<int:pk>/chunks/<int:index>/logs/<str:which>/download/",
        views.task_log_download,
        name="log-download",
    ),
    path("jobs/<int:pk>/frames/<int:number>/", views.frame_info, name="frame"),
    path("jobs/<int:pk>/frames/<int:number>/thumbnail/", views.frame_thumbnail, name="thumbnail"),
    path("jobs/<int:pk>/frames/<int:number>/preview/", views.frame_preview, name="preview"),
    path("jobs/<int:pk>/outputs/", views.outputs, name="outputs"),
    path("jobs/<int:pk>/outputs.zip", views.outputs_zip, name="outputs-zip"),
    # Under the cluster's address, here because the page is mostly chunks (jobs sit above
    # clusters): /clusters/<id>/nodes/<name or id>/.
    path("clusters/<int:pk>/nodes/<path:node>/", views.node_detail, name="node"),
]
