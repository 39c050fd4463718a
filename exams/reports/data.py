"""What a report says about each session of an exam, as plain data. The JSON,
CSV and PDF formats (``text``, ``pdf``) are all built from this."""

from __future__ import annotations

from typing import Any

from exams.models import Exam, ExamSession
from exams.risk import risk_of


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def exam_sessions(exam: Exam):
    """Every session of the exam with what a report shows of it, in candidate order."""
    return (
        ExamSession.objects.filter(candidate__exam=exam)
        .select_related("candidate")
        .prefetch_related("events", "messages__author")
        .order_by("candidate__name")
    )


def exam_report(exam: Exam) -> list[dict[str, Any]]:
    report = []
    for session in exam_sessions(exam):
        events = list(session.events.all())
        messages = list(session.messages.all())
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
                    }
                    for e in events
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
            }
        )
    return report
