"""The reviewer's workbench in Chromium against daphne and PostgreSQL: the
timeline strip, the clip beside the reference photo, decisions by keyboard
without a reload, a bulk dismissal, and on to the next session in the queue."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import expect

from tests.conftest import _candidate, advance, photo_bytes
from tests.detection.detection_photos import jpeg, side_by_side, webcam_photo
from tests.e2e.conftest import PHONE, SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _finished_session(candidate, *, minutes: int = 40):
    from django.utils import timezone

    session = candidate.session
    advance(session, "consented", "verified", "in_progress", "submitted")
    now = timezone.now()
    session.started_at = now - timedelta(minutes=minutes)
    session.finished_at = now
    session.save(update_fields=["started_at", "finished_at"])
    return session


def _event(session, event_type: str, severity: str, *, at_minute: float, seconds: float, clip=None):
    from exams.models import Event, EventFrame

    start = session.started_at + timedelta(minutes=at_minute)
    event = Event.objects.create(
        session=session,
        type=event_type,
        key=f"{event_type}-{at_minute}",
        severity=severity,
        started_at=start,
        ended_at=start + timedelta(seconds=seconds),
        confidence=1.0,
        is_open=False,
    )
    for n, picture in enumerate(clip or []):
        frame = EventFrame(event=event, taken_at=start + timedelta(seconds=2 * (n - 3)))
        frame.image.save(f"clip{n}.jpg", ContentFile(picture), save=False)
        frame.save()
    if clip:
        event.evidence.save("evidence.jpg", ContentFile(clip[3]))
    return event


def test_a_reviewer_works_through_the_queue_by_keyboard(
    browsers, clips, exam, candidate, reviewer, second_reviewer
):
    from exams.models import AuditEntry, Event, ReviewDecision

    exam.reviewers.add(reviewer, second_reviewer)
    alone = jpeg(webcam_photo("obama.jpg"), quality=70)
    two = jpeg(side_by_side(webcam_photo("obama.jpg"), webcam_photo("biden.jpg"), height=480), quality=70)
    candidate.reference_photo.save("obama.jpg", ContentFile(photo_bytes("obama.jpg")))
    obama = _finished_session(candidate)
    faces = _event(obama, "multiple_faces", "high", at_minute=12, seconds=40, clip=[alone] * 3 + [two] * 4)
    hidden = [_event(obama, "tab_hidden", "medium", at_minute=m, seconds=25) for m in (5, 21, 33)]
    _event(obama, "looking_away", "low", at_minute=26, seconds=90)
    biden = _finished_session(_candidate(exam, "Joe Biden", "joe@example.org"))
    _event(biden, "tab_hidden", "medium", at_minute=8, seconds=10)

    page = browsers.login(browsers.launch(clips["alone"]), "reviewer")
    page.emulate_media(reduced_motion="reduce")  # no smooth scrolling under the screenshot
    page.goto("/review/")
    queue = page.locator(".queue")
    expect(queue.get_by_role("row")).to_have_count(3)  # the header and both sessions
    expect(queue.get_by_role("row").nth(1)).to_contain_text("Barack Obama")  # highest risk first
    expect(queue.get_by_role("row").nth(1)).to_contain_text("Awaiting review")
    page.get_by_role("link", name="Start with the highest risk").click()
    page.wait_for_url(f"**/review/sessions/{obama.public_id}/")
    expect(page.locator("#workbench")).to_have_attribute("data-ready", "1")
    expect(page.locator("#shortcuts")).to_contain_text("confirm")

    # The strip: one bar per event, placed along the session's 40 minutes.
    bars = page.locator("#strip .bar")
    expect(bars).to_have_count(5)
    strip = page.locator("#strip").bounding_box()
    bar = page.locator(f'#strip .bar[data-event="{faces.public_id}"]').bounding_box()
    assert abs((bar["x"] - strip["x"]) / strip["width"] - 12 / 40) < 0.02
    # Clicking a bar opens that event's evidence: the clip beside the reference photo.
    page.locator(f'#strip .bar[data-event="{faces.public_id}"]').click()
    card = page.locator(f"#event-{faces.public_id}")
    expect(card).to_have_class(re.compile("selected"))
    expect(card.locator("details.evidence-box")).to_have_attribute("open", "")
    expect(card.locator(".clip-frames img")).to_have_count(7)
    expect(card.locator(".clip-play")).to_be_visible()
    expect(card.locator(".reference img")).to_be_visible()
    page.wait_for_function(
        "(id) => [...document.querySelectorAll(`#event-${id} img`)]"
        ".every((i) => i.complete && i.naturalWidth > 0)",
        arg=str(faces.public_id),
    )
    card.locator(".clip-play").click()
    expect(card.locator(".clip-at")).to_contain_text("frame")
    card.locator(".clip-play").click()

    # Decide by keyboard, with no reload: the page keeps a marker set on it.
    page.evaluate("window.__same_page = true")
    page.keyboard.press("c")  # confirm the selected multiple_faces
    expect(card.locator("[data-role=status]")).to_have_text("confirmed")
    first_hidden = page.locator(f"#event-{hidden[1].public_id}")
    expect(first_hidden).to_have_class(re.compile("selected"))  # c moves on to the next event
    page.keyboard.press("k")
    page.keyboard.press("j")
    page.keyboard.press("d")  # dismiss the tab_hidden at minute 21
    expect(first_hidden.locator("[data-role=status]")).to_have_text("dismissed")
    expect(page.locator("#risk-score")).to_have_text("Risk score: 65 / 100")
    # Bulk: every tab_hidden at once.
    bulk = page.locator("form.bulk-form", has_text="left the exam tab")  # tab_hidden, in words
    bulk.get_by_role("button", name="Dismiss all").click()
    expect(page.locator("#workbench-status")).to_have_text("2 event(s) now dismissed.")
    for event in hidden:
        expect(page.locator(f"#event-{event.public_id} [data-role=status]")).to_have_text("dismissed")
    expect(page.locator("#risk-score")).to_have_text("Risk score: 35 / 100")
    # The session: one violation vote of the two needed.
    page.get_by_label("Note").fill("A second person for 40 s at minute 12.")
    page.get_by_role("button", name="Propose violation").click()
    expect(page.locator("#decision-state")).to_have_text("Awaiting second reviewer")
    expect(page.locator("#session-decide")).to_contain_text("Violation proposed by reviewer.")
    expect(page.get_by_role("button", name="Propose violation")).to_have_count(0)
    assert page.evaluate("window.__same_page") is True

    faces.refresh_from_db()
    assert faces.review_status == Event.Review.CONFIRMED
    assert set(
        Event.objects.filter(type="tab_hidden", session=obama).values_list("review_status", flat=True)
    ) == {"dismissed"}
    assert ReviewDecision.objects.filter(
        reviewer=reviewer, session=obama, event=None, decision="violation"
    ).exists()
    assert AuditEntry.objects.filter(actor=reviewer, action="event_dismiss").count() == 3

    expect(page.locator("#risk-lines")).not_to_contain_text("tab_hidden")  # the explanation follows
    # The README's picture: the strip, and the confirmed event's clip beside the reference photo.
    page.locator(f'#strip .bar[data-event="{faces.public_id}"]').click()
    page.evaluate(
        "window.scrollTo(0, document.querySelector('h1').getBoundingClientRect().top + window.scrollY - 8)"
    )
    page.screenshot(path=SCREENSHOTS / "workbench.png")
    page.set_viewport_size(PHONE)
    page.screenshot(path=SCREENSHOTS / "workbench-phone.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 720})

    # n: the next session in my queue; Obama's has left it (I have voted).
    page.keyboard.press("n")
    page.wait_for_url(f"**/review/sessions/{biden.public_id}/")
    page.goto(f"/review/exams/{exam.code}?queue=mine")
    expect(page.get_by_role("row", name=re.compile("Joe Biden"))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Barack Obama"))).to_have_count(0)
    page.goto(f"/review/exams/{exam.code}")
    expect(page.get_by_role("row", name=re.compile("Barack Obama"))).to_contain_text(
        "Awaiting second reviewer"
    )
    if os.environ.get("WORKBENCH_LIST_SHOT"):  # a look at the list while developing
        page.screenshot(path=os.environ["WORKBENCH_LIST_SHOT"], full_page=True)

    assert browsers.errors == []
