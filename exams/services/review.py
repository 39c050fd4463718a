"""Reviewers' decisions on events and sessions; a violation needs two reviewers."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from exams.models import Event, ExamSession, IllegalTransition, ReviewDecision, ReviewOutcome
from exams.services.audit import audit_record


def event_review(*, event: Event, reviewer, decision: str, note: str = "") -> Event:
    if decision not in (ReviewDecision.Decision.CONFIRM, ReviewDecision.Decision.DISMISS):
        raise ValueError(f"unknown event decision {decision!r}")
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("session").get(pk=event.pk)
        confirmed = decision == ReviewDecision.Decision.CONFIRM
        event.review_status = Event.Review.CONFIRMED if confirmed else Event.Review.DISMISSED
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


def session_review(*, session: ExamSession, reviewer, outcome: str, note: str = "") -> ReviewOutcome:
    """Clear a finished session, or propose/confirm a violation.

    A violation becomes final only when a second, different reviewer agrees.
    Returns what the decision led to: cleared, violation, or awaiting a second
    reviewer while one violation vote stands.
    """
    if outcome not in (ReviewDecision.Decision.CLEAR, ReviewDecision.Decision.VIOLATION):
        raise ValueError(f"unknown outcome {outcome!r}")
    now = timezone.now()
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if session.state not in (ExamSession.State.SUBMITTED, ExamSession.State.TERMINATED):
            raise IllegalTransition(f"a session that is {session.state} cannot be reviewed")
        ReviewDecision.objects.create(session=session, reviewer=reviewer, decision=outcome, note=note)
        if outcome == ReviewDecision.Decision.CLEAR:
            session.clear(now=now)
            session.save()
            result = ReviewOutcome.CLEARED
        elif len(set(_violation_votes(session).values_list("reviewer_id", flat=True))) >= 2:
            session.mark_violation(now=now)
            session.save()
            result = ReviewOutcome.VIOLATION
        else:
            result = ReviewOutcome.AWAITING_SECOND_REVIEWER
        audit_record(
            action=f"session_{outcome}",
            actor=reviewer,
            session=session,
            details={"note": note, "result": result},
        )
    return result


def _violation_votes(session: ExamSession):
    return session.decisions.filter(event=None, decision=ReviewDecision.Decision.VIOLATION)


def session_violation_votes(session: ExamSession) -> list[str]:
    return list(_violation_votes(session).values_list("reviewer__username", flat=True))
