"""What a proctor sees of alerts that end, repeat, or come from a silent camera,
in Chromium against daphne, PostgreSQL and Redis. The alerts are raised from
the test through the product's own services, as the socket and the beat would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.conftest import _candidate, advance
from tests.exams.test_alerts import hold

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def hall(exam):
    people = {}
    for name in ("Ada Lovelace", "Barack Obama"):
        session = _candidate(exam, name, name.split()[0].lower() + "@example.org").session
        advance(session, "consented", "verified", "in_progress")
        people[name] = session
    return people


def test_it_shows_alerts_ending_merging_and_a_silent_camera(browsers, clips, hall, exam):
    from django.utils import timezone

    from exams import services

    ada, barack = hall.values()
    staff = browsers.launch(clips["alone"])
    grid = browsers.login(staff, "proctor")
    grid.goto(f"/proctor/exams/{exam.code}/live")
    expect(grid.locator("#live-status")).to_have_text("live")
    feed = grid.locator("#feed")
    ada_tile = grid.locator(f"#tile-{ada.public_id}")
    barack_tile = grid.locator(f"#tile-{barack.public_id}")
    # A click lets the page make sound (browsers start audio only after a gesture).
    grid.locator("#live-status").click()

    # Ada leaves the tab: an ongoing alert, on her tile too.
    hidden = services.signal_record(session=ada, signal="tab_hidden", active=True)
    entry = grid.locator(f"#alert-{hidden.public_id}")
    expect(entry).to_contain_text("(ongoing)")
    expect(ada_tile.locator(".badges")).to_have_text("left the exam tab")
    grid.wait_for_function("window.gridBeeps === 1")
    # She submits with the tab still hidden: the alert ends where it was, for the proctor too.
    services.session_submit(session=ada)
    expect(entry).to_have_attribute("data-open", "false")
    expect(entry).not_to_contain_text("ongoing")
    expect(ada_tile.locator(".badges")).to_have_text("")
    expect(ada_tile.locator(".state")).to_have_text("Submitted")

    # A second device tries three times with fresh tabs: one alert that counts.
    for _ in range(3):
        services.connection_refused(session=barack)
    duplicate = feed.locator("li[data-type=duplicate_session]")
    expect(duplicate).to_have_count(1)
    expect(duplicate).to_contain_text("3 times")
    assert grid.evaluate("window.gridBeeps") == 2, "one beep for the three attempts"

    # Barack's page stays connected but his camera sends nothing the server can analyse.
    barack.refresh_from_db()
    barack.connection_channel = "specific.test!barack"
    since = timezone.now() - timedelta(seconds=services.camera_silent_after(barack) + 1)
    barack.started_at = barack.frames_due_from = since
    barack.save()
    hold(barack, "specific.test!barack")  # his page's heartbeats keep its claim
    assert services.cameras_flag_silent() == 1
    silent = feed.locator("li[data-type=camera_silent]")
    expect(silent).to_contain_text("no picture from the camera")
    expect(silent).to_contain_text("(ongoing)")
    expect(barack_tile.locator(".badges")).to_contain_text("no picture from the camera")
    grid.wait_for_function("window.gridBeeps === 3")  # a high alert, like any other
    # Then his connection is lost: the camera alert ends there, the loss is its own alert.
    services.connection_close(session=barack, channel_name="specific.test!barack")
    expect(silent).to_have_attribute("data-open", "false")
    expect(feed.locator("li[data-type=connection_lost]")).to_contain_text("(ongoing)")
    expect(barack_tile.locator(".why")).to_have_text("Disconnected")
    expect(barack_tile.locator(".badges")).to_have_text("connection lost")

    # A proctor who opens the grid now sees the same: nothing of Ada's is ongoing.
    grid.reload()
    expect(grid.locator("#live-status")).to_have_text("live")
    expect(grid.locator(f"#alert-{hidden.public_id}")).to_have_attribute("data-open", "false")
    expect(feed.locator("li[data-type=duplicate_session]")).to_contain_text("3 times")
    expect(feed.locator("li[data-open=true]")).to_have_count(1)  # Barack's lost connection only
    assert browsers.errors == []
