"""A candidate's way through an attempt: consent, identity verification, start, submit."""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from exams import live
from exams.clock import DATETIME, clock_text
from exams.models import Event, Exam, ExamSession, VerificationStatus
from exams.services.audit import audit_record, candidate_label
from exams.services.events import event_record_instant, events_close_open
from exams.storage import atomic_with_files

log = logging.getLogger(__name__)

TIME_UP = ExamSession.TIME_UP


class OutsideWindow(Exception):
    """Verification or start was attempted before the exam opened or after it
    closed. ``message`` is for the candidate, in UTC; pages show the window's
    times again in the candidate's own time zone."""

    def __init__(self, exam: Exam, now: datetime) -> None:
        self.exam = exam
        self.early = now < exam.opens_at
        if self.early:
            message = (
                f"This exam opens at {_utc(exam.opens_at)}. Come back then to check your camera and start."
            )
        else:
            message = f"This exam closed at {_utc(exam.closes_at)}, so it can no longer be started."
        super().__init__(message)
        self.message = message


def _utc(at: datetime) -> str:
    return clock_text(at, DATETIME)


def exam_window_check(*, exam: Exam, now: datetime | None = None) -> None:
    """Raise OutsideWindow unless ``now`` is within opens_at..closes_at."""
    now = now or timezone.now()
    if not exam.is_open(now):
        raise OutsideWindow(exam, now)


def session_consent(*, session: ExamSession, version: str) -> None:
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if session.state != ExamSession.State.INVITED:
            return  # consent already given; a double submit changes nothing
        session.consent(version=version, now=timezone.now())
        session.save()
        audit_record(
            action="consent",
            actor_label=candidate_label(session),
            session=session,
            details={"version": version},
        )


def session_decline_consent(*, session: ExamSession, version: str) -> None:
    """The candidate declined to be proctored. Nothing changes but the audit log:
    the session stays invited, so the candidate can still agree later, and the
    exam's staff can see who declined and arrange something else."""
    if session.state != ExamSession.State.INVITED:
        return
    audit_record(
        action="consent_declined",
        actor_label=candidate_label(session),
        session=session,
        details={"version": version},
    )


def verification_pending(*, session: ExamSession) -> None:
    """A verification photo was received and is queued for the identity check."""
    ExamSession.objects.filter(pk=session.pk).update(
        verification_status=VerificationStatus.PENDING, verification_message="Checking your photo…"
    )


def verification_lost(*, session: ExamSession) -> bool:
    """A pending photo that nothing will answer (exams.analysis.intake.verification_recover):
    back to "not started" with a word for the page, which asks for another photo. Only
    if no result came meanwhile (every result changes the status or the attempts). True
    if it did."""
    return bool(
        ExamSession.objects.filter(
            pk=session.pk,
            verification_status=VerificationStatus.PENDING,
            verification_attempts=session.verification_attempts,
        ).update(
            verification_status=VerificationStatus.NONE,
            verification_message="Your photo was not checked: the server was too busy. Take it again.",
        )
    )


def verification_result(*, session: ExamSession, status: VerificationStatus, message: str) -> None:
    """A verification attempt that could not compare (no face, several faces, bad image)."""
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        session.verification_status = status
        session.verification_message = message[:300]
        session.verification_attempts += 1
        session.save(update_fields=["verification_status", "verification_message", "verification_attempts"])


