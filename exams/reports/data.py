"""The session report as JSON, CSV or PDF, shared by the export command and view."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from exams.models import Exam, ExamSession
from exams.risk import risk_of

CSV_COLUMNS = [
    "candidate",
    "email",
    "state",
    "consented_at",
    "started_at",
    "finished_at",
    "risk_score",
    "event_type",
    "severity",
    "started_at_event",
    "ended_at",
    "confidence",
    "review_status",
    "evidence",
]


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


def report_json(exam: Exam) -> str:
    return json.dumps({"exam": str(exam.code), "title": exam.title, "sessions": exam_report(exam)}, indent=2)


def report_csv(exam: Exam) -> str:
    """One row per event; a session without events still gets one row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for s in exam_report(exam):
        head = [
            s["candidate"],
            s["email"],
            s["state"],
            s["consented_at"],
            s["started_at"],
            s["finished_at"],
            s["risk_score"],
        ]
        if not s["events"]:
            writer.writerow(head + [""] * 7)
        for e in s["events"]:
            writer.writerow(
                head
                + [
                    e["type"],
                    e["severity"],
                    e["started_at"],
                    e["ended_at"],
                    e["confidence"],
                    e["review_status"],
                    e["evidence"] or "",
                ]
            )
    return out.getvalue()


FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}


def report_render(exam: Exam, fmt: str) -> bytes:
    """The report in one of FORMATS, as bytes ready to write or send."""
    if fmt == "json":
        return report_json(exam).encode("utf-8")
    if fmt == "csv":
        return report_csv(exam).encode("utf-8")
    if fmt == "pdf":
        from exams.report_pdf import report_pdf  # reportlab loads only when a PDF is asked for

        return report_pdf(exam)
    raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
