"""One clock for every time a person reads. Two kinds, one format each:

- ``time``: the time of day, ``14:05:07 UTC``;
- ``datetime``: a date and a time, ``Fri 4 Dec 2026, 14:05 UTC``.

Pages render them with ``{% clock %}`` (exams/templatetags/clock.py) in the
server's zone (``settings.TIME_ZONE``), always named, inside
``<time datetime="ISO 8601" data-clock="kind">``; static/js/clock.js then
writes the same format in the reader's own browser zone, and formats the times
the sockets push. Reports (PDF, CSV) have no browser: they use the server's zone
and say which. JSON exports and APIs keep ISO 8601.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

TIME = "time"
DATETIME = "datetime"
KINDS = (TIME, DATETIME)

_FORMATS = {TIME: "%H:%M:%S", DATETIME: "%a {day} %b %Y, %H:%M"}


def zone_name(at: datetime) -> str:
    """The zone ``at`` is shown in, as an abbreviation (``UTC``, ``CET``)."""
    return timezone.localtime(at).tzname() or timezone.get_current_timezone_name()


def clock_text(at: datetime | None, kind: str = TIME) -> str:
    """``at`` in the server's current time zone, in the one format of ``kind``,
    with the zone named; "" for no time."""
    if at is None:
        return ""
    if kind not in _FORMATS:
        raise ValueError(f"unknown kind of time {kind!r}: one of {KINDS}")
    local = timezone.localtime(at)
    text = local.strftime(_FORMATS[kind].replace("{day}", str(local.day)))
    return f"{text} {zone_name(at)}"
