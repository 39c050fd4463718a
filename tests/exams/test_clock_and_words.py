"""Issue 17, items 1 and 2: one clock for every time a person reads, and words,
not codes, wherever a person reads (pages, risk explanation, PDF, CSV header);
the codes stay in the JSON export."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.template import Context, Template
from django.test import Client
from django.utils import timezone
from pypdf import PdfReader

from detection.core import EVENT_TYPES
from exams import reports, services
from exams.clock import DATETIME, clock_text
from exams.models import Event, ExamSession, ReviewDecision, VerificationStatus
from exams.risk import risk_of
from tests.conftest import advance

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 12, 4, 2, 12, 7, tzinfo=UTC)

# Every code a person must never read: event types, verification statuses, and
# the doubled speaker label of a proctor whose user name is "proctor".
CODES = sorted({t for t in EVENT_TYPES if "_" in t} | {v for v in VerificationStatus.values if "_" in v}) + [
    "Proctor proctor"
]
CODE = re.compile("|".join(rf"\b{re.escape(code)}\b" for code in CODES))


class _ReadableText(HTMLParser):
    """What a person reads on a page: its text, and the alt and title texts, not
    the markup's classes, ids, data-* attributes or scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        self.parts += [value for name, value in attrs if name in ("alt", "title", "aria-label") and value]

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def readable(html: str) -> str:
    parser = _ReadableText()
    parser.feed(html)
    return " ".join(parser.parts)


# ---------------------------------------------------------------- one clock


def test_it_writes_each_kind_of_time_one_way_with_its_zone():
    assert clock_text(AT) == "02:12:07 UTC"
    assert clock_text(AT, DATETIME) == "Fri 4 Dec 2026, 02:12 UTC"
    with timezone.override(ZoneInfo("Europe/Berlin")):
        assert clock_text(AT) == "03:12:07 CET"
        assert clock_text(AT, DATETIME) == "Fri 4 Dec 2026, 03:12 CET"
    assert clock_text(None) == ""
    with pytest.raises(ValueError):
        clock_text(AT, "H:i")


def test_it_renders_a_time_element_that_the_script_rewrites_in_the_readers_zone():
    template = Template('{% load clock %}{% clock at %}|{% clock at "datetime" id="x" %}|{% clock none %}')
    assert template.render(Context({"at": AT, "none": None})) == (
        '<time datetime="2026-12-04T02:12:07+00:00" data-clock="time">02:12:07 UTC</time>|'
        '<time datetime="2026-12-04T02:12:07+00:00" data-clock="datetime" id="x">'
        "Fri 4 Dec 2026, 02:12 UTC</time>|—"
    )
    # The live payloads carry ISO 8601 text; the tag reads it too.
    iso = Template("{% load clock %}{% clock at %}").render(Context({"at": AT.isoformat()}))
    assert iso.endswith(">02:12:07 UTC</time>")


def test_no_template_or_script_formats_a_time_by_itself():
    """Times go through {% clock %} / |clock_text and static/js/clock.js only."""
    own_format = re.compile(r"""\|(date|time):(?!\s*['"]c['"])""")
    for path in sorted((ROOT / "templates").rglob("*")):
        if path.suffix in (".html", ".txt"):
            assert not own_format.search(path.read_text()), f"{path.relative_to(ROOT)} formats a time itself"
    local = re.compile(r"toLocale(Time|Date)?String|Intl\.DateTimeFormat|getHours\(")
    for path in sorted((ROOT / "static" / "js").glob("*.js")):
        if path.name != "clock.js":
            assert not local.search(path.read_text()), f"{path.name} formats a time itself; use clock.js"
    for path in (ROOT / "exams" / "reports").glob("*.py"):
        assert "strftime" not in path.read_text(), path.name


def test_the_policy_version_is_a_proper_date():
    assert date.fromisoformat(settings.CONSENT_POLICY_VERSION).isoformat() == settings.CONSENT_POLICY_VERSION


@pytest.mark.django_db
def test_the_candidate_pages_name_the_zone_of_every_time(candidate):
    client = Client()
    consent = client.get(f"/take/{candidate.token}/").content.decode()
    assert f"(policy version {settings.CONSENT_POLICY_VERSION})" in consent
    window = clock_text(candidate.exam.opens_at, DATETIME)
    assert f'data-clock="datetime">{window}</time>' in consent and window.endswith(" UTC")
    declined = client.post(f"/take/{candidate.token}/decline").content.decode()
    assert f'data-clock="datetime">{clock_text(candidate.exam.closes_at, DATETIME)}</time>' in declined

    session = ExamSession.objects.get(pk=candidate.session.pk)
    advance(session, "consented", "verified", "in_progress")
    exam_page = client.get(f"/take/{candidate.token}/exam/").content.decode()
    assert (
        f'Your exam ends at <time datetime="{session.deadline.isoformat()}" data-clock="time"'
        f' id="deadline-at">{clock_text(session.deadline)}</time>'
    ) in exam_page


