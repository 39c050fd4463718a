"""The candidate's websocket connection: who holds the session, and when it was lost."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from exams import live
from exams.models import Event, ExamSession
from exams.presence import presence
from exams.services.audit import audit_record, candidate_label
from exams.services.events import (
    SIGNAL_MERGE_SECONDS,
    event_merge_instant,
    event_open,
    events_close_at_connection_loss,
)

# Audit rows per session for one cause of a connection (a second device refused):
# the event counts every time, the audit keeps the first few, however many tabs.
MAX_AUDITED_PER_CAUSE = 3
# Bad messages and floods audited per session and kind, across all its connections
# (a page that reconnects in a loop used to get a fresh allowance each time).
MAX_AUDITED_SOCKET_ERRORS = 20
# How long the per-session count of audited socket errors is kept (longer than any exam).
SOCKET_ERRORS_TTL_SECONDS = 2 * 24 * 3600


def connection_open(*, session: ExamSession, channel_name: str) -> None:
    """This websocket now holds the session (``exams.presence`` granted the claim).
    Ends an open connection_lost event."""
    now = timezone.now()
    events: list[Event] = []
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        session.connection_channel = channel_name
        session.last_seen_at = session.frames_due_from = now
        session.save(update_fields=["connection_channel", "last_seen_at", "frames_due_from"])
        lost = session.events.filter(key="connection_lost", is_open=True).first()
        if lost is not None:
            lost.close(now)
            events.append(lost)
    live.session_changed(session, events=events)


def connection_refused(*, session: ExamSession) -> Event:
    """A second tab or device tried to open the session while another holds it.
    One alert per session however often it tries (its count and last time go
    up; the proctors' page beeps for a new alert only), and at most
    MAX_AUDITED_PER_CAUSE audit rows."""
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        event, _ = event_merge_instant(
            session=session,
            event_type="duplicate_session",
            at=timezone.now(),
            details={"note": "a second tab or device opened this exam link and was refused"},
        )
        count = int(event.details["count"])
        if count <= MAX_AUDITED_PER_CAUSE:
            details = {"count": count}
            if count == MAX_AUDITED_PER_CAUSE:
                details["note"] = "further refusals are counted on the event, not audited"
            audit_record(
                action="duplicate_session_refused",
                actor_label=candidate_label(session),
                session=session,
                details=details,
            )
    live.session_changed(session, events=[event])
    return event


def connection_close(*, session: ExamSession, channel_name: str) -> None:
    """The candidate's websocket went away. During the exam that is a connection_lost event."""
    now = timezone.now()
    events: list[Event] = []
    with transaction.atomic():
        try:
            session = ExamSession.objects.locked(session.pk)
        except ExamSession.DoesNotExist:
            return  # the exam was deleted while its sockets were still open (loadtest's cleanup)
        if session.connection_channel != channel_name:
            return
        session.connection_channel = ""
        session.save(update_fields=["connection_channel"])
        if session.is_live:
            events += events_close_at_connection_loss(session=session, at=now)
            lost = _connection_lost(session, at=now)
            if lost is not None:
                events.append(lost)
    live.session_changed(session, events=events)


def _connection_lost(session: ExamSession, *, at) -> Event | None:
    """One connection_lost alert per run of losses: a loss within
    SIGNAL_MERGE_SECONDS of the last one's end reopens it and counts
    (``details["count"]``, ``details["last_at"]``), as tab switches do. None if
    one is open already. Under the session's lock."""
    if session.events.filter(key="connection_lost", is_open=True).exists():
        return None
    recent = (
        session.events.filter(
            key="connection_lost", ended_at__gte=at - timedelta(seconds=SIGNAL_MERGE_SECONDS)
        )
        .order_by("-ended_at")
        .first()
    )
    if recent is None:
        event = event_open(session=session, event_type="connection_lost", at=at)
        event.details = {"count": 1, "last_at": at.isoformat()}
        event.save(update_fields=["details"])
        return event
    recent.is_open, recent.ended_at = True, at
    recent.details = {
        **recent.details,
        "count": int(recent.details.get("count", 1)) + 1,
        "last_at": at.isoformat(),
    }
    recent.save(update_fields=["is_open", "ended_at", "details"])
    return recent


def socket_error_audit(*, session: ExamSession, action: str, details: dict) -> bool:
    """Audit a refused socket message or a flood, at most MAX_AUDITED_SOCKET_ERRORS
    per session and ``action`` across all of its connections (a reconnecting page
    no longer starts a fresh allowance); whether it was audited. The last one
    audited says that the rest are not."""
    key = f"socket-errors:{session.public_id}:{action}"
    cache.add(key, 0, SOCKET_ERRORS_TTL_SECONDS)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: start again
        cache.set(key, 1, SOCKET_ERRORS_TTL_SECONDS)
        count = 1
    if count > MAX_AUDITED_SOCKET_ERRORS:
        return False
    if count == MAX_AUDITED_SOCKET_ERRORS:
        details = {**details, "note": f"the first {count} are audited for this session; later ones are not"}
    audit_record(action=action, actor_label=candidate_label(session), session=session, details=details)
    return True


def connections_mark_stale() -> int:
    """Sessions whose websocket vanished without a close (server restart, network cut):
    the claim in ``exams.presence`` expired, but the database still names a channel."""
    stale_before = timezone.now() - timedelta(seconds=settings.HEARTBEAT_TIMEOUT_SECONDS)
    count = 0
    for session in ExamSession.objects.filter(
        state=ExamSession.State.IN_PROGRESS, last_seen_at__lt=stale_before
    ).exclude(connection_channel=""):
        if presence().held(str(session.public_id)):
            continue
        connection_close(session=session, channel_name=session.connection_channel)
        count += 1
    return count
