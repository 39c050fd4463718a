"""Workflows that span several models. Views, consumers, tasks and commands call these.

Each function is named ``<entity>_<action>``, takes keyword-only arguments,
writes an audit line for staff actions, and is safe to call twice where the
caller may retry.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from detection.core import SEVERITY, DetectionError, EventAction, decode_image, encode_reference
from exams import live
from exams.models import (
    AuditEntry,
    Candidate,
    Event,
    Exam,
    ExamSession,
    IllegalTransition,
    Message,
    ReviewDecision,
)

log = logging.getLogger(__name__)
User = get_user_model()

COPY_PASTE_MERGE_SECONDS = 10


# ---------------------------------------------------------------- audit


def audit_record(
    *,
    action: str,
    actor=None,
    actor_label: str = "",
    exam: Exam | None = None,
    session: ExamSession | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    if not actor_label:
        actor_label = actor.get_username() if actor is not None else "system"
    if session is not None and exam is None:
        exam = session.exam
    entry = AuditEntry.objects.create(
        actor=actor, actor_label=actor_label, action=action, exam=exam, session=session, details=details or {}
    )
    log.info("audit: %s %s %s", actor_label, action, details or "")
    return entry


def _candidate_label(session: ExamSession) -> str:
    return f"candidate:{session.candidate.email}"


# ---------------------------------------------------------------- exams and roster


def exam_create(*, title: str, proctors: Sequence[str] = (), actor_label: str = "cli", **fields: Any) -> Exam:
    users = list(User.objects.filter(username__in=proctors))
    missing = set(proctors) - {u.username for u in users}
    if missing:
        raise ValueError(f"unknown proctor user(s): {', '.join(sorted(missing))}")
    with transaction.atomic():
        exam = Exam(title=title, **fields)
        exam.full_clean()
        exam.save()
        exam.proctors.set(users)
        audit_record(action="exam_create", actor_label=actor_label, exam=exam, details={"title": title})
    return exam


@dataclass(frozen=True)
class RosterRow:
    name: str
    email: str
    link: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email, "link": self.link, "error": self.error}


class RosterError(ValueError):
    """One roster row cannot be imported; the message says why, for the person fixing the roster."""


ROSTER_COLUMNS = ("name", "email", "photo")


def roster_rows(text: str) -> list[dict[str, Any]]:
    """Parse roster CSV text (already decoded, byte-order mark removed) into
    ``{"line", "name", "email", "photo"}`` dicts, stripped.

    Raises ValueError when a column is missing; row-level problems are left to
    ``candidate_add`` so that one bad row never stops the others.
    """
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = set(ROSTER_COLUMNS) - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"roster CSV lacks column(s): {', '.join(sorted(missing))}")
    return [
        {"line": line, **{column: (row.get(column) or "").strip() for column in ROSTER_COLUMNS}}
        for line, row in enumerate(reader, start=2)
    ]


def reference_encodings(photo_bytes: bytes) -> list[list[float]]:
    """The stored form of a reference photo's face: one 128-d encoding.
    Raises DetectionError when the photo is no image or not exactly one face."""
    return [encode_reference(decode_image(photo_bytes)).tolist()]


def candidate_add(
    *, exam: Exam, name: str, email: str, photo_name: str = "", photo_bytes: bytes = b""
) -> Candidate:
    """Add one candidate with the face encoding of their roster photo (optional).

    Idempotent on (exam, email): a candidate already on the exam is returned
    unchanged. Raises RosterError for an empty name, a bad email, or a photo
    that does not show exactly one face.
    """
    email = email.strip().lower()
    if not name.strip():
        raise RosterError("name is empty")
    try:
        validate_email(email)
    except ValidationError:
        raise RosterError(f"{email!r} is not a valid email address") from None
    existing = Candidate.objects.filter(exam=exam, email=email).first()
    if existing is not None:
        return existing
    encodings: list[list[float]] = []
    if photo_bytes:
        try:
            encodings = reference_encodings(photo_bytes)
        except DetectionError as exc:
            raise RosterError(f"photo {photo_name}: {exc}") from None
    with transaction.atomic():
        candidate = Candidate.objects.create(
            exam=exam, name=name.strip(), email=email, reference_encodings=encodings
        )
        if photo_bytes:
            suffix = Path(photo_name).suffix.lower() or ".jpg"
            candidate.reference_photo.save(f"{candidate.token[:12]}{suffix}", ContentFile(photo_bytes))
        ExamSession.objects.create(candidate=candidate)
    return candidate


def roster_import(
    *, exam: Exam, csv_path: Path, base_url: str = "", actor_label: str = "cli"
) -> list[RosterRow]:
    """Import candidates from ``name,email,photo``. Bad rows get an error; good rows are imported.

    Photo paths are relative to the CSV file. Re-importing a row whose email is
    already on the exam updates nothing and reports its existing link.
    """
    results: list[RosterRow] = []
    for row in roster_rows(csv_path.read_text(encoding="utf-8-sig")):
        name, email, photo = row["name"], row["email"].lower(), row["photo"]
        photo_bytes = b""
        try:
            if photo:
                try:
                    photo_bytes = (csv_path.parent / photo).resolve().read_bytes()
                except OSError as exc:
                    raise RosterError(f"cannot read photo {photo}: {exc.strerror or exc}") from None
            candidate = candidate_add(
                exam=exam, name=name, email=email, photo_name=photo, photo_bytes=photo_bytes
            )
        except RosterError as exc:
            results.append(RosterRow(name, email, "", f"line {row['line']}: {exc}"))
            continue
        results.append(RosterRow(name, email, base_url + candidate.link_path(), ""))
    audit_record(
        action="roster_import",
        actor_label=actor_label,
        exam=exam,
        details={"rows": len(results), "errors": sum(1 for r in results if r.error)},
    )
    return results


def session_for_candidate(candidate: Candidate) -> ExamSession:
    session, _ = ExamSession.objects.get_or_create(candidate=candidate)
    return session


# ---------------------------------------------------------------- candidate flow


def session_consent(*, session: ExamSession, version: str) -> None:
    with transaction.atomic():
        session = ExamSession.objects.select_for_update().get(pk=session.pk)
        if session.state != ExamSession.State.INVITED:
            return  # consent already given; a double submit changes nothing
        session.consent(version=version, now=timezone.now())
        session.save()
        audit_record(
            action="consent",
            actor_label=_candidate_label(session),
            session=session,
            details={"version": version},
        )


def verification_pending(*, session: ExamSession) -> None:
    """A verification photo was received and is queued for the identity check."""
    ExamSession.objects.filter(pk=session.pk).update(
        verification_status="pending", verification_message="Checking your photo…"
    )


def verification_result(*, session: ExamSession, status: str, message: str) -> None:
    """A verification attempt that could not compare (no face, several faces, bad image)."""
    with transaction.atomic():
        session = ExamSession.objects.select_for_update().get(pk=session.pk)
        session.verification_status = status
        session.verification_message = message[:300]
        session.verification_attempts += 1
        session.save(update_fields=["verification_status", "verification_message", "verification_attempts"])


def verification_capture_reference(*, session: ExamSession, encoding, photo_jpeg: bytes) -> None:
    """No roster photo: the verification photo becomes the reference, marked unverified."""
    with transaction.atomic():
        session = ExamSession.objects.select_for_update().select_related("candidate").get(pk=session.pk)
        if session.state != ExamSession.State.CONSENTED:
            return
        candidate = session.candidate
        candidate.reference_encodings = [list(map(float, encoding))]
        candidate.reference_unverified = True
        candidate.reference_photo.save(
            f"{candidate.token[:12]}-captured.jpg", ContentFile(photo_jpeg), save=False
        )
        candidate.save()
        session.verification_status = "captured_reference"
        session.verification_message = "No roster photo was on file, so this photo is now your reference."
        session.verification_attempts += 1
        session.verify(now=timezone.now())
        session.save()
        audit_record(
            action="reference_captured",
            actor_label=_candidate_label(session),
            session=session,
            details={"note": "reference is unverified: a reviewer must check it against the candidate's ID"},
        )
    live.session_changed(session)


def verification_compare(
    *,
    session: ExamSession,
    distance: float,
    threshold: float,
    match: bool,
    photo_jpeg: bytes,
    give_up_after: int,
) -> None:
    now = timezone.now()
    events: list[Event] = []
    with transaction.atomic():
        session = ExamSession.objects.select_for_update().select_related("candidate__exam").get(pk=session.pk)
        if session.state != ExamSession.State.CONSENTED:
            return
        session.verification_attempts += 1
        session.verification_distance = distance
        if match:
            session.verification_status = "matched"
            session.verification_message = "Identity confirmed."
            session.verify(now=now)
        elif session.verification_attempts >= give_up_after:
            # Do not lock a candidate out over a model's opinion; let a human decide.
            session.verification_status = "mismatch_flagged"
            session.verification_message = (
                "Your photo did not match the roster photo. "
                "You may continue; a proctor will check your identity."
            )
            session.verify(now=now)
            events.append(
                event_record_instant(
                    session=session,
                    event_type="identity_mismatch",
                    at=now,
                    confidence=1.0,
                    details={"distance": round(distance, 4), "threshold": threshold, "stage": "verification"},
                    evidence_jpeg=photo_jpeg,
                )
            )
        else:
            session.verification_status = "mismatch"
            left = give_up_after - session.verification_attempts
            session.verification_message = (
                "Your photo did not match the roster photo. Face the camera in good light, remove "
                f"anything covering your face and try again ({left} attempt{'s' if left != 1 else ''} left)."
            )
        session.save()
        audit_record(
            action="identity_verification",
            actor_label=_candidate_label(session),
            session=session,
            details={"distance": round(distance, 4), "threshold": threshold, "match": match},
        )
    live.session_changed(session, events=events)


def session_start(*, session: ExamSession) -> ExamSession:
    with transaction.atomic():
        session = ExamSession.objects.select_for_update().get(pk=session.pk)
        if session.state == ExamSession.State.VERIFIED:
            session.start(now=timezone.now())
            session.save()
            audit_record(action="exam_start", actor_label=_candidate_label(session), session=session)
    live.session_changed(session)
    return session


def _close_open_events(session: ExamSession, now: datetime) -> None:
    for event in session.events.filter(is_open=True):
        event.is_open = False
        event.ended_at = max(event.ended_at, event.started_at)
        event.save(update_fields=["is_open", "ended_at"])


def session_submit(*, session: ExamSession) -> ExamSession:
    now = timezone.now()
    with transaction.atomic():
        session = ExamSession.objects.select_for_update().get(pk=session.pk)
        if session.state != ExamSession.State.IN_PROGRESS:
            return session
        session.submit(now=now)
        session.save()
        _close_open_events(session, now)
        audit_record(action="exam_submit", actor_label=_candidate_label(session), session=session)
    live.session_changed(session)
    live.to_candidate(session, {"type": "ended", "state": session.state})
    return session


# ---------------------------------------------------------------- events


def _event_new(
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
        event.evidence.save(
            f"{session.public_id.hex}-{event.public_id.hex}.jpg", ContentFile(evidence_jpeg), save=False
        )
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
                _event_new(
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
            current.ended_at = _ts(action.ended_at)
            current.is_open = False
            current.save(update_fields=["ended_at", "is_open"])
            changed.append(current)
    return changed


def event_record_instant(
    *,
    session: ExamSession,
    event_type: str,
    at: datetime,
    confidence: float = 1.0,
    details: dict | None = None,
    evidence_jpeg: bytes | None = None,
) -> Event:
    return _event_new(
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
        session = ExamSession.objects.select_for_update().select_related("candidate__exam").get(pk=session.pk)
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
            event = _event_new(
                session,
                event_type=signal,
                key=signal,
                started=now,
                ended=now,
                is_open=True,
                confidence=1.0,
                details={},
                evidence_jpeg=None,
            )
        elif not active and current is not None:
            current.ended_at = now
            current.is_open = False
            current.save(update_fields=["ended_at", "is_open"])
            event = current
    if event is not None:
        live.session_changed(session, events=[event])
    return event


# ---------------------------------------------------------------- connections


def connection_open(*, session: ExamSession, channel_name: str) -> bool:
    """Claim the session for this websocket. False (and a duplicate_session event) if another holds it."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.HEARTBEAT_TIMEOUT_SECONDS)
    events: list[Event] = []
    with transaction.atomic():
        session = ExamSession.objects.select_for_update().select_related("candidate__exam").get(pk=session.pk)
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
                action="duplicate_session_refused", actor_label=_candidate_label(session), session=session
            )
            ok = False
        else:
            session.connection_channel = channel_name
            session.last_seen_at = now
            session.save(update_fields=["connection_channel", "last_seen_at"])
            lost = session.events.filter(key="connection_lost", is_open=True).first()
            if lost is not None:
                lost.ended_at = now
                lost.is_open = False
                lost.save(update_fields=["ended_at", "is_open"])
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
        session = ExamSession.objects.select_for_update().select_related("candidate__exam").get(pk=session.pk)
        if session.connection_channel != channel_name:
            return
        session.connection_channel = ""
        session.save(update_fields=["connection_channel"])
        if session.is_live and not session.events.filter(key="connection_lost", is_open=True).exists():
            events.append(
                _event_new(
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


# ---------------------------------------------------------------- proctor actions

PROCTOR_ACTIONS = ("warn", "message", "pause", "resume", "end")
DEFAULT_WARNING = "Please follow the exam rules."


def proctor_act(*, session: ExamSession, actor, action: str, text: str = "") -> ExamSession:
    if action not in PROCTOR_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    text = text.strip()[: Message.MAX_LENGTH]
    if action == "message" and not text:
        raise ValueError("Write the message first.")
    now = timezone.now()
    with transaction.atomic():
        session = ExamSession.objects.select_for_update().select_related("candidate__exam").get(pk=session.pk)
        if action in ("pause", "resume"):
            if not session.is_live:
                raise IllegalTransition("only an exam in progress can be paused or resumed")
            session.paused = action == "pause"
            session.save(update_fields=["paused"])
        elif not session.is_live:
            raise IllegalTransition("the exam is not in progress, so the candidate would not see it")
        elif action == "end":
            session.terminate(now=now, reason=text or f"ended by proctor {actor.get_username()}")
            session.save()
            _close_open_events(session, now)
        audit_record(action=f"proctor_{action}", actor=actor, session=session, details={"text": text})
        message = None
        if action in ("warn", "message"):
            message = Message.objects.create(
                session=session,
                sender=Message.Sender.PROCTOR,
                kind=action,
                author=actor,
                text=text or DEFAULT_WARNING,
            )
    payload: dict[str, Any] = {"type": action, "text": message.text if message else text, "from": "proctor"}
    if action == "end":
        payload = {"type": "ended", "state": session.state, "text": text or "A proctor ended your exam."}
    live.to_candidate(session, payload)
    live.session_changed(session)
    if message is not None:
        live.message_posted(message)
    return session


def message_from_candidate(*, session: ExamSession, text: str) -> Message:
    """The candidate writes to the proctors. Only during the exam; 1 to 500 characters."""
    text = text.strip() if isinstance(text, str) else ""
    if not text or len(text) > Message.MAX_LENGTH:
        raise ValueError(f"A message is text of 1 to {Message.MAX_LENGTH} characters.")
    session = ExamSession.objects.select_related("candidate__exam").get(pk=session.pk)
    if not session.is_live:
        raise IllegalTransition("Messages can be sent only while the exam is in progress.")
    message = Message.objects.create(session=session, sender=Message.Sender.CANDIDATE, text=text)
    live.message_posted(message)
    return message


# ---------------------------------------------------------------- review


def event_review(*, event: Event, reviewer, decision: str, note: str = "") -> Event:
    if decision not in (ReviewDecision.Decision.CONFIRM, ReviewDecision.Decision.DISMISS):
        raise ValueError(f"unknown event decision {decision!r}")
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("session").get(pk=event.pk)
        event.review_status = Event.Review.CONFIRMED if decision == "confirm" else Event.Review.DISMISSED
        event.save(update_fields=["review_status"])
        ReviewDecision.objects.create(
            session=event.session, event=event, reviewer=reviewer, decision=decision, note=note
        )
        audit_record(
            action=f"event_{decision}",
            actor=reviewer,
            session=event.session,
            details={"event": str(event.public_id), "type": event.type, "note": note},
        )
    return event


def session_review(*, session: ExamSession, reviewer, outcome: str, note: str = "") -> str:
    """Clear a finished session, or propose/confirm a violation.

    A violation becomes final only when a second, different reviewer agrees.
    Returns the session's state afterwards ("awaiting_second_reviewer" while
    one violation vote stands).
    """
    if outcome not in (ReviewDecision.Decision.CLEAR, ReviewDecision.Decision.VIOLATION):
        raise ValueError(f"unknown outcome {outcome!r}")
    now = timezone.now()
    with transaction.atomic():
        session = ExamSession.objects.select_for_update().get(pk=session.pk)
        if session.state not in (ExamSession.State.SUBMITTED, ExamSession.State.TERMINATED):
            raise IllegalTransition(f"a session that is {session.state} cannot be reviewed")
        ReviewDecision.objects.create(session=session, reviewer=reviewer, decision=outcome, note=note)
        result = session.state
        if outcome == "clear":
            session.clear(now=now)
            session.save()
            result = session.state
        else:
            votes = set(
                session.decisions.filter(event=None, decision="violation").values_list(
                    "reviewer_id", flat=True
                )
            )
            if len(votes) >= 2:
                session.mark_violation(now=now)
                session.save()
                result = session.state
            else:
                result = "awaiting_second_reviewer"
        audit_record(
            action=f"session_{outcome}",
            actor=reviewer,
            session=session,
            details={"note": note, "result": result},
        )
    return result


def session_violation_votes(session: ExamSession) -> list[str]:
    return list(
        session.decisions.filter(event=None, decision="violation").values_list(
            "reviewer__username", flat=True
        )
    )


# ---------------------------------------------------------------- retention


def exams_purge_expired(*, now: datetime | None = None, progress=None) -> dict[str, int]:
    """Delete evidence frames, reference photos and face encodings of exams past retention.

    Idempotent and resumable: each file is deleted and its row cleared in a
    small transaction, so an interrupted purge picks up where it stopped.
    """
    now = now or timezone.now()
    totals = {"exams": 0, "evidence_files": 0, "reference_photos": 0}
    due = [
        e for e in Exam.objects.filter(purged_at__isnull=True, closes_at__lt=now) if e.purge_after() <= now
    ]
    for exam in due:
        events = Event.objects.filter(session__candidate__exam=exam).exclude(evidence="")
        total = events.count()
        for done, event in enumerate(events.iterator(), start=1):
            event.evidence.delete(save=True)
            totals["evidence_files"] += 1
            if progress and (done % 100 == 0 or done == total):
                progress(f"{exam.title}: {done}/{total} evidence files deleted")
        for candidate in exam.candidates.all():
            if candidate.reference_photo:
                candidate.reference_photo.delete(save=False)
                totals["reference_photos"] += 1
            candidate.reference_encodings = []
            candidate.save(update_fields=["reference_photo", "reference_encodings"])
        exam.purged_at = now
        exam.save(update_fields=["purged_at"])
        audit_record(action="retention_purge", exam=exam, details=dict(totals))
        totals["exams"] += 1
    return totals
