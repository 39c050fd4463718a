"""A candidate's way through an attempt: consent, identity verification, start, submit."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from exams import live
from exams.models import Event, ExamSession, VerificationStatus
from exams.services.audit import audit_record, candidate_label
from exams.services.events import event_record_instant, events_close_open


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
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if session.state != ExamSession.State.CONSENTED:
            return
        candidate = session.candidate
        candidate.reference_encodings = [list(map(float, encoding))]
        candidate.reference_unverified = True
        candidate.reference_photo.save(
            f"{candidate.token[:12]}-captured.jpg", ContentFile(photo_jpeg), save=False
        )
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
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if session.state != ExamSession.State.CONSENTED:
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


def session_start(*, session: ExamSession) -> ExamSession:
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if session.state == ExamSession.State.VERIFIED:
            session.start(now=timezone.now())
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