def verification_capture_reference(*, session: ExamSession, encoding, photo_jpeg: bytes) -> None:
    """No roster photo: the verification photo becomes the reference, marked unverified."""
    with atomic_with_files():
        session = ExamSession.objects.locked(session.pk)
        if session.state != ExamSession.State.CONSENTED or _refused_outside_window(session):
            return
        candidate = session.candidate
        candidate.reference_encodings = [list(map(float, encoding))]
        candidate.reference_unverified = True
        candidate.reference_photo.save("captured.jpg", ContentFile(photo_jpeg), save=False)
        candidate.save()
        session.verification_status = VerificationStatus.CAPTURED_REFERENCE
        session.verification_message = "No roster photo was on file, so this photo is now your reference."
        session.verification_attempts += 1
        session.verify(now=timezone.now())
        session.save()
        audit_record(
            action="reference_captured",
            actor_label=candidate_label(session),
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
    with atomic_with_files():
        session = ExamSession.objects.locked(session.pk)
        if session.state != ExamSession.State.CONSENTED or _refused_outside_window(session, now):
            return
        session.verification_attempts += 1
        session.verification_distance = distance
        if match:
            session.verification_status = VerificationStatus.MATCHED
            session.verification_message = "Identity confirmed."
            session.verify(now=now)
        elif session.verification_attempts >= give_up_after:
            # Do not lock a candidate out over a model's opinion; let a human decide.
            session.verification_status = VerificationStatus.MISMATCH_FLAGGED
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
            session.verification_status = VerificationStatus.MISMATCH
            left = give_up_after - session.verification_attempts
            session.verification_message = (
                "Your photo did not match the roster photo. Face the camera in good light, remove "
                f"anything covering your face and try again ({left} attempt{'s' if left != 1 else ''} left)."
            )
        session.save()
        audit_record(
            action="identity_verification",
            actor_label=candidate_label(session),
            session=session,
            details={"distance": round(distance, 4), "threshold": threshold, "match": match},
        )
    live.session_changed(session, events=events)


def _refused_outside_window(session: ExamSession, now: datetime | None = None) -> bool:
    """A verification photo analysed after the window closed (it was queued
    just before) verifies nothing; the candidate is told why. Call under the lock."""
    try:
        exam_window_check(exam=session.exam, now=now)
    except OutsideWindow as exc:
        session.verification_status = VerificationStatus.NONE
        session.verification_message = exc.message[:300]
        session.save(update_fields=["verification_status", "verification_message"])
        return True
    return False


def session_start(*, session: ExamSession) -> ExamSession:
    """Start a verified attempt; OutsideWindow if the exam is not open now."""
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if session.state == ExamSession.State.VERIFIED:
            now = timezone.now()
            exam_window_check(exam=session.exam, now=now)
            session.start(now=now)
            session.save()
            audit_record(action="exam_start", actor_label=candidate_label(session), session=session)
    live.session_changed(session)
    return session


def session_submit(*, session: ExamSession) -> ExamSession:
    now = timezone.now()
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if session.state != ExamSession.State.IN_PROGRESS:
            return session
        session.submit(now=now)
        session.save()
        events_close_open(session=session)
        audit_record(action="exam_submit", actor_label=candidate_label(session), session=session)
    live.session_changed(session)
    live.to_candidate(session, {"type": "ended", "state": session.state})
    return session


def session_time_up(*, session: ExamSession, now: datetime | None = None) -> bool:
    """Submit an attempt whose deadline has passed (start + duration, or the
    window's close, moved by extra time), recording why. Safe to call at any
    time and twice: True only for the call that submitted it.

    Called by the beat task for every overdue attempt, and lazily whenever the
    candidate's page or socket is touched after the deadline."""
    now = now or timezone.now()
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        deadline = session.deadline
        if session.state != ExamSession.State.IN_PROGRESS or deadline is None or now < deadline:
            return False
        session.submit(now=now)
        session.end_reason = TIME_UP
        session.save()
        events_close_open(session=session)
        audit_record(
            action="exam_time_up",
            actor_label="system",
            session=session,
            details={"deadline": deadline.isoformat(), "extra_minutes": session.extra_minutes},
        )
    live.session_changed(session)
    live.to_candidate(
        session, {"type": "ended", "state": session.state, "text": "Time is up: your exam was submitted."}
    )
    return True


def sessions_submit_overdue(*, now: datetime | None = None) -> int:
    """Submit every attempt in progress whose deadline has passed; how many.

    The deadline is computed in Python (``ExamSession.deadline``) over the
    attempts in progress, which are few (the live ones), so the rule lives in
    one place and works on SQLite in embedded mode too."""
    now = now or timezone.now()
    count = 0
    running = ExamSession.objects.filter(state=ExamSession.State.IN_PROGRESS, started_at__isnull=False)
    for session in running.select_related("candidate__exam").iterator():
        deadline = session.deadline
        if deadline is not None and deadline <= now:
            try:
                count += session_time_up(session=session, now=now)
            except Exception:  # one broken attempt must not keep the others running forever
                log.exception("could not submit overdue session %s", session.public_id)
    return count
