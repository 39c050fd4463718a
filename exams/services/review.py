"""Reviewers' decisions on events and sessions; a violation needs two reviewers.

Once a session's outcome is final (cleared, or a violation two reviewers
agreed on) its decisions are locked: no event of it is confirmed or dismissed
again and no further outcome is recorded (``DecisionLocked``), so the report
and the risk score stay those the outcome was decided on."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from exams.models import (
    DecisionState,
    Event,
    Exam,
    ExamSession,
    IllegalTransition,
    ReviewDecision,
    ReviewOutcome,
)
from exams.risk import risk_of
from exams.services.audit import audit_record


class DecisionLocked(IllegalTransition):
    """A decision on a session whose outcome is already final. The message is for the reviewer."""


FINAL_STATES = (ExamSession.State.CLEARED, ExamSession.State.VIOLATION)


def session_decisions_locked(session: ExamSession) -> str:
    """Why ``session``'s decisions are locked, in words for the workbench and the
    admin; "" while they are not (its outcome is not final yet)."""
    if session.state == ExamSession.State.VIOLATION:
        return (
            "This session's outcome is final: a violation, confirmed by two reviewers. "
            "Its decisions are locked and can no longer be changed."
        )
    if session.state == ExamSession.State.CLEARED:
        return (
            "This session's outcome is final: cleared by a reviewer. "
            "Its decisions are locked and can no longer be changed."
        )
    return ""


def _refuse_if_locked(session: ExamSession) -> None:
    locked = session_decisions_locked(session)
    if locked:
        raise DecisionLocked(locked)


def event_review(*, event: Event, reviewer, decision: str, note: str = "") -> Event:
    """Confirm or dismiss one event; DecisionLocked once its session's outcome is final."""
    if decision not in (ReviewDecision.Decision.CONFIRM, ReviewDecision.Decision.DISMISS):
        raise ValueError(f"unknown event decision {decision!r}")
    with transaction.atomic():
        # The session's row first, as session_review locks it: an outcome decided
        # at the same moment waits for this decision, or this one sees it.
        _refuse_if_locked(ExamSession.objects.locked(event.session_id))
        event = Event.objects.select_for_update().select_related("session").get(pk=event.pk)
        confirmed = decision == ReviewDecision.Decision.CONFIRM
        event.review_status = Event.Review.CONFIRMED if confirmed else Event.Review.DISMISSED
        event.save(update_fields=["review_status"])
        row = ReviewDecision.objects.create(
            session=event.session, event=event, reviewer=reviewer, decision=decision, note=note
        )
        # The note stays in the decision (erasure blanks it), not in the append-only audit.
        audit_record(
            action=f"event_{decision}",
            actor=reviewer,
            session=event.session,
            details={"event": str(event.public_id), "type": event.type, "decision": row.pk},
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
        _refuse_if_locked(session)
        if session.state not in (ExamSession.State.SUBMITTED, ExamSession.State.TERMINATED):
            raise IllegalTransition(f"a session that is {session.state} cannot be reviewed")
        row = ReviewDecision.objects.create(session=session, reviewer=reviewer, decision=outcome, note=note)
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
            details={"decision": row.pk, "result": result},
        )
    return result


def _violation_votes(session: ExamSession):
    return session.decisions.filter(event=None, decision=ReviewDecision.Decision.VIOLATION)


def session_violation_votes(session: ExamSession) -> list[str]:
    return list(_violation_votes(session).values_list("reviewer__username", flat=True))


def events_review_bulk(
    *, session: ExamSession, reviewer, event_type: str, decision: str, note: str = ""
) -> list[Event]:
    """Confirm or dismiss every event of one type in a session, each with its own
    decision and audit line, as if decided one by one. Events that already have
    that status are left alone. Returns the events that changed; DecisionLocked
    once the session's outcome is final, even when nothing would change."""
    if decision not in (ReviewDecision.Decision.CONFIRM, ReviewDecision.Decision.DISMISS):
        raise ValueError(f"unknown event decision {decision!r}")
    target = Event.Review.CONFIRMED if decision == ReviewDecision.Decision.CONFIRM else Event.Review.DISMISSED
    changed = []
    with transaction.atomic():
        _refuse_if_locked(ExamSession.objects.locked(session.pk))
        for event in session.events.filter(type=event_type).exclude(review_status=target):
            changed.append(event_review(event=event, reviewer=reviewer, decision=decision, note=note))
    return changed


def session_decision_state(session: ExamSession) -> DecisionState:
    voters = _violation_votes(session).values("reviewer_id").distinct().count()
    return DecisionState.of(session.state, voters)


@dataclass(frozen=True)
class ReviewRow:
    """One session as the reviewers' lists show it."""

    session: ExamSession
    risk: int
    high: int
    flags: int
    decision_state: DecisionState
    in_my_queue: bool


def _queue_exams(reviewer):
    """The exams whose sessions wait for ``reviewer``: those they are assigned
    to (Exam.reviewers), or every exam for a superuser, whose access is not
    scoped to assignments."""
    if reviewer.is_superuser:
        return Exam.objects.all()
    return Exam.objects.filter(reviewers=reviewer)


def review_rows(*, sessions, reviewer) -> list[ReviewRow]:
    """``sessions`` with their risk score, open flags and decision state, and
    whether each waits for ``reviewer``'s decision: finished, not yet decided
    (cleared or voted on) by them, on an exam in their queue. Highest risk first."""
    queue_exams = set(_queue_exams(reviewer).values_list("pk", flat=True))
    sessions = (
        sessions.select_related("candidate__exam")
        .prefetch_related("events")
        .annotate(
            violation_voters=Count(
                "decisions__reviewer",
                filter=Q(decisions__event=None, decisions__decision=ReviewDecision.Decision.VIOLATION),
                distinct=True,
            ),
            mine=Count("decisions", filter=Q(decisions__event=None, decisions__reviewer=reviewer)),
        )
    )
    rows = []
    for session in sessions:
        events = [e for e in session.events.all() if e.review_status != Event.Review.DISMISSED]
        state = DecisionState.of(session.state, session.violation_voters)
        waiting = state in (DecisionState.AWAITING_REVIEW, DecisionState.AWAITING_SECOND_REVIEWER)
        rows.append(
            ReviewRow(
                session=session,
                risk=risk_of(session.events.all()).score,
                high=sum(1 for e in events if e.severity == "high"),
                flags=len(events),
                decision_state=state,
                in_my_queue=waiting and not session.mine and session.candidate.exam_id in queue_exams,
            )
        )
    rows.sort(key=lambda row: (-row.risk, -row.high, -row.flags, row.session.candidate.name))
    return rows


def review_queue(*, reviewer, exam: Exam | None = None) -> list[ReviewRow]:
    """The sessions waiting for ``reviewer``'s decision, highest risk first."""
    sessions = ExamSession.objects.filter(
        state__in=(ExamSession.State.SUBMITTED, ExamSession.State.TERMINATED),
        candidate__exam__in=_queue_exams(reviewer),
    )
    if exam is not None:
        sessions = sessions.filter(candidate__exam=exam)
    return [row for row in review_rows(sessions=sessions, reviewer=reviewer) if row.in_my_queue]


def review_queue_next(*, reviewer, after: ExamSession | None = None) -> ExamSession | None:
    """The first session of ``reviewer``'s queue other than ``after``: the one to
    open once ``after`` is decided (or skipped)."""
    for row in review_queue(reviewer=reviewer):
        if after is None or row.session.pk != after.pk:
            return row.session
    return None
