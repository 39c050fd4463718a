"""What a report says about each session of an exam, as plain data. The JSON,
CSV and PDF formats (``text``, ``pdf``) are all built from this."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.db.models import Prefetch
from django.urls import reverse

from exams.models import AuditEntry, DecisionState, Event, Exam, ExamSession, ReviewDecision
from exams.risk import risk_of


def _iso(value) -> str | None:
    """ISO 8601 in UTC: the JSON keeps it, the CSV says "(UTC)" in its header."""
    return value.astimezone(UTC).isoformat() if value else None


def exam_sessions(exam: Exam):
    """Every session of the exam with what a report shows of it, in candidate order."""
    return (
        ExamSession.objects.filter(candidate__exam=exam)
        .select_related("candidate")
        .prefetch_related(
            "events", "messages__author", "decisions__reviewer", "decisions__event", _proctor_actions()
        )
        .order_by("candidate__name")
    )


def decision_state(session: ExamSession) -> DecisionState:
    """The session's decision state, from its prefetched decisions."""
    voters = {
        d.reviewer_id
        for d in session.decisions.all()
        if d.event_id is None and d.decision == ReviewDecision.Decision.VIOLATION
    }
    return DecisionState.of(session.state, len(voters))


def evidence_url(event: Event, site_url: str = "") -> str:
    """The access-checked evidence view of ``event``, absolute when ``site_url``
    (scheme://host) is given; empty once the frame is purged or if none was kept."""
    if not event.evidence:
        return ""
    return site_url.rstrip("/") + reverse("evidence", args=[event.public_id])


# The order a printed report shows evidence in: what a reviewer confirmed, then
# what nobody has decided yet. Dismissed events' frames are left out of print:
# a frame on paper reads as evidence against the candidate, and a reviewer
# said it is none (the review page still shows them, marked dismissed).
EVIDENCE_PRINT_ORDER = {Event.Review.CONFIRMED: 0, Event.Review.PENDING: 1}


def evidence_to_print(events: list[Event]) -> tuple[list[Event], list[Event]]:
    """The events whose evidence frame a printed report shows, confirmed ones
    first, then those not yet reviewed, each group in time order; and the
    dismissed events with a frame, which it leaves out."""
    with_frame = [e for e in events if e.evidence]
    printed = sorted(
        (e for e in with_frame if e.review_status in EVIDENCE_PRINT_ORDER),
        key=lambda e: (EVIDENCE_PRINT_ORDER[e.review_status], e.started_at, e.pk),
    )
    return printed, [e for e in with_frame if e.review_status not in EVIDENCE_PRINT_ORDER]


# What proctors did to an attempt during the exam, as audited: warnings, messages,
# pauses, ending it, extra time, acknowledged alerts (exam-wide ones marked so).
PROCTOR_ACTION_PREFIX = "proctor_"


def _proctor_actions() -> Prefetch:
    entries = AuditEntry.objects.filter(action__startswith=PROCTOR_ACTION_PREFIX).order_by("created_at", "pk")
    return Prefetch("audit", queryset=entries, to_attr="proctor_actions")


def proctor_action_rows(session: ExamSession) -> list[dict[str, Any]]:
    """The audited proctor actions on ``session``, oldest first."""
    entries = getattr(session, "proctor_actions", None)
    if entries is None:
        entries = session.audit.filter(action__startswith=PROCTOR_ACTION_PREFIX).order_by("created_at", "pk")
    texts = {m.pk: m.text for m in session.messages.all()}
    return [
        {
            "at": _iso(a.created_at),
            "by": a.actor_label,
            "action": a.action.removeprefix(PROCTOR_ACTION_PREFIX),
            "details": _with_words(session, a, texts),
        }
        for a in entries
    ]


def _with_words(session: ExamSession, entry: AuditEntry, texts: dict[int, str]) -> dict[str, Any]:
    """An audited proctor action's details with the proctor's words put back:
    the audit points to them (a Message, the session's end_reason) instead of
    holding them, so that erasure can blank them. Older rows hold them."""
    details = dict(entry.details)
    if "text" in details:
        return details
    if "message" in details:
        details["text"] = texts.get(details["message"], "")
    elif entry.action == f"{PROCTOR_ACTION_PREFIX}end" and session.end_reason:
        details["text"] = session.end_reason
    return details


def exam_report(exam: Exam, *, site_url: str = "") -> list[dict[str, Any]]:
    report = []
    for session in exam_sessions(exam):
        events = list(session.events.all())
        messages = list(session.messages.all())
        state = decision_state(session)
        report.append(
            {
                "session": str(session.public_id),
                "candidate": session.candidate.name,
                "email": session.candidate.email,
                "state": session.state,
                "reference_unverified": session.candidate.reference_unverified,
                "consented_at": _iso(session.consented_at),
                "verified_at": _iso(session.verified_at),
                "started_at": _iso(session.started_at),
                "finished_at": _iso(session.finished_at),
                "ended": session.how_it_ended,
                "risk_score": risk_of(events).score,
                "decision_state": state.value,
                "events": [
                    {
                        "id": str(e.public_id),
                        "type": e.type,
                        "severity": e.severity,
                        "started_at": _iso(e.started_at),
                        "ended_at": _iso(e.ended_at),
                        "confidence": round(e.confidence, 3),
                        "review_status": e.review_status,
                        "details": e.details,
                        "evidence": e.evidence.name or None,
                        "evidence_url": evidence_url(e, site_url) or None,
                    }
                    for e in events
                ],
                "decisions": [
                    {
                        "at": _iso(d.created_at),
                        "reviewer": d.reviewer.get_username(),
                        "decision": d.decision,
                        "event": str(d.event.public_id) if d.event_id else None,
                        "event_type": d.event.type if d.event_id else None,
                        "note": d.note,
                    }
                    for d in session.decisions.all()
                ],
                "messages": [
                    {
                        "at": _iso(m.created_at),
                        "sender": m.sender,
                        "kind": m.kind,
                        "author": m.author_name,
                        "text": m.text,
                    }
                    for m in messages
                ],
                "proctor_actions": proctor_action_rows(session),
            }
        )
    return report