# ---------------------------------------------------------------- words, not codes


def test_the_event_labels_are_the_fields_choices():
    choices = dict(Event._meta.get_field("type").choices)
    assert set(choices) == set(EVENT_TYPES)
    assert all("_" not in label for label in choices.values())
    assert Event(type="copy_paste").get_type_display() == Event.label_of("copy_paste") == "copy or paste"


def test_it_names_a_proctor_once_on_staff_pages(live_session, proctor, other_proctor):
    services.proctor_act(session=live_session, actor=proctor, action="warn", text="Face the camera.")
    services.proctor_act(session=live_session, actor=other_proctor, action="message", text="Thanks.")
    warning, message = live_session.messages.order_by("pk")
    assert warning.speaker == "Proctor (warning)"
    assert message.speaker == f"Proctor {other_proctor.get_username()}"


def _reviewed_session(candidate, proctor, reviewer):
    """A submitted session with 7 × camera_blocked, copy_paste, connection_lost and
    tab_hidden, a captured reference, a proctor's warning and a reviewer's decision."""
    session = candidate.session
    advance(session, "consented", "verified", "in_progress")
    services.proctor_act(session=session, actor=proctor, action="warn", text="Face the camera.")
    session.refresh_from_db()
    advance(session, "submitted")
    start = timezone.now() - timedelta(minutes=40)
    session.started_at, session.finished_at = start, timezone.now()
    session.verification_status = VerificationStatus.CAPTURED_REFERENCE
    session.save(update_fields=["started_at", "finished_at", "verification_status"])
    events = []
    for n, event_type in enumerate(["camera_blocked"] * 7 + ["copy_paste", "connection_lost", "tab_hidden"]):
        at = start + timedelta(minutes=n + 1)
        events.append(
            Event.objects.create(
                session=session,
                type=event_type,
                key=f"{event_type}-{n}",
                severity="high" if event_type == "camera_blocked" else "medium",
                started_at=at,
                ended_at=at + timedelta(seconds=20),
                is_open=False,
                details={"count": 2} if event_type == "copy_paste" else {},
            )
        )
    ReviewDecision.objects.create(
        session=session, event=events[7], reviewer=reviewer, decision=ReviewDecision.Decision.CONFIRM
    )
    return session


@pytest.mark.django_db
def test_people_read_words_and_exports_keep_codes(candidate, proctor, reviewer):
    candidate.exam.reviewers.add(reviewer)
    session = _reviewed_session(candidate, proctor, reviewer)

    risk = risk_of(session.events.all())
    assert any(line.reason.startswith("7 × camera blocked (high") for line in risk.lines)
    assert not CODE.search(" ".join(line.reason for line in risk.lines))

    staff = Client()
    staff.force_login(reviewer)
    pages = {
        "review session": staff.get(f"/review/sessions/{session.public_id}/"),
        "review exam": staff.get(f"/review/exams/{session.exam.code}"),
        "review index": staff.get("/review/"),
    }
    proctor_client = Client()
    proctor_client.force_login(proctor)
    pages["proctor session"] = proctor_client.get(f"/proctor/sessions/{session.public_id}/")
    for name, response in pages.items():
        assert response.status_code == 200, name
        text = readable(response.content.decode())
        assert not CODE.search(text), f"{name} shows {CODE.search(text).group()!r}"
    review_text = readable(pages["review session"].content.decode())
    for words in ("camera blocked", "copy or paste", "connection lost", "Reference captured (unverified)"):
        assert words in review_text

    pdf = "\n".join(
        page.extract_text()
        for page in PdfReader(io.BytesIO(reports.report_render(session.exam, "pdf"))).pages
    )
    pdf_flat = " ".join(pdf.split())
    assert not CODE.search(pdf_flat), f"the PDF shows {CODE.search(pdf_flat).group()!r}"
    assert "camera blocked" in pdf_flat and "Reference captured (unverified)" in pdf_flat
    assert "Confirm" in pdf_flat and " UTC" in pdf_flat

    csv_header = reports.report_csv(session.exam).splitlines()[0]
    assert not re.search(r"\w_\w", csv_header), csv_header
    assert "Event started at (UTC)" in csv_header

    exported = json.loads(reports.report_json(session.exam))["sessions"][0]
    assert {e["type"] for e in exported["events"]} == {
        "camera_blocked",
        "copy_paste",
        "connection_lost",
        "tab_hidden",
    }
    assert exported["decisions"][0]["decision"] == "confirm"
