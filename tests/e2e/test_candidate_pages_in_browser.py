"""The candidate's safety nets in Chromium: the countdown (server clock, warnings,
extra time), the finish confirmation, the full screen prompt, the verification
give-up notice, the system check, and the styled 404 page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.conftest import advance
from tests.e2e.conftest import PHONE, wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

# The countdown ticks every second (static/js/countdown.js); the verification
# page polls every 0.5 s (static/js/take_verify.js).
TICK_MS = 1_000


def _left_seconds(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def _start_with_time_left(session, left: timedelta) -> datetime:
    """Put the session in progress with ``left`` until its deadline; return the deadline."""
    advance(session, "consented", "verified", "in_progress")
    duration = timedelta(minutes=session.exam.duration_minutes)
    session.started_at = timezone.now() - duration + left
    session.save(update_fields=["started_at"])
    return session.deadline


def _seconds_until(deadline: datetime) -> float:
    return (deadline - timezone.now()).total_seconds()


def test_it_counts_down_on_the_servers_clock_warns_and_follows_extra_time(browsers, clips, candidate):
    from exams import live
    from exams.models import ExamSession

    context = browsers.context(browsers.launch(clips["alone"]))
    # The candidate's computer is two hours fast: without the server's "now"
    # the page would think time was up and submit at once. Playwright's clock
    # also lets the test move the page's time on instead of waiting.
    context.clock.install(time=datetime.now() + timedelta(hours=2))
    session = candidate.session
    deadline = _start_with_time_left(session, timedelta(minutes=5, seconds=30))
    take = context.new_page()
    take.goto(f"{candidate.link_path()}exam/")
    expect(take.locator("#conn")).to_have_text("Connected")
    timer = take.locator("#timer")
    expect(timer).to_have_text(re.compile(r"^5:[0-3]\d$"))
    assert abs(_left_seconds(timer.text_content()) - _seconds_until(deadline)) <= 3
    warning = take.locator("#time-warning")
    expect(warning).to_be_hidden()

    # Forty seconds on: under five minutes, a visible, announced warning, and the timer turns amber.
    take.clock.fast_forward(40 * TICK_MS)
    expect(warning).to_have_text(re.compile("^5 minutes left"))
    expect(warning).to_have_attribute("aria-live", "assertive")
    expect(take.locator("#timer-box")).to_have_class(re.compile("timer-low"))

    # A proctor grants ten minutes: the server pushes the new deadline.
    ExamSession.objects.filter(pk=session.pk).update(extra_minutes=10)
    session.refresh_from_db()
    live.to_candidate(session, {"type": "deadline", "deadline": session.deadline.isoformat()})
    expect(take.locator("#notice")).to_contain_text("Your time was extended")
    expect(timer).to_have_text(re.compile(r"^1[45]:\d\d$"))
    expect(warning).to_be_hidden()
    expect(take.locator("#timer-box")).not_to_have_class(re.compile("timer-low"))
    assert ExamSession.objects.get(pk=session.pk).state == "in_progress"
    assert not browsers.errors, browsers.errors


def test_it_warns_at_one_minute_and_submits_when_time_is_up(browsers, clips, candidate):
    from exams.models import ExamSession

    context = browsers.context(browsers.launch(clips["alone"]))
    context.clock.install(time=datetime.now())
    session = candidate.session
    _start_with_time_left(session, timedelta(minutes=6))
    take = context.new_page()
    take.goto(f"{candidate.link_path()}exam/")
    expect(take.locator("#conn")).to_have_text("Connected")
    warning = take.locator("#time-warning")
    expect(warning).to_be_hidden()
    take.clock.fast_forward(70 * TICK_MS)
    expect(warning).to_have_text(re.compile("^5 minutes left"))
    take.clock.fast_forward(4 * 60 * TICK_MS)
    expect(warning).to_have_text(re.compile("^1 minute left"))
    expect(take.locator("#timer-box")).to_have_class(re.compile("timer-urgent"))
    # At zero the page submits by itself (the server does too, at its own deadline).
    take.clock.fast_forward(60 * TICK_MS)
    take.wait_for_url(f"**{candidate.link_path()}done/")
    assert ExamSession.objects.get(pk=session.pk).state == "submitted"


def test_it_asks_before_finishing(browsers, clips, candidate):
    from exams.models import ExamSession

    session = candidate.session
    _start_with_time_left(session, timedelta(minutes=30))
    take = browsers.context(browsers.launch(clips["alone"])).new_page()
    take.goto(f"{candidate.link_path()}exam/")
    expect(take.locator("#conn")).to_have_text("Connected")

    take.get_by_role("button", name="Finish exam").click()
    dialog = take.get_by_role("dialog", name="Finish the exam now?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(re.compile(r"You still have (29|30):\d\d left"))
    dialog.get_by_role("button", name="Keep working").click()
    expect(dialog).to_be_hidden()
    expect(take.locator("#conn")).to_have_text("Connected")
    assert ExamSession.objects.get(pk=session.pk).state == "in_progress"

    # Escape closes it too; then the candidate really finishes.
    take.get_by_role("button", name="Finish exam").click()
    take.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    take.get_by_role("button", name="Finish exam").click()
    take.set_viewport_size(PHONE)
    expect(dialog.get_by_role("button", name="Yes, finish")).to_be_in_viewport()
    dialog.get_by_role("button", name="Yes, finish").click()
    take.wait_for_url(f"**{candidate.link_path()}done/")
    assert ExamSession.objects.get(pk=session.pk).state == "submitted"
    assert not browsers.errors, browsers.errors


def test_it_asks_for_full_screen_and_again_after_leaving_it(browsers, clips, candidate):
    from exams.models import Event

    exam = candidate.exam
    exam.requires_fullscreen = True
    exam.save(update_fields=["requires_fullscreen"])
    session = candidate.session
    _start_with_time_left(session, timedelta(minutes=30))
    take = browsers.context(browsers.launch(clips["alone"])).new_page()
    take.goto(f"{candidate.link_path()}exam/")
    expect(take.locator("#conn")).to_have_text("Connected")
    prompt = take.get_by_role("dialog", name="Full screen, please")
    expect(prompt).to_be_visible()
    prompt.get_by_role("button", name="Go full screen").click()
    wait_for_js(take, "document.fullscreenElement !== null")
    expect(prompt).to_be_hidden()

    take.evaluate("document.exitFullscreen()")
    expect(prompt).to_be_visible()
    expect(prompt).to_contain_text("You left full screen, and the proctor was told.")
    expect(take.locator("#conn")).to_have_text("Connected")
    # The exit travels as a signal over the socket and is stored as an event:
    # poll the database, at most 10 s.
    reported = Event.objects.filter(session=session, type="fullscreen_exit")
    for _ in range(50):
        if reported.exists():
            break
        take.wait_for_timeout(200)
    assert reported.exists()
    prompt.get_by_role("button", name="Go full screen").click()
    expect(prompt).to_be_hidden()


def test_it_shows_the_verification_give_up_as_a_neutral_notice(browsers, clips, candidate):
    """No worker runs here: the photo waits in the queue while the test writes
    what the worker writes after a third mismatch; the page's poll picks it up."""
    from exams.models import ExamSession, VerificationStatus

    session = candidate.session
    advance(session, "consented")
    take = browsers.context(browsers.launch(clips["alone"])).new_page()
    take.goto(f"{candidate.link_path()}verify/")
    expect(take.locator("#verify-status")).to_contain_text("Camera ready")
    wait_for_js(take, "document.getElementById('preview').videoWidth > 0")
    take.get_by_role("button", name="Take picture and check").click()
    expect(take.locator("#verify-status")).to_have_text("Checking your photo…")
    # The upload marks the attempt pending; write the worker's result only after
    # that, or the pending mark lands on top of it (at most 10 s).
    for _ in range(100):
        session.refresh_from_db()
        if session.verification_status == VerificationStatus.PENDING:
            break
        take.wait_for_timeout(100)
    assert session.verification_status == VerificationStatus.PENDING
    session.verification_status = VerificationStatus.MISMATCH_FLAGGED
    session.verification_message = (
        "Your photo did not match the roster photo. You may continue; a proctor will check your identity."
    )
    session.verify(now=timezone.now())
    session.save()
    status = take.locator("#verify-status")
    expect(status).to_contain_text("You may continue; a proctor will check your identity.")
    expect(status).to_have_class("msg info")
    take.get_by_role("link", name="Continue to the exam").click()
    take.wait_for_url(f"**{candidate.link_path()}exam/")
    assert ExamSession.objects.get(pk=session.pk).state == "in_progress"


