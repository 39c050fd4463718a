"""Issue 17 in Chromium, where people read it: every time in the reader's own
time zone with the zone named, in one format per kind; one deadline on the
candidate's page that moves everywhere at once with extra time; and words, not
codes, on the reviewer's workbench and the proctor's grid."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.conftest import advance
from tests.e2e.conftest import wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

# The candidate sits in New York, the proctor in Berlin, the server keeps UTC.
CANDIDATE_ZONE = {"timezone_id": "America/New_York", "locale": "en-US"}
PROCTOR_ZONE = {"timezone_id": "Europe/Berlin", "locale": "en-GB"}


def _time(at: datetime, zone: str, name: str) -> str:
    """static/js/clock.js's "time" kind, as the test expects it."""
    return f"{at.astimezone(ZoneInfo(zone)):%H:%M:%S} {name}"


def _datetime(at: datetime, zone: str, name: str) -> str:
    local = at.astimezone(ZoneInfo(zone))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {name}"


def test_every_time_is_in_the_readers_zone_and_the_deadline_moves_everywhere(
    browsers, clips, candidate, proctor
):
    from exams import services
    from exams.models import ExamSession

    exam = candidate.exam
    browser = browsers.launch(clips["alone"])
    take = browsers.context(browser, **CANDIDATE_ZONE).new_page()

    # Consent: the exam's window, in New York time, named (EST in December).
    take.goto(candidate.link_path())
    window = take.locator("p.window time")
    expect(window.first).to_have_text(_datetime(exam.opens_at, "America/New_York", "EST"))
    expect(window.last).to_have_text(_datetime(exam.closes_at, "America/New_York", "EST"))
    expect(take.locator("label.check")).to_contain_text(re.compile(r"policy version \d{4}-\d\d-\d\d\)"))

    # The exam page: the "Your exam ends at" line is the deadline, in the candidate's zone.
    session = candidate.session
    advance(session, "consented", "verified", "in_progress")
    services.proctor_act(session=session, actor=proctor, action="message", text="Good luck.")
    take.goto(f"{candidate.link_path()}exam/")
    expect(take.locator("#conn")).to_have_text("Connected")
    deadline = ExamSession.objects.get(pk=session.pk).deadline
    ends = take.locator("#deadline-at")
    expect(ends).to_have_text(_time(deadline, "America/New_York", "EST"))
    message = ExamSession.objects.get(pk=session.pk).messages.get()
    expect(take.locator("#chat-log time")).to_have_text(_time(message.created_at, "America/New_York", "EST"))

    # The proctor in Berlin sees the same moments in Berlin time (en-GB names it CET).
    staff = browsers.login(browser, "proctor", **PROCTOR_ZONE)
    staff.goto(f"/proctor/sessions/{session.public_id}/")
    wait_for_js(staff, "document.getElementById('proctor-session').dataset.live === '1'")
    expect(staff.locator("#session-deadline")).to_have_text(_time(deadline, "Europe/Berlin", "CET"))
    expect(staff.locator("#chat-log time")).to_have_text(_time(message.created_at, "Europe/Berlin", "CET"))

    # Extra time: the notice, the line and the proctor's page all say the new end.
    staff.get_by_label("Extra time (minutes)").fill("15")
    staff.get_by_role("button", name="Give extra time").click()
    later = deadline + timedelta(minutes=15)
    assert ExamSession.objects.get(pk=session.pk).deadline == later
    new_end = _time(later, "America/New_York", "EST")
    expect(take.locator("#notice")).to_have_text(f"Your time was extended: the exam now ends at {new_end}.")
    expect(ends).to_have_text(new_end)
    expect(take.locator("#timer")).to_have_text(re.compile(r"^\d+:\d\d:\d\d$|^\d+:\d\d$"))
    expect(staff.locator("#session-deadline")).to_have_text(_time(later, "Europe/Berlin", "CET"))

    # A message the candidate sends shows one format on both sides.
    take.locator("#chat-text").fill("My camera froze.")
    take.locator("#chat-send").click()
    staff_line = staff.locator("#chat-log li", has_text="My camera froze.")
    expect(staff_line).to_be_visible()
    sent = ExamSession.objects.get(pk=session.pk).messages.get(text="My camera froze.").created_at
    line = take.locator("#chat-log li", has_text="My camera froze.")
    expect(line.locator("time")).to_have_text(_time(sent, "America/New_York", "EST"))
    expect(staff_line.locator("time")).to_have_text(_time(sent, "Europe/Berlin", "CET"))
    assert not browsers.errors, browsers.errors


def test_reviewers_and_proctors_read_words_not_codes(browsers, clips, exam, candidate, proctor, reviewer):
    from detection.core import EVENT_TYPES
    from exams.models import Event, VerificationStatus

    codes = {t for t in EVENT_TYPES if "_" in t} | {v for v in VerificationStatus.values if "_" in v}
    code = re.compile("|".join(rf"\b{c}\b" for c in sorted(codes)) + r"|Proctor proctor")
    exam.reviewers.add(reviewer)
    session = candidate.session
    advance(session, "consented", "verified", "in_progress")
    from exams import services

    services.proctor_act(session=session, actor=proctor, action="warn", text="Face the camera.")
    start = timezone.now() - timedelta(minutes=30)
    for n, event_type in enumerate(["camera_blocked"] * 7 + ["copy_paste", "connection_lost"]):
        at = start + timedelta(minutes=n)
        Event.objects.create(
            session=session,
            type=event_type,
            key=f"{event_type}-{n}",
            severity="high" if event_type == "camera_blocked" else "medium",
            started_at=at,
            ended_at=at + timedelta(seconds=20),
            is_open=event_type == "copy_paste",
        )
    session.verification_status = VerificationStatus.CAPTURED_REFERENCE
    session.save(update_fields=["verification_status"])

    # The grid: the open flag's badge and the feed say it in words.
    browser = browsers.launch(clips["alone"])
    grid = browsers.login(browser, "proctor")
    grid.goto(f"/proctor/exams/{exam.code}/live")
    expect(grid.locator("#live-status")).to_have_text("live")
    expect(grid.locator(f"#tile-{session.public_id} .badges")).to_contain_text("copy or paste")
    expect(grid.locator("#feed")).to_contain_text("camera blocked")
    grid_text = grid.locator("main").inner_text()
    assert not code.search(grid_text), code.search(grid_text).group()

    # The workbench, once the session is submitted.
    advance(session, "submitted")
    page = browsers.login(browser, "reviewer")
    page.goto(f"/review/sessions/{session.public_id}/")
    expect(page.locator("#workbench")).to_have_attribute("data-ready", "1")
    expect(page.locator("#risk-lines")).to_contain_text("7 × camera blocked (high")
    expect(page.locator("dl.facts")).to_contain_text("Reference captured (unverified)")
    expect(page.locator("#chat-log")).to_contain_text("Proctor (warning)")
    card = page.locator("li.event", has_text="copy or paste")
    card.get_by_role("button", name="Confirm").click()
    expect(page.locator("#workbench-status")).to_have_text("copy or paste: confirmed.")
    expect(page.locator("#decisions")).to_contain_text("just now, you: Confirm copy or paste")
    text = page.locator("main").inner_text()
    assert not code.search(text), code.search(text).group()
    assert not browsers.errors, browsers.errors
