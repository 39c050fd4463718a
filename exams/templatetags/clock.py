"""``{% clock value %}`` and ``{% clock value "datetime" %}``: a time as people
read it, the same on every page (see exams/clock.py). It renders
``<time datetime="ISO" data-clock="kind">`` in the server's zone, named, and
static/js/clock.js rewrites it in the reader's browser zone.
``{{ value|clock_text }}`` is the plain text, for attributes."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.html import format_html

from exams import clock as clocks

register = template.Library()


def _moment(value: datetime | str | None) -> datetime | None:
    """A datetime, or the ISO 8601 text of one (the live payloads carry those)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value) if value else None
    return value


@register.simple_tag(name="clock")
def clock_tag(
    value: datetime | str | None, kind: str = clocks.TIME, *, empty: str = "—", id: str = "", cls: str = ""
) -> str:
    at = _moment(value)
    if at is None:
        return empty
    return format_html(
        '<time datetime="{}" data-clock="{}"{}{}>{}</time>',
        at.isoformat(),
        kind,
        format_html(' id="{}"', id) if id else "",
        format_html(' class="{}"', cls) if cls else "",
        clocks.clock_text(at, kind),
    )


@register.filter
def clock_text(value: datetime | str | None, kind: str = clocks.TIME) -> str:
    return clocks.clock_text(_moment(value), kind)
