"""The product end to end, in Chromium: candidate, proctor and reviewer pages
against daphne, PostgreSQL, Redis and a real Celery worker.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import advance
from tests.e2e.conftest import PHONE, SCREENSHOTS, wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

ALERT_TIMEOUT_MS = 60_000


def _image_loaded(page: Page, selector: str, timeout: float = 20_000) -> None:
    wait_for_js(
        page,
        "(sel) => { const img = document.querySelector(sel); "
        "return !!img && img.complete && img.naturalWidth > 0; }",
        selector,
        timeout=timeout,
    )


def test_it_flags_a_second_person_live_and_the_reviewer_confirms_it(
    browsers, clips, celery_worker_process, exam, candidate, proctor, reviewer
):
    """A candidate proves who they are, then someone sits down beside them.

    Why this scene: identity verification needs exactly one face, and a
    Chromium process has one fake camera file. But Chromium restarts the file
    every time a page opens the camera, so one clip serves both pages: the
    candidate alone for 5 s (the verification picture is taken in the first
    second after the camera starts) and then a second person beside them for
    10 s, in a loop. So the real verification passes on the candidate's own
    face against the roster encoding of obama.jpg, and the exam page streams a
    scene that turns into two faces a few seconds in: ``multiple_faces``. The
    other option, a stranger's face failing verification three times, tests
    the retry path but starts the exam already flagged, so the live alert
    would prove less.
    """
    from exams.models import AuditEntry, Event, ExamSession, ReviewDecision

    exam.frame_interval = 1.0
    exam.save(update_fields=["frame_interval"])
    session = candidate.session

    staff_browser = browsers.launch(clips["alone"])  # staff pages never open the camera
    grid = browsers.login(staff_browser, "proctor")
    grid.goto(f"/proctor/exams/{exam.code}/live")
    expect(grid.locator("#live-status")).to_have_text("live")
    tile = grid.locator(f"#tile-{session.public_id}")
    expect(tile.locator(".name")).to_have_text("Barack Obama")
    expect(tile.locator(".state")).to_have_text("Invited")

    # The candidate: consent.
    camera_browser = browsers.launch(clips["joined"])
    take = browsers.context(camera_browser).new_page()
    take.goto(candidate.link_path())
    consent = take.locator("section.card")
    expect(consent.get_by_role("heading", name="What is recorded")).to_be_visible()
    expect(consent).to_contain_text("one still picture every 1 second while")
    expect(consent.get_by_role("heading", name="Who sees it")).to_be_visible()
    expect(consent).to_contain_text("The proctors assigned to this exam")
    expect(consent.get_by_role("heading", name="How long it is kept")).to_be_visible()
    expect(consent).to_contain_text(f"deleted {exam.retention_days} days after the exam closes")
    take.get_by_label(re.compile("I have read this and agree")).check()
    take.get_by_role("button", name="Agree and continue").click()

    # Camera check against the roster photo.
    take.wait_for_url(f"**{candidate.link_path()}verify/")
    expect(take.locator("#verify-status")).to_contain_text("Camera ready")
    wait_for_js(take, "document.getElementById('preview').videoWidth > 0")
    take.get_by_role("button", name="Take picture and check").click()
    # The success text shows for 0.8 s before the page moves on: poll often.
    wait_for_js(
        take,
        "document.getElementById('verify-status').textContent === 'Identity confirmed.'",
        timeout=30_000,
        every_ms=20,
    )

    # The exam page streams.
    take.wait_for_url(f"**{candidate.link_path()}exam/")
    expect(take.locator("#rec")).to_have_text("● You are being proctored")
    expect(take.locator("#conn")).to_have_text("Connected")
    session.refresh_from_db()
    assert session.state == ExamSession.State.IN_PROGRESS
    assert session.verification_status == "matched"
    assert session.verification_distance < exam.check_config().identity_threshold

    # The proctor sees it live, without reloading.
    expect(tile.locator(".state")).to_have_text("In progress")
    _image_loaded(grid, f"#tile-{session.public_id} img")  # a real picture, not the 204 of "none yet"
    alert = grid.locator("#feed li[data-type=multiple_faces]").first
    expect(alert).to_be_visible(timeout=ALERT_TIMEOUT_MS)
    expect(alert).to_contain_text("Barack Obama")
    expect(tile.locator(".badges")).to_contain_text("multiple faces")
    # Thumbnails are pushed every few seconds: show the picture that raised the alert.
    thumb = f"#tile-{session.public_id} img"
    wait_for_js(
        grid,
        "([sel, before]) => { const img = document.querySelector(sel); "
        "return img.src !== before && img.naturalWidth > 0; }",
        [thumb, grid.locator(thumb).get_attribute("src")],
        timeout=10_000,
    )
    grid.screenshot(path=SCREENSHOTS / "live-grid.png")
    grid.set_viewport_size(PHONE)
    grid.screenshot(path=SCREENSHOTS / "live-grid-phone.png", full_page=True)

    # A browser sending one picture per interval is never told off.
    expect(take.locator("#notice")).to_be_hidden()
    assert not AuditEntry.objects.filter(session=session, action="bad_message").exists()

    # The candidate explains; the proctor reads it live in the feed and on the
    # candidate's own page, and answers.
    detail = grid.context.new_page()
    detail.goto(f"/proctor/sessions/{session.public_id}/")
    expect(detail.locator("#proctor-session")).to_have_attribute("data-live", "1")
    take.get_by_label("Message to the proctor").fill("My brother walked in, he is leaving.")
    take.get_by_role("button", name="Send", exact=True).click()
    expect(take.locator("#chat-log li.chat-candidate")).to_contain_text(
        "My brother walked in, he is leaving."
    )
    expect(take.get_by_label("Message to the proctor")).to_have_value("")
    expect(grid.locator("#feed li.chat").first).to_contain_text("Barack Obama")
    expect(grid.locator("#feed li.chat").first).to_contain_text("My brother walked in, he is leaving.")
    expect(detail.locator("#chat-log li.chat-candidate")).to_contain_text(
        "My brother walked in, he is leaving."
    )
    detail.get_by_label("Message to the candidate").fill("Thanks for telling us. Carry on.")
    detail.get_by_role("button", name="Send message").click()
    expect(take.locator("#chat-log li.chat-proctor")).to_contain_text("Thanks for telling us. Carry on.")
    expect(take.locator("#notice")).to_have_text("Proctor: Thanks for telling us. Carry on.")
    expect(detail.locator("#chat-log li")).to_have_count(2)
    detail.close()
    take.screenshot(path=SCREENSHOTS / "exam.png", full_page=True)

    # The candidate finishes.
    take.get_by_role("button", name="Finish exam").click()
    take.get_by_role("button", name="Yes, finish").click()
    take.wait_for_url(f"**{candidate.link_path()}done/")
    expect(take.get_by_role("heading", name="You have finished")).to_be_visible()
    expect(tile.locator(".state")).to_have_text("Submitted")

    session.refresh_from_db()
    assert session.state == ExamSession.State.SUBMITTED
    assert session.frames_analysed >= 3
    flagged = list(Event.objects.filter(session=session, type="multiple_faces"))
    assert flagged, list(Event.objects.filter(session=session).values_list("type", flat=True))
    for event in flagged:
        assert not event.is_open
        assert event.details == {"faces": 2}
        assert event.evidence.open("rb").read(3) == b"\xff\xd8\xff"
    # The second person may also count as a prohibited "person" object. Nothing
    # else was flagged: the candidate alone raised nothing, and finishing the
    # exam is not a lost connection.
    others = Event.objects.filter(session=session).exclude(type="multiple_faces")
    assert [
        (e.type, e.details.get("label"))
        for e in others
        if (e.type, e.details.get("label")) != ("prohibited_object", "person")
    ] == []
    assert AuditEntry.objects.filter(session=session, action="exam_submit").count() == 1

    # The reviewer goes through the report.
    report = browsers.login(staff_browser, "reviewer")
    report.goto(f"/review/exams/{exam.code}")
    row = report.get_by_role("row", name=re.compile("Barack Obama"))
    expect(row).to_contain_text("Submitted")
    row.get_by_role("link", name="Report").click()
    report.wait_for_url(f"**/review/sessions/{session.public_id}/")
    expect(report.get_by_role("heading", level=1)).to_contain_text("Barack Obama")
    expect(report.locator(".facts")).to_contain_text("Matched (distance")  # the status in words
    expect(report.locator(".chat-log")).to_contain_text("My brother walked in, he is leaving.")
    first = flagged[0]
    item = report.locator(f"#event-{first.public_id}")
    expect(item.locator(".etype")).to_have_text("multiple faces")
    expect(item.locator(".pill.sev-high")).to_have_text("high")
    item.locator("details.evidence-box").evaluate("(d) => { d.open = true; }")  # opened on demand
    item.locator("img.evidence").first.scroll_into_view_if_needed()
    _image_loaded(report, f"#event-{first.public_id} img.evidence")
    item.get_by_role("button", name="Confirm").click()
    item = report.locator(f"#event-{first.public_id}")
    expect(item.locator(".pill.review-confirmed")).to_have_text("confirmed")
    first.refresh_from_db()
    assert first.review_status == Event.Review.CONFIRMED
    assert ReviewDecision.objects.filter(event=first, reviewer=reviewer, decision="confirm").count() == 1

    report.evaluate("window.scrollTo(0, 0)")
    report.evaluate("document.querySelectorAll('details.evidence-box').forEach((d) => { d.open = true; })")
    for img in report.locator("img.evidence").all():
        img.scroll_into_view_if_needed()
    report.evaluate("window.scrollTo(0, 0)")
    report.screenshot(path=SCREENSHOTS / "report.png", full_page=True)
    report.set_viewport_size(PHONE)
    report.screenshot(path=SCREENSHOTS / "report-phone.png", full_page=True)

    assert browsers.errors == []


def test_it_refuses_a_second_tab_on_the_same_link(browsers, clips, celery_worker_process, candidate):
    from exams.models import AuditEntry, Event

    session = candidate.session
    advance(session, "consented", "verified")

    context = browsers.context(browsers.launch(clips["alone"]))
    first = context.new_page()
    first.goto(candidate.link_path())
    first.wait_for_url(f"**{candidate.link_path()}exam/")
    expect(first.locator("#conn")).to_have_text("Connected")

    second = context.new_page()
    second.goto(candidate.link_path())
    expect(second.locator("#notice")).to_have_text(re.compile("open in another tab or on another device"))
    expect(second.locator("#conn")).to_have_text(re.compile("Waiting for the other tab"))

    expect(first.locator("#conn")).to_have_text("Connected")
    expect(first.locator("#notice")).to_be_hidden()
    # The second page is not left dead: it keeps trying, and once the first tab
    # is closed it takes over by itself (its retries wait up to 15 s).
    first.close()
    expect(second.locator("#conn")).to_have_text("Connected", timeout=30_000)
    expect(second.locator("#notice")).to_be_hidden()
    assert not AuditEntry.objects.filter(session=session, action="bad_message").exists()
    duplicates = Event.objects.filter(session=session, type="duplicate_session")
    assert duplicates.count() == 1
    assert duplicates.get().severity == "high"
    assert AuditEntry.objects.filter(session=session, action="duplicate_session_refused").count() == 1
    assert browsers.errors == []
