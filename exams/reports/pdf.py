"""The exam report as a printable PDF: a summary table of every session, then
one section per session with its explained risk score, the event timeline, the
reviewers' decisions and notes, the conversation and the evidence frames that
retention still holds.

It reads the same sessions as the JSON and CSV exports (exams.reports.data.exam_sessions),
as model objects rather than rows, because it opens the evidence files.
"""

from __future__ import annotations

import io
from datetime import datetime
from xml.sax.saxutils import escape

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import (
    Image,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from exams.clock import DATETIME, TIME, clock_text
from exams.models import Event, Exam, ExamSession
from exams.reports.data import decision_state, evidence_to_print, exam_sessions, proctor_action_rows
from exams.risk import risk_of

# Evidence frames printed per session (confirmed events first, then unreviewed;
# data.evidence_to_print); the rest are listed in the timeline and counted
# under the frames, so that a session with hundreds of events still prints in seconds.
EVIDENCE_PER_SESSION = 6
_EVIDENCE_BOX = (55 * mm, 45 * mm)  # each frame is scaled to fit, keeping its shape
_EVIDENCE_COLUMNS = 3

_SEVERITY_COLOUR = {
    "high": colors.HexColor("#c62828"),
    "medium": colors.HexColor("#b26a00"),
    "low": colors.HexColor("#546e7a"),
}


def _action_text(action: dict) -> str:
    """One audited proctor action in words, e.g. "extra time, 10 min" or "pause (whole exam)"."""
    details = action["details"]
    words = action["action"].replace("_", " ")
    if details.get("minutes"):
        words += f", {details['minutes']} min"
    if details.get("type"):
        words += f" of {Event.label_of(details['type'])}"
    if details.get("text"):
        words += f": {details['text']}"
    if details.get("exam_wide"):
        words += " (whole exam)"
    return words


def _when(value: datetime | None, kind: str = DATETIME) -> str:
    """A time as every page shows it (exams/clock.py), in the server's zone, named."""
    return clock_text(value, kind) or "—"


def _p(text: str, style) -> Paragraph:
    return Paragraph(escape(text), style)


def _evidence_image(event: Event) -> Image | None:
    """The event's evidence JPEG scaled to the column, or None once purged or missing."""
    if not event.evidence:
        return None
    try:
        with event.evidence.open("rb") as handle:
            data = handle.read()
    except (FileNotFoundError, OSError):
        return None
    try:
        width, height = ImageReader(io.BytesIO(data)).getSize()
    except Exception:  # a damaged evidence file must not stop the whole report
        return None
    if not width or not height:
        return None
    scale = min(_EVIDENCE_BOX[0] / width, _EVIDENCE_BOX[1] / height)
    return Image(io.BytesIO(data), width=width * scale, height=height * scale, hAlign="LEFT")


def _session_story(session: ExamSession, events: list[Event], styles) -> list:
    body, small = styles["BodyText"], styles["small"]
    risk = risk_of(events)
    candidate = session.candidate
    story: list = [
        _p(candidate.name, styles["Heading2"]),
        _p(
            f"{candidate.email} · {session.get_state_display()}"
            + (
                " · reference captured at the exam, not verified against a roster photo"
                if candidate.reference_unverified
                else ""
            ),
            body,
        ),
    ]
    identity = session.get_verification_status_display() or "—"
    if session.verification_distance is not None:
        identity += f" (distance {session.verification_distance:.3f})"
    facts = [
        [
            "Consented",
            _when(session.consented_at)
            + (f" (policy version {session.consent_version})" if session.consent_version else ""),
        ],
        ["Identity check", identity],
        ["Started", _when(session.started_at)],
        ["Finished", _when(session.finished_at)],
        ["Ended", session.how_it_ended or "—"],
        ["Risk score", f"{risk.score} / 100"],
    ]
    table = Table(
        [[_p(k, small), _p(v, small)] for k, v in facts], colWidths=[35 * mm, 120 * mm], hAlign="LEFT"
    )
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    story += [table, Spacer(1, 2 * mm)]
    for line in risk.lines:
        story.append(_p(f"+{line.points}  {line.reason}", small))
    if not risk.lines:
        story.append(_p("No flags count towards the score.", small))

    story.append(Spacer(1, 3 * mm))
    if events:
        rows = [[_p(h, small) for h in ("Event", "Severity", "From", "To", "Confidence", "Review")]]
        for e in events:
            rows.append(
                [
                    _p(e.label, small),
                    _p(e.severity, small),
                    _p(_when(e.started_at, TIME), small),
                    _p(_when(e.ended_at, TIME) + (" (open)" if e.is_open else ""), small),
                    _p(f"{e.confidence:.2f}", small),
                    _p(e.review_status, small),
                ]
            )
        timeline = Table(
            rows,
            repeatRows=1,
            colWidths=[34 * mm, 18 * mm, 34 * mm, 40 * mm, 20 * mm, 20 * mm],
            hAlign="LEFT",
        )
        style = [
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f3f5f8")]),
        ]
        for row, e in enumerate(events, start=1):
            style.append(("TEXTCOLOR", (1, row), (1, row), _SEVERITY_COLOUR.get(e.severity, colors.black)))
        timeline.setStyle(TableStyle(style))
        story.append(timeline)
    else:
        story.append(_p("No events were recorded.", body))

    decisions = list(session.decisions.all())
    story += [Spacer(1, 3 * mm), _p("Reviewers' decisions", styles["Heading4"])]
    if decisions:
        rows = [[_p(h, small) for h in ("When", "Reviewer", "Decision", "On", "Note")]]
        for d in decisions:
            rows.append(
                [
                    _p(_when(d.created_at), small),
                    _p(d.reviewer.get_username(), small),
                    _p(d.get_decision_display(), small),
                    _p(
                        f"{d.event.label} at {_when(d.event.started_at, TIME)}"
                        if d.event_id
                        else "the session",
                        small,
                    ),
                    _p(d.note or "—", small),
                ]
            )
        table = Table(
            rows, repeatRows=1, colWidths=[32 * mm, 26 * mm, 20 * mm, 34 * mm, 54 * mm], hAlign="LEFT"
        )
        table.setStyle(
            TableStyle(
                [("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black), ("VALIGN", (0, 0), (-1, -1), "TOP")]
            )
        )
        story.append(table)
    else:
        story.append(_p("No reviewer has decided anything yet.", small))
    story.append(_p(f"Decision state: {decision_state(session).label}", small))

    conversation = list(session.messages.all())
    if conversation:
        story += [Spacer(1, 3 * mm), _p("Messages during the exam", styles["Heading4"])]
        for m in conversation:
            story.append(_p(f"{_when(m.created_at, TIME)}  {m.speaker}: {m.text}", small))

    actions = proctor_action_rows(session)
    if actions:
        story += [Spacer(1, 3 * mm), _p("Proctor actions during the exam", styles["Heading4"])]
        for a in actions:
            story.append(_p(f"{_when(parse_datetime(a['at']), TIME)}  {a['by']}: {_action_text(a)}", small))

    story += _evidence_story(events, styles)
    return story


_REVIEW_WORDS = {Event.Review.CONFIRMED: "confirmed by a reviewer", Event.Review.PENDING: "not reviewed yet"}


def _evidence_story(events: list[Event], styles) -> list:
    """The evidence frames: confirmed events first, then unreviewed ones, each
    captioned with its review status, at most EVIDENCE_PER_SESSION of them; and
    a line for every frame that is not printed, saying why and where it is."""
    small = styles["small"]
    candidates, dismissed = evidence_to_print(events)
    frames, unreadable, more = [], 0, 0
    for e in candidates:
        if len(frames) >= EVIDENCE_PER_SESSION:
            more += 1
            continue
        image = _evidence_image(e)
        if image is None:
            unreadable += 1
            continue
        caption = f"{e.label} at {_when(e.started_at, TIME)}, {_REVIEW_WORDS[e.review_status]}"
        frames.append([image, _p(caption, small)])
    story: list = []
    if frames:
        story += [
            Spacer(1, 3 * mm),
            _p("Evidence frames", styles["Heading4"]),
            _p("Confirmed events first, then those no reviewer has decided yet.", small),
        ]
        n = _EVIDENCE_COLUMNS
        grid = [
            [list(cell) for cell in frames[i : i + n]] + [""] * (n - len(frames[i : i + n]))
            for i in range(0, len(frames), n)
        ]
        story.append(
            Table(
                grid,
                colWidths=[_EVIDENCE_BOX[0] + 5 * mm] * n,
                hAlign="LEFT",
                style=TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]),
            )
        )
    notes = []
    if more:
        notes.append(
            f"{more} more evidence frame(s) of confirmed or unreviewed events are on the review page."
        )
    if unreadable:
        notes.append(
            f"{unreadable} evidence frame(s) could not be read (purged after the retention period, or "
            "damaged); the timeline above still lists their events."
        )
    if dismissed:
        notes.append(
            f"{len(dismissed)} frame(s) of events a reviewer dismissed are not printed; "
            "the review page still shows them."
        )
    return story + [_p(note, small) for note in notes]


def _summary(sessions: list[ExamSession], styles) -> list:
    """One row per session: the page a reviewer or an appeal board reads first."""
    small = styles["small"]
    rows = [[_p(h, small) for h in ("Candidate", "State", "Risk", "Flags (high)", "Decision")]]
    style = [
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f3f5f8")]),
        ("ALIGN", (2, 1), (3, -1), "RIGHT"),
    ]
    for row, session in enumerate(sessions, start=1):
        events = [e for e in session.events.all() if e.review_status != Event.Review.DISMISSED]
        high = sum(1 for e in events if e.severity == "high")
        risk = risk_of(session.events.all()).score
        rows.append(
            [
                _p(session.candidate.name, small),
                _p(session.get_state_display(), small),
                _p(str(risk), small),
                _p(f"{len(events)} ({high})", small),
                _p(decision_state(session).label, small),
            ]
        )
        if risk >= 60:
            style.append(("TEXTCOLOR", (2, row), (2, row), _SEVERITY_COLOUR["high"]))
    table = Table(rows, repeatRows=1, colWidths=[58 * mm, 26 * mm, 16 * mm, 24 * mm, 42 * mm], hAlign="LEFT")
    table.setStyle(TableStyle(style))
    return [
        _p("Summary", styles["Heading2"]),
        _p("Flags leave out dismissed events; the decision is the reviewers', the score only orders.", small),
        Spacer(1, 2 * mm),
        table,
    ]


def report_pdf(exam: Exam) -> bytes:
    """Every session of the exam, in the candidate order of the other exports,
    one session per page (a session with many events runs onto more pages)."""
    styles = getSampleStyleSheet()
    styles.add(styles["BodyText"].clone("small", fontSize=8, leading=10))
    story: list = [
        _p(exam.title, styles["Title"]),
        _p(
            f"Exam {exam.code} · window {_when(exam.opens_at)} to {_when(exam.closes_at)} · "
            f"evidence kept {exam.retention_days} days · generated {_when(timezone.now())}",
            styles["BodyText"],
        ),
        _p(
            "Flags are findings for a human to review, not verdicts. Dismissed events count for nothing "
            "in the risk score; a violation needs two reviewers.",
            styles["BodyText"],
        ),
        Spacer(1, 4 * mm),
    ]
    sessions = list(exam_sessions(exam))
    if not sessions:
        story.append(_p("This exam has no candidates yet.", styles["BodyText"]))
    else:
        story += _summary(sessions, styles)
    for session in sessions:
        story.append(PageBreak())
        story += _session_story(session, list(session.events.all()), styles)

    buffer = io.BytesIO()

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(15 * mm, 10 * mm, f"{exam.title} — confidential proctoring report")
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Report: {exam.title}",
        author="Open Proctor",
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
