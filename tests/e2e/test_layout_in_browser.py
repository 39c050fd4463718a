"""The layout at the two sizes the house style names (1280x720 and a 390x844
phone): what a person must reach is inside the viewport, measured with
bounding boxes, not merely present on the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import _candidate, advance
from tests.e2e.conftest import LAPTOP, PHONE, wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _inside(page, selector: str) -> dict:
    """The element's box; the test fails unless all of it is inside the viewport."""
    box = page.locator(selector).bounding_box()
    viewport = page.viewport_size
    assert box is not None, f"{selector} is not rendered"
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= viewport["width"], (selector, box, viewport)
    assert box["y"] + box["height"] <= viewport["height"], (selector, box, viewport)
    return box


def _pending_then(session, status: str, message: str, page) -> None:
    """No worker runs here: wait until the upload marked the attempt pending, then
    write what the worker writes for a failed check (the page's poll reads it)."""
    from exams.models import VerificationStatus

    for _ in range(100):  # the upload lands well within 10 s
        session.refresh_from_db()
        if session.verification_status == VerificationStatus.PENDING:
            break
        page.wait_for_timeout(100)
    assert session.verification_status == VerificationStatus.PENDING
    session.verification_status = status
    session.verification_message = message
    session.verification_attempts += 1
    session.save()


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_it_keeps_the_verification_button_in_view_before_and_after_an_error(
    browsers, clips, candidate, viewport
):
    from exams.models import VerificationStatus

    session = candidate.session
    advance(session, "consented")
    take = browsers.context(browsers.launch(clips["alone"]), viewport).new_page()
    take.goto(f"{candidate.link_path()}verify/")
    expect(take.locator("#verify-status")).to_contain_text("Camera ready")
    wait_for_js(take, "document.getElementById('preview').videoWidth > 0")
    assert take.evaluate("window.scrollY") == 0
    _inside(take, "#capture")
    _inside(take, "#preview")
    take.get_by_role("button", name="Take picture and check").click()
    _pending_then(
        session,
        VerificationStatus.NO_FACE,
        "No face was found in the picture. Face the camera in good light, remove anything "
        "covering your face and try again (2 attempts left).",
        take,
    )
    status = take.locator("#verify-status")
    expect(status).to_have_class("msg error")
    expect(take.get_by_role("button", name="Take picture and check")).to_be_enabled()
    _inside(take, "#verify-status")
    _inside(take, "#capture")  # the retry is where the candidate is looking
    assert not browsers.errors, browsers.errors


def _finished(candidate, *, high: int, reference_unverified: bool = False):
    from django.utils import timezone

    from exams.models import Event

    session = candidate.session
    advance(session, "consented", "verified", "in_progress", "submitted")
    candidate.reference_unverified = reference_unverified
    candidate.save(update_fields=["reference_unverified"])
    now = timezone.now()
    for n in range(high):
        Event.objects.create(
            session=session,
            type="multiple_faces",
            key=f"faces-{n}",
            severity="high",
            started_at=now,
            ended_at=now,
            is_open=False,
        )
    return session


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])
def test_it_shows_every_column_of_the_review_queue(browsers, clips, exam, candidate, reviewer, viewport):
    sessions = [
        _finished(candidate, high=3),
        _finished(
            _candidate(exam, "Maximiliane Oberhofer-Westerkamp", "max@example.org"),
            high=1,
            reference_unverified=True,
        ),
    ]
    page = browsers.login(browsers.launch(clips["alone"]), "reviewer", viewport)
    for url in ("/review/", f"/review/exams/{exam.code}"):
        page.goto(url)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], url
        for session in sessions:
            row = page.locator(f'.review-rows tr[data-session="{session.public_id}"]')
            expect(row).to_be_visible()
            row.scroll_into_view_if_needed()
            for cell in ("[data-label=Risk]", "[data-label=Decision]", "td.open"):
                _inside(page, f'.review-rows tr[data-session="{session.public_id}"] {cell}')
            expect(row.locator("[data-label=Risk]")).to_contain_text("30" if session is sessions[1] else "90")
        report = page.locator(f'.review-rows tr[data-session="{sessions[0].public_id}"] td.open a')
    report.click()
    page.wait_for_url(f"**/review/sessions/{sessions[0].public_id}/")
    assert not browsers.errors, browsers.errors
