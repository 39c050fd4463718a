"""The PDF report: what a reviewer prints or files for an appeal."""

import io
import re

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from pypdf import PdfReader

from exams.models import AuditEntry, Event, ReviewDecision
from tests.conftest import _candidate, advance, photo_bytes


def _pdf_text(data: bytes) -> tuple[str, int, int]:
    """All the text, the page count and the number of embedded images."""
    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    images = sum(len(page.images) for page in reader.pages)
    return text, len(reader.pages), images


@pytest.fixture
def flagged_session(candidate):
    """Obama's finished session: a confirmed multiple_faces with a real evidence frame,
    and a dismissed tab_hidden without one."""
    session = candidate.session
    advance(session, "consented", "verified", "in_progress", "submitted")
    now = timezone.now()
    seen = Event.objects.create(
        session=session,
        type="multiple_faces",
        key="multiple_faces",
        severity="high",
        started_at=now,
        ended_at=now,
        confidence=1.0,
        is_open=False,
        review_status="confirmed",
        details={"faces": 2},
    )
    seen.evidence.save("frame.jpg", ContentFile(photo_bytes("obama.jpg")))
    Event.objects.create(
        session=session,
        type="tab_hidden",
        key="tab_hidden",
        severity="medium",
        started_at=now,
        ended_at=now,
        confidence=1.0,
        is_open=False,
        review_status="dismissed",
    )
    return session


