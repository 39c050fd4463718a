"""Flagged events: debounced detections, instant events and browser integrity signals."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from detection.core import SEVERITY, EventAction
from exams import live
from exams.models import Event, ExamSession
from exams.storage import atomic_with_files

COPY_PASTE_MERGE_SECONDS = 10
# A tab hidden again, or full screen left again, within this many seconds of the
# last time it ended reopens that event (counting the times in details) instead of
# minting a new one: 300 toggles made 150 rows before, now they make one.
SIGNAL_MERGE_SECONDS = 60


def event_new(
    session: ExamSession,
    *,
    event_type: str,
    key: str,
    started: datetime,
    ended: datetime,
    is_open: bool,
    confidence: float,
    details: dict,
    evidence_jpeg: bytes | None,
) -> Event:
    event = Event(
        session=session,
        type=event_type,
        key=key,
        severity=SEVERITY[event_type],
        started_at=started,
        ended_at=ended,
        is_open=is_open,
        confidence=confidence,
        details=details,
    )
    if evidence_jpeg:
        event.evidence.save("evidence.jpg", ContentFile(evidence_jpeg), save=False)
    event.save()
    return event


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def events_apply(
    *, session: ExamSession, actions: Iterable[EventAction], evidence_jpeg: bytes | None
) -> list[Event]:
    """Persist debounced event actions. A persisting condition is one event whose end moves forward."""
    changed: list[Event] = []
    for action in actions:
        current = session.events.filter(key=action.key, is_open=True).order_by("-started_at").first()
        if action.kind == "open":
            if current is not None:  # already open (a retried frame): extend instead
                current.ended_at = _ts(action.ended_at)
                current.save(update_fields=["ended_at"])
                continue
            changed.append(
                event_new(
                    session,
                    event_type=action.type,
                    key=action.key,
                    started=_ts(action.started_at),
                    ended=_ts(action.ended_at),
                    is_open=True,
                    confidence=action.confidence,
                    details=action.details,
                    evidence_jpeg=evidence_jpeg,
                )
            )
        elif current is None:
            continue
        elif action.kind == "extend":
            current.ended_at = _ts(action.ended_at)
            current.confidence = max(current.confidence, action.confidence)
            current.save(update_fields=["ended_at", "confidence"])
        elif action.kind == "close":
            current.close(_ts(action.ended_at))
            changed.append(current)
    return changed


def analysis_record(
    *,
    session: ExamSession,
    seq: int,
    received_at: float,
    state: dict[str, Any],
    faces: int,
    actions: Sequence[EventAction],
    evidence_jpeg: bytes,
    thumbnail: str | None = None,
) -> list[Event] | None:
    """Store one analysed frame: the stream state, the frame's bookkeeping and its
    event actions, then tell the proctors (with ``thumbnail``, a data URL, if
    the frame brought a new picture). The row is locked only for this write.
    None (and nothing written) if a frame as new or newer was stored."""
    with atomic_with_files():
        _commit_without_waiting_for_disk()
        # The candidate and exam were loaded just before the analysis.
        session = ExamSession.objects.locked_row(session)
        if seq <= session.last_frame_seq:
            return None
        session.analysis_state = state
        session.last_frame_seq = seq
        session.last_frame_at = _ts(received_at)
        session.frames_analysed += 1
        session.last_faces = faces
        session.save(
            update_fields=[
                "analysis_state",
                "last_frame_seq",
                "last_frame_at",
                "frames_analysed",
                "last_faces",
            ]
        )
        events = events_apply(session=session, actions=actions, evidence_jpeg=evidence_jpeg)
        transaction.on_commit(lambda: live.session_changed(session, events=events, thumbnail=thumbnail))
    return events


def _commit_without_waiting_for_disk() -> None:
    """PostgreSQL only: this transaction's commit does not wait for its WAL to
    reach the disk. It is one of every analysed frame's writes, and waiting for
    the flush was most of a worker's idle time per frame. A database crash can
    lose at most the last fraction of a second of analysis (wal_writer_delay),
    never leave it half written; the next frame analyses again from the state
    that was kept."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def event_open(*, session: ExamSession, event_type: str, at: datetime) -> Event:
    """A condition the browser or the connection reports, open from ``at`` until closed."""
    return event_new(
        session,
        event_type=event_type,
        key=event_type,
        started=at,
        ended=at,
        is_open=True,
        confidence=1.0,
        details={},
        evidence_jpeg=None,
    )


def event_record_instant(
    *,
    session: ExamSession,
    event_type: str,
    at: datetime,
    confidence: float = 1.0,
    details: dict | None = None,
    evidence_jpeg: bytes | None = None,
) -> Event:
    return event_new(
        session,
        event_type=event_type,
        key=event_type,
        started=at,
        ended=at,
        is_open=False,
        confidence=confidence,
        details=details or {},
        evidence_jpeg=evidence_jpeg,
    )


def signal_record(*, session: ExamSession, signal: str, active: bool) -> Event | None:
    """A browser integrity signal. tab_hidden and fullscreen_exit span time; copy_paste is instant."""
    now = timezone.now()
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if not session.is_live:
            return None
        current = session.events.filter(key=signal, is_open=True).first()
        event: Event | None = None
        if signal == "copy_paste":
            recent = (
                session.events.filter(
                    key=signal, ended_at__gte=now - timedelta(seconds=COPY_PASTE_MERGE_SECONDS)
                )
                .order_by("-ended_at")
                .first()
            )
            if recent is not None:
                recent.ended_at = now
                recent.details = {**recent.details, "count": int(recent.details.get("count", 1)) + 1}
                recent.save(update_fields=["ended_at", "details"])
                event = recent
            else:
                event = event_record_instant(session=session, event_type=signal, at=now, details={"count": 1})
        elif active and current is None:
            recent = (
                session.events.filter(key=signal, ended_at__gte=now - timedelta(seconds=SIGNAL_MERGE_SECONDS))
                .order_by("-ended_at")
                .first()
            )
            if recent is not None:
                recent.is_open, recent.ended_at = True, now
                recent.details = {**recent.details, "count": int(recent.details.get("count", 1)) + 1}
                recent.save(update_fields=["is_open", "ended_at", "details"])
                event = recent
            else:
                event = event_open(session=session, event_type=signal, at=now)
        elif not active and current is not None:
            current.close(now)
            event = current
    if event is not None:
        live.session_changed(session, events=[event])
    return event


def events_close_open(*, session: ExamSession) -> None:
    """The attempt is over: every open event ends where it was last seen."""
    for event in session.events.filter(is_open=True):
        event.close(event.ended_at)
