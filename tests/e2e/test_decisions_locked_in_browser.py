"""A violation two reviewers agreed on is final: the workbench says so and
offers no more decisions, both when the second vote is cast on the page and
when the report is opened later."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import advance

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

FINAL = "This session's outcome is final: a violation, confirmed by two reviewers."


def test_it_locks_the_workbench_once_the_violation_is_final(
    browsers, clips, exam, candidate, reviewer, second_reviewer
):
    from django.utils import timezone

    from exams import services
    from exams.models import Event

    exam.reviewers.add(reviewer, second_reviewer)
    session = candidate.session
    advance(session, "consented", "verified", "in_progress", "submitted")
    now = timezone.now()
    event = Event.objects.create(
        session=session,
        type="multiple_faces",
        key="faces",
        severity="high",
        started_at=now,
        ended_at=now,
        is_open=False,
    )
    services.session_review(session=session, reviewer=reviewer, outcome="violation")

    browser = browsers.launch(clips["alone"])
    page = browsers.login(browser, "second_reviewer")
    page.goto(f"/review/sessions/{session.public_id}/")
    locked = page.locator("#decisions-locked")
    expect(locked).to_be_hidden()
    card = page.locator(f"#event-{event.public_id}")
    expect(card.get_by_role("button", name="Confirm")).to_be_visible()
    page.get_by_role("button", name="Confirm violation").click()
    expect(page.locator("#decision-state")).to_have_text("Violation")
    expect(locked).to_be_visible()
    expect(locked).to_contain_text(FINAL)
    expect(card.get_by_role("button", name="Confirm")).to_be_hidden()
    expect(page.get_by_role("button", name="Dismiss all")).to_be_hidden()

    # The first reviewer opens the report afterwards: locked from the start, and
    # a decision by keyboard is refused with the same words.
    other = browsers.login(browser, "reviewer")
    other.goto(f"/review/sessions/{session.public_id}/")
    expect(other.locator("#workbench")).to_have_attribute("data-ready", "1")
    expect(other.locator("#decisions-locked")).to_contain_text(FINAL)
    expect(other.locator(f"#event-{event.public_id}").get_by_role("button", name="Dismiss")).to_be_hidden()
    other.keyboard.press("j")
    other.keyboard.press("d")
    expect(other.locator("#workbench-status")).to_contain_text(FINAL)
    event.refresh_from_db()
    assert event.review_status == Event.Review.PENDING
    assert not [e for e in browsers.errors if "409" not in e], browsers.errors