@pytest.mark.django_db
def test_it_prints_each_session_with_its_score_timeline_and_evidence(flagged_session, reviewer, exam):
    _candidate(exam, "Joe Biden", "joe@example.org")  # invited, never started: still listed
    response = Client()
    response.force_login(reviewer)
    page = response.get(f"/review/exams/{exam.code}")
    assert f"/review/exams/{exam.code}/export.pdf".encode() in page.content

    pdf = response.get(f"/review/exams/{exam.code}/export.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert f"report-{exam.code}.pdf" in pdf["Content-Disposition"]
    text, pages, images = _pdf_text(pdf.content)
    assert "Algebra final" in text
    assert "Barack Obama" in text and "Joe Biden" in text
    assert "Risk score" in text and "30 / 100" in text  # the dismissed tab_hidden adds nothing
    assert "multiple faces" in text and "confirmed" in text and "dismissed" in text  # words, not codes
    assert "No events were recorded." in text  # Biden's page
    assert pages == 3 and images == 1  # the summary, then one page per session
    assert AuditEntry.objects.filter(action="report_export", actor=reviewer, details__format="pdf").exists()


@pytest.mark.django_db
def test_it_still_prints_once_evidence_is_purged(flagged_session, tmp_path):
    event = flagged_session.events.get(type="multiple_faces")
    event.evidence.delete(
        save=False
    )  # the file is gone but the row still names it, as after a crash mid-purge
    out = tmp_path / "report.pdf"
    call_command(
        "export_report",
        str(flagged_session.exam.code),
        "--format",
        "pdf",
        "--output",
        str(out),
        stderr=io.StringIO(),
    )
    text, _, images = _pdf_text(out.read_bytes())
    assert "multiple faces" in text and images == 0


@pytest.mark.django_db
def test_it_refuses_a_pdf_on_stdout_and_unknown_formats(flagged_session, reviewer):
    with pytest.raises(CommandError, match="--output"):
        call_command("export_report", str(flagged_session.exam.code), "--format", "pdf", stdout=io.StringIO())
    client = Client()
    client.force_login(reviewer)
    assert client.get(f"/review/exams/{flagged_session.exam.code}/export.docx").status_code == 404
    assert not AuditEntry.objects.filter(action="report_export").exists()


@pytest.mark.django_db
def test_it_opens_with_a_summary_and_prints_the_reviewers_decisions_and_notes(
    flagged_session, reviewer, second_reviewer, exam
):
    _candidate(exam, "Joe Biden", "joe@example.org")
    client = Client()
    client.force_login(reviewer)
    event = flagged_session.events.get(type="multiple_faces")
    client.post(
        f"/review/events/{event.public_id}/decide", {"decision": "confirm", "note": "Two faces, clearly"}
    )
    client.post(
        f"/review/sessions/{flagged_session.public_id}/decide",
        {"outcome": "violation", "note": "A second person helps at 10:02"},
    )
    assert ReviewDecision.objects.count() == 2

    reader = PdfReader(io.BytesIO(client.get(f"/review/exams/{exam.code}/export.pdf").content))
    summary = reader.pages[0].extract_text()
    cells = [line.strip() for line in summary.splitlines()]  # a table cell per line

    def row(first: str) -> list[str]:
        return cells[cells.index(first) : cells.index(first) + 5]

    assert "Summary" in cells
    assert row("Candidate") == ["Candidate", "State", "Risk", "Flags (high)", "Decision"]
    assert row("Barack Obama") == ["Barack Obama", "Submitted", "30", "1 (1)", "Awaiting second reviewer"]
    assert row("Joe Biden") == ["Joe Biden", "Invited", "0", "0 (0)", "Not finished"]

    obama = " ".join(line.strip() for line in reader.pages[1].extract_text().splitlines())
    assert "Reviewers' decisions When Reviewer Decision On Note" in obama
    assert "reviewer Confirm multiple faces at" in obama and "Two faces, clearly" in obama
    assert "reviewer Violation the session A second person helps at 10:02" in obama
    assert "Decision state: Awaiting second reviewer" in obama
    assert "No reviewer has decided anything yet." in reader.pages[2].extract_text()


def _solid_jpeg(shade: int) -> bytes:
    """A small picture of one grey ``shade``: each event's frame is told apart by it."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (shade, shade, shade)).save(out, "JPEG", quality=95)
    return out.getvalue()


def _with_frame(session, event_type: str, review_status: str, minute: int) -> Event:
    at = session.started_at + timezone.timedelta(minutes=minute)
    event = Event.objects.create(
        session=session,
        type=event_type,
        key=f"{event_type}-{minute}",
        severity="high",
        started_at=at,
        ended_at=at,
        is_open=False,
        review_status=review_status,
    )
    event.evidence.save("frame.jpg", ContentFile(_solid_jpeg(10 * minute)))
    return event


def _printed_shades(reader: PdfReader) -> set[int]:
    shades = set()
    for page in reader.pages:
        for picture in page.images:
            shades.add(round(picture.image.convert("L").getpixel((32, 24)) / 10))
    return shades


@pytest.mark.django_db
def test_it_prints_confirmed_evidence_first_then_unreviewed_and_leaves_out_dismissed(candidate):
    from exams.reports import report_render
    from exams.reports.pdf import EVIDENCE_PER_SESSION

    session = candidate.session
    advance(session, "consented", "verified", "in_progress", "submitted")
    _with_frame(session, "multiple_faces", "dismissed", 0)  # the first in time
    for minute in range(1, 9):  # eight nobody has decided yet
        _with_frame(session, "no_face", "pending", minute)
    _with_frame(session, "prohibited_object", "confirmed", 20)  # the last two in time
    _with_frame(session, "prohibited_object", "confirmed", 21)
    assert EVIDENCE_PER_SESSION == 6

    reader = PdfReader(io.BytesIO(report_render(session.exam, "pdf")))
    # The two confirmed, then the first four unreviewed in time; not the dismissed one.
    assert _printed_shades(reader) == {20, 21, 1, 2, 3, 4}
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages[1:])
    evidence = text[text.index("Evidence frames") :]
    statuses = re.findall(r", (confirmed by a reviewer|not reviewed yet)", evidence)  # a caption ends so
    assert statuses == ["confirmed by a reviewer"] * 2 + ["not reviewed yet"] * 4, "in print order"
    # Every frame not printed is accounted for, truthfully: all are on the review page.
    assert "4 more evidence frame(s) of confirmed or unreviewed events are on the review page." in evidence
    assert "1 frame(s) of events a reviewer dismissed are not printed" in evidence
