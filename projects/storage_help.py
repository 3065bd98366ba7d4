"""What to show beside fields where storage URLs are typed: which folders the user may use.

Paths on this machine are installation detail, so each user sees only what they may use:
superusers the storage roots, other staff the prefixes opened to them, members their own
projects' folders (which the storage browser shows them anyway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from . import services

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Wide enough for file:///… and oss://bucket/… URLs.
URL_ATTRS = {"class": "storage-url", "size": 80, "spellcheck": "false"}


def roots_help(user: User, text: object = "") -> SafeString:
    """``text`` followed by the storage roots ``user`` may point a project at."""
    roots = services.storage_roots(user)
    if not roots:
        return format_html("{}", text)
    listed = format_html_join("; ", "<code>{}</code> ({})", ((r.url, r.note) for r in roots))
    return format_html('{} <span class="storage-roots">Allowed: {}.</span>', text, listed)


def project_storage_help(user: User, text: object = "") -> SafeString:
    """``text`` followed by the folders of each project ``user`` sees."""
    projects = services.project_storage(user)
    if not projects:
        return format_html("{}", text)
    listed = format_html_join(
        "; ",
        "{}: {}",
        (
            (name, format_html_join(", ", "<code>{}</code>", ((url,) for url in urls)))
            for name, urls in projects
        ),
    )
    return format_html(
        '{} <span class="storage-roots">Inside the project storage: {}.</span>', text, listed
    )
