"""The candidate's websocket connection: who holds the session, and when it was lost."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exams import live
from exams.models import Event, ExamSession
from exams.presence import presence
from exams.services.audit import audit_record, candidate_label
from exams.services.events import event_open, event_record_instant


def connection_open(*, session: ExamSession, channel_name: str) -> None:
    """This websocket now holds the session (``exams.presence`` granted the claim).
    Ends an open connection_lost event."""
    now = timezone.now()
    events: list[Event] = []
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        session.connection_channel = channel_name
        session.last_seen_at = now
        session.save(update_fields=["connection_channel", "last_seen_at"])
        lost = session.events.filter(key="connection_lost", is_open=True).first()
        if lost is not None:
            lost.close(now)
            events.append(lost)
    live.session_changed(session, events=events)


def connection_refused(*, session: ExamSession) -> None:
    """A second tab or device tried to open the session while another holds it."""
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        event = event_record_instant(
            session=session,
            event_type="duplicate_session",
            at=timezone.now(),
            details={"note": "a second tab or device opened this exam link and was refused"},
        )
        audit_record(
            action="duplicate_session_refused", actor_label=candidate_label(session), session=session
        )
    live.session_changed(session, events=[event])


def connection_close(*, session: ExamSession, channel_name: str) -> None:
    """The candidate's websocket went away. During the exam that is a connection_lost event."""
    now = timezone.now()
    events: list[Event] = []
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if session.connection_channel != channel_name:
            return
        session.connection_channel = ""
        session.save(update_fields=["connection_channel"])
        if session.is_live and not session.events.filter(key="connection_lost", is_open=True).exists():
            events.append(event_open(session=session, event_type="connection_lost", at=now))
    live.session_changed(session, events=events)


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
