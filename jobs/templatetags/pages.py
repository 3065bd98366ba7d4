"""Formatting filters of the staff pages (the CLI's formats, so both read the same)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template

from renderhub import cli

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    return cli.format_duration(seconds)


@register.filter
def filesize(size: int | None) -> str:
    return cli.format_size(size)


@register.filter
def first_line(text: str, width: int = 90) -> str:
    return cli.first_line(text or "", width)


@register.filter
def percent(part: int | float | None, whole: int | float | None) -> str:
    """``part`` of ``whole`` in percent with one decimal and a '.', whatever the locale (CSS)."""
    if not whole or not part:
        return "0"
    return f"{min(100.0, 100 * float(part) / float(whole)):.1f}"


@register.filter
def get(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key)


@register.filter
def opens_inline(url: str | None) -> bool:
    """Whether a signed link to this file shows in the browser (images) or downloads."""
    from renderhub.storage.base import inline_type

    return bool(url) and inline_type(str(url).rsplit("/", 1)[-1]) is not None


@register.filter
def epoch_ms(moment: datetime | None) -> str:
    """Milliseconds since the epoch, for the browser's clock (``<time data-since>``)."""
    return str(int(moment.timestamp() * 1000)) if moment else ""
