"""Flagged events: debounced detections, instant events and browser integrity signals."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from detection.core import SEVERITY, EventAction
from exams import live
from exams.models import Event, ExamSession
from exams.presence import presence
from exams.storage import atomic_with_files

log = logging.getLogger(__name__)

COPY_PASTE_MERGE_SECONDS = 10
# A tab hidden again, or full screen left again, within this many seconds of the
# last time it ended reopens that event (counting the times in details) instead of
# minting a new one: 300 toggles made 150 rows before, now they make one.
SIGNAL_MERGE_SECONDS = 60
# Set by the server, never by the frame rules: a connected page with no analysable frame.
CAMERA_SILENT = "camera_silent"
# The shortest frame interval an exam may have (Exam.frame_interval's validator).
MIN_FRAME_INTERVAL = 0.5
# Why an event ended without its condition going away (``details["ended_by"]``).
ENDED_BY_CONNECTION_LOST = "connection_lost"


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


def _open(
    session: ExamSession,
    action: EventAction,
    evidence_jpeg: bytes | None,
    *,
    started: float,
    details: dict | None = None,
) -> Event:
    """A new open event for ``action`` from ``started`` to the action's end."""
    return event_new(
        session,
        event_type=action.type,
        key=action.key,
        started=_ts(started),
        ended=_ts(action.ended_at),
        is_open=True,
        confidence=action.confidence,
        details={**action.details, **(details or {})},
        evidence_jpeg=evidence_jpeg,
    )


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
            changed.append(_open(session, action, evidence_jpeg, started=action.started_at))
        elif current is None and action.kind == "extend" and session.connection_channel:
            # The condition persists, but its event was closed meanwhile (the connection
            # was lost and closed it): a new event from this frame on, not one spanning
            # the gap. A frame analysed after the loss waits for the reconnect.
            changed.append(
                _open(session, action, evidence_jpeg, started=action.ended_at, details={"continued": True})
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
        previous_frame_at = session.last_frame_at
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
        if _after_a_silence(previous_frame_at, received_at):
            events += _camera_heard(session, at=session.last_frame_at)
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
            if recent is not None and recent.details.get("ended_by") == ENDED_BY_CONNECTION_LOST:
                recent = None  # reopened, it would span the lost connection
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


def events_close_open(*, session: ExamSession) -> list[Event]:
    """The attempt is over: every open event ends where it was last seen, and
    the proctors' feed is told once the caller's transaction commits (their
    feed said "(ongoing)" for an alert the review page showed as closed)."""
    closed = list(session.events.filter(is_open=True))
    for event in closed:
        event.close(event.ended_at)
    if closed:
        transaction.on_commit(lambda: live.events_changed(closed))
    return closed


def events_close_at_connection_loss(*, session: ExamSession, at: datetime) -> list[Event]:
    """The page's connection was lost: no alert spans it. A condition seen in the
    frames ends at the last frame that showed it; one the browser or the server
    reported (a hidden tab, a silent camera) at the loss. Each says why it ended
    (``details["ended_by"]``); a condition still there after the reconnect is a
    new event (see ``events_apply``). Call under the session's lock."""
    closed = list(session.events.filter(is_open=True).exclude(key="connection_lost"))
    for event in closed:
        from_frames = event.type not in BROWSER_OR_SERVER_TYPES
        event.details = {**event.details, "ended_by": ENDED_BY_CONNECTION_LOST}
        event.ended_at = max(event.ended_at if from_frames else at, event.started_at)
        event.is_open = False
        event.save(update_fields=["details", "ended_at", "is_open"])
    return closed


# Events that do not come from the frame rules, so their end is not "the last frame seen".
BROWSER_OR_SERVER_TYPES = frozenset(
    {"tab_hidden", "fullscreen_exit", "copy_paste", "connection_lost", "duplicate_session", CAMERA_SILENT}
)


def event_merge_instant(
    *, session: ExamSession, event_type: str, at: datetime, details: dict | None = None
) -> tuple[Event, bool]:
    """One alert per session and cause: a repeat of an instant event (a second
    device trying again, with a fresh tab id each time) counts on the session's
    event of that type (``details["count"]``, ``details["last_at"]``, and its end
    moves to the last time) instead of making a new one. The event and whether it
    is new. Call under the session's lock."""
    event = session.events.filter(key=event_type).order_by("-started_at", "-id").first()
    if event is None:
        details = {**(details or {}), "count": 1, "last_at": at.isoformat()}
        return event_record_instant(session=session, event_type=event_type, at=at, details=details), True
    event.details = {
        **event.details,
        "count": int(event.details.get("count", 1)) + 1,
        "last_at": at.isoformat(),
    }
    event.ended_at = max(at, event.started_at)
    event.save(update_fields=["details", "ended_at"])
    return event, False


def camera_silent_after(session: ExamSession, *, pace_factor: float = 1.0) -> float:
    """Seconds without an analysable frame after which a connected page's camera
    counts as silent: CAMERA_SILENT_INTERVALS frame intervals, stretched by the
    server's pace factor (``exams.analysis.pacing``) while it asks every page for
    fewer frames: an overloaded server is not a silent camera."""
    return settings.CAMERA_SILENT_INTERVALS * session.exam.frame_interval * max(1.0, pace_factor)


def _silent_since(session: ExamSession) -> datetime | None:
    """Since when this session's camera has given nothing: the later of its last
    analysed frame and the moment frames became due (connected, resumed)."""
    moments = [m for m in (session.last_frame_at, session.frames_due_from, session.started_at) if m]
    return max(moments) if moments else None


def _after_a_silence(previous_frame_at: datetime | None, received_at: float) -> bool:
    """Whether a camera_silent alert may be open when a frame arrives: only after a
    gap as long as the shortest silence any exam flags, or the session's first
    frame. A streaming session's frames then cost no extra query; if the check
    opened one in a race with a frame, its next run closes it (nothing is silent)."""
    if previous_frame_at is None:
        return True
    gap = received_at - previous_frame_at.timestamp()
    return gap >= settings.CAMERA_SILENT_INTERVALS * MIN_FRAME_INTERVAL


def _camera_heard(session: ExamSession, *, at: datetime) -> list[Event]:
    """An analysed frame arrived: an open camera_silent alert ends there. Under the lock."""
    closed = list(session.events.filter(key=CAMERA_SILENT, is_open=True))
    for event in closed:
        event.close(at)
    return closed


def camera_silent_check(*, session: ExamSession, now: datetime, pace_factor: float = 1.0) -> Event | None:
    """Open, extend or close this session's camera_silent alert. The alert if it
    was opened or closed now (and told to the proctors), else None."""
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        current = session.events.filter(key=CAMERA_SILENT, is_open=True).first()
        watched = session.is_live and not session.paused and bool(session.connection_channel)
        since = _silent_since(session)
        silent = (
            watched
            and since is not None
            and (now - since).total_seconds() >= camera_silent_after(session, pace_factor=pace_factor)
        )
        if current is not None and not silent:
            # Paused, disconnected or finished meanwhile; a frame closes it in analysis_record.
            current.close(now)
            event = current
        elif current is not None:
            current.ended_at = now
            current.save(update_fields=["ended_at"])
            return None
        elif silent:
            event = event_new(
                session,
                event_type=CAMERA_SILENT,
                key=CAMERA_SILENT,
                started=since,
                ended=now,
                is_open=True,
                confidence=1.0,
                details={
                    "intervals": settings.CAMERA_SILENT_INTERVALS,
                    "frame_interval": session.exam.frame_interval,
                    "frames_analysed": session.frames_analysed,
                },
                evidence_jpeg=None,
            )
        else:
            return None
    live.session_changed(session, events=[event])
    return event


def cameras_flag_silent(*, now: datetime | None = None, pace_factor: float = 1.0) -> int:
    """Every attempt in progress whose page is connected (and still heard from:
    heartbeats hold its claim in ``exams.presence``) but whose camera gave no
    analysable frame (none sent, only heartbeats, or frames that never decode)
    for ``camera_silent_after`` seconds gets a high camera_silent alert; one
    that is heard from again, paused or disconnected has it closed. Idempotent.
    How many alerts were opened or closed.

    Runs every few seconds over every live attempt, so it reads without locks
    and takes a session's lock only for one that looks silent or has an alert
    open (``camera_silent_check`` decides again under the lock)."""
    now = now or timezone.now()
    # The shortest threshold any exam can have, in SQL; each exam's own in Python.
    soonest = now - timedelta(seconds=settings.CAMERA_SILENT_INTERVALS * MIN_FRAME_INTERVAL)
    running = ExamSession.objects.filter(state=ExamSession.State.IN_PROGRESS).exclude(connection_channel="")
    quiet = (
        running.filter(paused=False)
        .exclude(last_frame_at__gte=soonest)
        .exclude(frames_due_from__gte=soonest)
        .select_related("candidate__exam")
    )
    due = set()
    for session in quiet:
        since = _silent_since(session)
        if since is None or (now - since).total_seconds() < camera_silent_after(
            session, pace_factor=pace_factor
        ):
            continue
        # No claim: the socket vanished without a close, which connections_mark_stale
        # records as a lost connection; only a page still heard from has a silent camera.
        if presence().held(str(session.public_id)):
            due.add(session.pk)
    due |= set(Event.objects.filter(key=CAMERA_SILENT, is_open=True).values_list("session_id", flat=True))
    changed = 0
    for session in ExamSession.objects.filter(pk__in=due).select_related("candidate__exam"):
        try:
            changed += camera_silent_check(session=session, now=now, pace_factor=pace_factor) is not None
        except Exception:  # one broken attempt must not stop the others' alerts
            log.exception("could not check the camera of session %s", session.public_id)
    return changed
