"""The candidate's websocket connection: who holds the session, and when it was lost."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exams import live
from exams.models import Event, ExamSession
from exams.services.audit import audit_record, candidate_label
from exams.services.events import event_new, event_record_instant


def connection_open(*, session: ExamSession, channel_name: str) -> bool:
    """Claim the session for this websocket. False (and a duplicate_session event) if another holds it."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.HEARTBEAT_TIMEOUT_SECONDS)
    events: list[Event] = []
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        held = session.connection_channel and session.last_seen_at and session.last_seen_at >= stale_before
        if held and session.connection_channel != channel_name:
            events.append(
                event_record_instant(
                    session=session,
                    event_type="duplicate_session",
                    at=now,
                    details={"note": "a second tab or device opened this exam link and was refused"},
                )
            )
            audit_record(
                action="duplicate_session_refused", actor_label=candidate_label(session), session=session
            )
            ok = False
        else:
            session.connection_channel = channel_name
            session.last_seen_at = now
            session.save(update_fields=["connection_channel", "last_seen_at"])
            lost = session.events.filter(key="connection_lost", is_open=True).first()
            if lost is not None:
                lost.close(now)
                events.append(lost)
            ok = True
    live.session_changed(session, events=events)
    return ok


def connection_seen(*, session: ExamSession, channel_name: str) -> None:
    ExamSession.objects.filter(pk=session.pk, connection_channel=channel_name).update(
        last_seen_at=timezone.now()
    )


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
            events.append(
                event_new(
                    session,
                    event_type="connection_lost",
                    key="connection_lost",
                    started=now,
                    ended=now,
                    is_open=True,
                    confidence=1.0,
                    details={},
                    evidence_jpeg=None,
                )
            )
    live.session_changed(session, events=events)


def connections_mark_stale() -> int:
    """Sessions whose websocket vanished without a close (server restart, network cut)."""
    stale_before = timezone.now() - timedelta(seconds=settings.HEARTBEAT_TIMEOUT_SECONDS)
    count = 0
    for session in ExamSession.objects.filter(
        state=ExamSession.State.IN_PROGRESS, last_seen_at__lt=stale_before
    ).exclude(connection_channel=""):
        connection_close(session=session, channel_name=session.connection_channel)
        count += 1
    return count