def test_it_runs_the_system_check_before_exam_day(browsers, clips, candidate):
    from exams.models import AuditEntry

    exam = candidate.exam
    exam.opens_at = timezone.now() + timedelta(days=3)
    exam.closes_at = exam.opens_at + timedelta(hours=2)
    exam.save()
    take = browsers.context(browsers.launch(clips["alone"])).new_page()
    take.goto(candidate.link_path())
    take.get_by_role("link", name="check your camera, browser and connection").click()
    take.wait_for_url(f"**{candidate.link_path()}check/")
    expect(take.locator("#check-summary")).to_have_text("All checks passed. You are ready for the exam.")
    for line in ("websocket", "camera-api", "fullscreen", "camera", "latency", "upload", "speed"):
        expect(take.locator(f"#check-{line} .result")).to_have_text("Pass")
    expect(take.locator("#check-speed .detail")).to_contain_text("Mbit/s")
    expect(take.locator("#check-upload .detail")).to_contain_text("Mbit/s")
    wait_for_js(take, "document.getElementById('check-preview').videoWidth > 0")
    take.set_viewport_size(PHONE)
    expect(take.get_by_role("button", name="Run the checks again")).to_be_visible()
    candidate.session.refresh_from_db()
    assert candidate.session.state == "invited" and not AuditEntry.objects.exists()
    assert not browsers.errors, browsers.errors


def test_it_shows_a_styled_404_with_a_way_back(browsers, clips, proctor):
    page = browsers.login(browsers.launch(clips["alone"]), "proctor")
    response = page.goto("/no/such/page/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="This page does not exist")).to_be_visible()
    nav = page.locator("nav")
    expect(nav.get_by_role("link", name="Live")).to_be_visible()
    expect(nav.get_by_role("link", name="Review")).to_have_count(0)
    page.get_by_role("link", name="Go to the start page").click()
    page.wait_for_url("**/proctor/")
