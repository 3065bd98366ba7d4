"""Which Cromwell server a project's runs go to, and whether they may read its call cache.

A Cromwell server keeps one call cache for everything it ran: a call whose command and
inputs match an earlier one reuses that call's outputs, whoever ran it. On a server that
several projects share, a member of one project could so receive (a copy of) another
project's results by submitting the same call. RenderHub therefore:

- sends a project's runs to its own server when CROMWELL_PROJECT_URLS names one (its cache
  holds only that project's calls: read and written as the run's options say); a server
  named for several projects, or that is CROMWELL_URL too, is shared, not anyone's own;
- otherwise sends them to CROMWELL_URL, shared by every project, with ``read_from_cache``
  off (results are still written), unless CROMWELL_SHARED_CACHE says the projects may
  share results. The run's warnings say so, at submission.

The server a run was sent to is kept on it (``WorkflowRun.engine_url``): changing the
settings later never sends its polls or abort elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from projects.models import Project

    from ..models import WorkflowRun

SHARED_CACHE_NOTE = (
    "This run does not read Cromwell's call cache: the server (CROMWELL_URL) is shared by "
    "every project, and a cached call would hand it another project's results. Its calls "
    "still go into the cache. A server of the project's own (CROMWELL_PROJECT_URLS), or "
    "CROMWELL_SHARED_CACHE where projects may share results, turns reading on."
)


SHARED_OWN_NOTE = (
    "This run does not read Cromwell's call cache: the server CROMWELL_PROJECT_URLS names "
    "for this project is also another project's, or CROMWELL_URL, and a cached call would "
    "hand it another project's results. Its calls still go into the cache."
)


def project_urls() -> dict[str, str]:
    urls = settings.CROMWELL_PROJECT_URLS
    return {str(k): str(v) for k, v in urls.items()} if isinstance(urls, dict) else {}


def server_for(project: Project) -> tuple[str, bool]:
    """The server's base URL for the project's new runs, and whether it is the project's own."""
    own = project_urls().get(project.name, "")
    return (own, True) if own else (settings.CROMWELL_URL, False)


def server_of(run: WorkflowRun) -> str:
    return run.engine_url or server_for(run.project)[0]


def _same_server(a: str, b: str) -> bool:
    return bool(a) and a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def _private(name: str, url: str) -> bool:
    """Whether ``url`` serves project ``name`` alone: not the shared CROMWELL_URL, nor a
    server CROMWELL_PROJECT_URLS also names for another project."""
    others = [u for n, u in project_urls().items() if n != name]
    return bool(url) and not any(
        _same_server(url, other) for other in [settings.CROMWELL_URL, *others]
    )


def reads_cache(run: WorkflowRun) -> bool:
    """May the run read the server's call cache (its project's own, or sharing allowed)?"""
    if settings.CROMWELL_SHARED_CACHE:
        return True
    own = project_urls().get(run.project.name, "")
    return bool(own) and server_of(run) == own and _private(run.project.name, own)


def cache_options(run: WorkflowRun, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with reading the cache turned off where the server is shared."""
    return options if reads_cache(run) else {**options, "read_from_cache": False}


def submission_notes(project: Project) -> tuple[list[str], list[str]]:
    """(problems, warnings) of sending a run of ``project`` to Cromwell now."""
    url, own = server_for(project)
    if not url:  # without any server at all, the engine's configuration says so already
        return [
            "The Cromwell engine needs the CROMWELL_URL setting (or a server for this "
            "project in CROMWELL_PROJECT_URLS), which is not set."
        ] if project_urls() else [], []
    if settings.CROMWELL_SHARED_CACHE or (own and _private(project.name, url)):
        return [], []
    return [], [SHARED_OWN_NOTE if own else SHARED_CACHE_NOTE]
