from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from clusters.suspension import cluster_resumed
        from projects import uploads

        from . import (
            heartbeat,  # noqa: F401  (connects the render worker's signals)
            scheduling,
        )
        from .signals import job_state_changed

        cluster_resumed.connect(scheduling.cluster_resumed, dispatch_uid="jobs.cluster_resumed")
        job_state_changed.connect(scheduling.upstream_changed, dispatch_uid="jobs.upstream")

        uploads.register_overwrite_check(_used_by_unfinished_job)
        # A render node's local write grants end with its chunk's claim.
        from renderhub.storage.grants import register_owner_check

        from .node_claims import owner_alive

        register_owner_check(owner_alive)


def _used_by_unfinished_job(url: str) -> str | None:
    """Why the storage browser must not replace ``url`` (the rule `manage.py upload` keeps)."""
    from .scene_upload import files_in_use

    job = files_in_use([url]).get(url)
    if job is None:
        return None
    return (
        f"{url} is a file job #{job.pk} ({job.state}) renders from, so it is not replaced. "
        "Upload to a new folder, or wait until that job ends."
    )
