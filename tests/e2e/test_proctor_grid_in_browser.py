"""The proctors' live grid for a big exam, and one candidate's live page, in
Chromium against daphne, PostgreSQL and Redis. Alerts and pictures are pushed
from the test through the real channel layer, as a worker would push them."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.conftest import _candidate, advance, photo_bytes
from tests.e2e.conftest import PHONE, SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _alert(session, event_type: str, severity: str = "high", *, is_open: bool = True, ago: float = 0):
    from django.utils import timezone

    from exams.models import Event

    at = timezone.now() - timedelta(seconds=ago)
    return Event.objects.create(
        session=session,
        type=event_type,
        key=event_type,
        severity=severity,
        started_at=at,
        ended_at=at,
        is_open=is_open,
    )


def _picture(session, photo: str = "obama.jpg") -> str:
    """Keep a picture for the session as a worker would; returns its thumbnail's data URL."""
    from exams import live

    image = Image.open(io.BytesIO(photo_bytes(photo))).convert("RGB")
    frame = io.BytesIO()
    image.resize((640, 480)).save(frame, "JPEG")
    thumb = io.BytesIO()
    image.resize((160, 120)).save(thumb, "JPEG")
    return live.picture_keep(str(session.public_id), frame=frame.getvalue(), thumbnail=thumb.getvalue())


@pytest.fixture
def crowd(exam, proctor, other_proctor):
    """An exam in full swing, before any proctor opens the grid."""
    from django.utils import timezone

    exam.proctors.add(other_proctor)
    people = {}
    for name in ("Ada Lovelace", "Barack Obama", "Charles Babbage", "Dorothy Vaughan", "Edsger Dijkstra"):
        email = name.split()[0].lower() + "@example.org"
        people[name] = _candidate(exam, name, email).session
    ada, barack, charles, dorothy, edsger = people.values()
    for session in (ada, barack, edsger):
        advance(session, "consented", "verified", "in_progress")
    advance(dorothy, "consented", "verified", "in_progress", "submitted")
    advance(charles, "consented")
    charles.verification_status = "multiple_faces"
    charles.verification_attempts = 3
    charles.save()
    # Edsger's page is connected and streams; the others in progress are not.
    edsger.connection_channel = "specific.test!edsger"
    edsger.last_seen_at = edsger.last_frame_at = timezone.now() - timedelta(seconds=12)
    edsger.save()
    # Before anyone looked: Ada is not the person on the roster (open), Barack
    # looked away twice and left no face for a while (closed).
    mismatch = _alert(ada, "identity_mismatch", ago=120)
    for ago in (300, 200):
        _alert(barack, "looking_away", "low", is_open=False, ago=ago)
    _alert(barack, "no_face", "medium", is_open=False, ago=100)
    return {"people": people, "mismatch": mismatch}


def _expect_names(page: Page, names: list[str]) -> None:
    """The visible tiles' names, in order; retried like every expect, because
    a filter or a batch may still be redrawing the grid when the count matches."""
    expect(page.locator("#grid .tile:visible .name")).to_have_text(names)


def test_it_sorts_filters_searches_and_acknowledges_on_the_grid(browsers, clips, crowd, exam):
    from exams import live
    from exams.models import AuditEntry

    people, mismatch = crowd["people"], crowd["mismatch"]
    ada, barack, charles, dorothy, edsger = people.values()
    thumbnail = _picture(edsger)

    staff = browsers.launch(clips["alone"])
    grid = browsers.login(staff, "proctor")
    grid.goto(f"/proctor/exams/{exam.code}/live")
    expect(grid.locator("#live-status")).to_have_text("live")

    # By attention: the open high alert first, then by risk score, then by name.
    expect(grid.locator("#grid .tile .name").first).to_have_text("Ada Lovelace")
    _expect_names(
        grid,
        [
            "Ada Lovelace",
            "Barack Obama",
            "Charles Babbage",
            "Dorothy Vaughan",
            "Edsger Dijkstra",
        ],
    )
    counts = grid.locator("#counts")
    for key, value in {"in_progress": 3, "flagged": 1, "disconnected": 2, "finished": 1, "shown": 5}.items():
        expect(counts.locator(f"[data-count={key}]")).to_have_text(str(value))

    # Why Charles has not started, and who is offline, in words.
    expect(grid.locator(f"#tile-{charles.public_id} .why")).to_have_text("Several faces, 3 tries")
    expect(grid.locator(f"#tile-{charles.public_id} .state")).to_have_text("Consented")
    expect(grid.locator(f"#tile-{ada.public_id} .why")).to_have_text("Disconnected")
    expect(grid.locator(f"#tile-{ada.public_id} .badges")).to_have_text("identity mismatch")
    # No picture yet is a neutral placeholder, not a broken image.
    expect(grid.locator(f"#tile-{ada.public_id} img")).to_be_hidden()
    expect(grid.locator(f"#tile-{ada.public_id} .no-picture")).to_have_text("No picture yet")
    # Edsger's picture, with its age counting up in the browser.
    edsger_tile = grid.locator(f"#tile-{edsger.public_id}")
    expect(edsger_tile.locator("img")).to_have_attribute("src", thumbnail)
    expect(edsger_tile.locator(".age")).to_have_text(re.compile(r"^\d+ s ago$"))
    first_age = int(edsger_tile.locator(".age").inner_text().split()[0])
    assert first_age >= 12
    grid.wait_for_function(
        "([sel, age]) => parseInt(document.querySelector(sel).textContent) > age",
        arg=[f"#tile-{edsger.public_id} .age", first_age],
        timeout=5_000,
    )

    # The late-join feed: the alert from before the page loaded, labelled for people.
    entry = grid.locator(f"#alert-{mismatch.public_id}")
    expect(entry).to_contain_text("identity mismatch")
    expect(entry).to_contain_text("Ada Lovelace")
    expect(grid.locator("#feed")).to_have_attribute("aria-live", "polite")
    expect(grid.locator("#feed li[data-type=no_face]")).to_contain_text("no face")

    # By name, then the filters and the search.
    grid.get_by_label("Sort").select_option("name")
    grid.wait_for_function(
        "() => document.querySelector('#grid .tile:last-of-type .name').textContent === 'Edsger Dijkstra'"
    )
    grid.get_by_label("Show").select_option("flagged")
    expect(grid.locator("#grid .tile:visible")).to_have_count(1)
    _expect_names(grid, ["Ada Lovelace"])
    grid.get_by_label("Show").select_option("disconnected")
    expect(grid.locator("#grid .tile:visible")).to_have_count(2)
    _expect_names(grid, ["Ada Lovelace", "Barack Obama"])
    grid.get_by_label("Show").select_option(label="Submitted")
    expect(grid.locator("#grid .tile:visible")).to_have_count(1)
    _expect_names(grid, ["Dorothy Vaughan"])
    grid.get_by_label("Show").select_option("all")
    grid.get_by_label("Search").fill("bab")
    expect(grid.locator("#grid .tile:visible")).to_have_count(1)
    _expect_names(grid, ["Charles Babbage"])
    expect(counts.locator("[data-count=shown]")).to_have_text("1")
    grid.get_by_label("Search").fill("nobody here")
    expect(grid.locator("#none-shown")).to_be_visible()
    grid.get_by_label("Search").fill("")
    expect(grid.locator("#grid .tile:visible")).to_have_count(5)

    # The compact size is remembered.
    grid.get_by_role("button", name="Compact tiles").click()
    expect(grid.locator("#grid")).to_have_class(re.compile(r"\bcompact\b"))
    grid.reload()
    expect(grid.locator("#live-status")).to_have_text("live")
    expect(grid.locator("#grid")).to_have_class(re.compile(r"\bcompact\b"))
    expect(grid.get_by_role("button", name="Compact tiles")).to_have_attribute("aria-pressed", "true")
    grid.get_by_role("button", name="Compact tiles").click()
    # The sound toggle too.
    grid.get_by_role("button", name="Sound on").click()
    expect(grid.get_by_role("button", name="Sound off")).to_have_attribute("aria-pressed", "false")
    grid.reload()
    expect(grid.get_by_role("button", name="Sound off")).to_be_visible()
    grid.get_by_role("button", name="Sound off").click()

    # A new alert arrives live: on top of the feed, Barack's tile moves up.
    glasses = _alert(barack, "multiple_faces")
    live.session_changed(barack, events=[glasses])
    expect(grid.locator("#feed li").first).to_have_id(f"alert-{glasses.public_id}")
    expect(grid.locator("#feed li").first).to_contain_text("multiple faces")
    expect(counts.locator("[data-count=flagged]")).to_have_text("2")
    grid.wait_for_function(
        "() => [...document.querySelectorAll('#grid .tile .name')].slice(0, 2)"
        ".map(n => n.textContent).join() === 'Barack Obama,Ada Lovelace'"
    )

    # A second proctor, who joined late, handles Ada's alert; the first sees by whom.
    other = browsers.login(staff, "other_proctor")
    other.goto(f"/proctor/exams/{exam.code}/live")
    other_entry = other.locator(f"#alert-{mismatch.public_id}")
    other_entry.get_by_role("button", name="Acknowledge identity mismatch of Ada Lovelace").click()
    expect(other_entry).to_contain_text("handled by other_proctor")
    expect(entry).to_contain_text("handled by other_proctor")
    expect(entry.get_by_role("button")).to_have_count(0)
    expect(grid.locator(f"#tile-{ada.public_id} .badges .pill.handled")).to_have_text("identity mismatch")
    assert (
        AuditEntry.objects.filter(action="proctor_acknowledge", actor__username="other_proctor").count() == 1
    )

    # A few more pictures for the screenshot of the grid.
    for session, photo in ((ada, "obama2.jpg"), (barack, "obama.jpg"), (dorothy, "obama3.jpg")):
        live.session_changed(session, thumbnail=_picture(session, photo))
    for session in (ada, barack, dorothy):
        expect(grid.locator(f"#tile-{session.public_id} img")).to_be_visible()
    grid.screenshot(path=SCREENSHOTS / "grid.png")
    grid.set_viewport_size(PHONE)
    expect(grid.get_by_label("Search")).to_be_visible()
    assert grid.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert browsers.errors == []


def test_the_candidate_page_is_live_and_asks_before_ending(browsers, clips, crowd, exam):
    from django.utils import timezone

    from exams import live
    from exams.models import AuditEntry, ExamSession

    ada = crowd["people"]["Ada Lovelace"]
    page = browsers.login(browsers.launch(clips["alone"]), "proctor")
    page.goto(f"/proctor/sessions/{ada.public_id}/")
    expect(page.locator("#proctor-session")).to_have_attribute("data-live", "1")
    expect(page.locator(f"#event-{crowd['mismatch'].public_id} .etype")).to_have_text("identity mismatch")
    expect(page.locator("#session-no-picture")).to_be_visible()

    # A picture and an alert arrive: both appear without a reload.
    ada.frames_analysed = 7
    ada.last_frame_at = timezone.now()
    ada.save()
    later = _alert(ada, "camera_blocked")
    live.session_changed(ada, events=[later], thumbnail=_picture(ada))
    expect(page.locator(f"#event-{later.public_id} .etype")).to_have_text("camera blocked")
    expect(page.locator(f"#event-{later.public_id}")).to_contain_text("(ongoing)")
    expect(page.locator("#session-frames")).to_have_text("7")
    page.wait_for_function(
        "() => { const img = document.getElementById('session-picture'); "
        "return !img.hidden && img.complete && img.naturalWidth > 0; }"
    )
    expect(page.locator("#session-no-picture")).to_be_hidden()

    # Extra time moves the deadline shown.
    before = page.locator("#session-deadline").get_attribute("datetime")
    page.get_by_label("Extra time (minutes)").fill("15")
    page.get_by_role("button", name="Give extra time").click()
    expect(page.locator(".msg.success")).to_contain_text("Gave Ada Lovelace 15 more minutes.")
    assert page.locator("#session-deadline").get_attribute("datetime") != before

    # Ending asks first; saying no changes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="End exam").click()
    expect(page.locator(".msg.success")).to_contain_text("Gave Ada Lovelace")
    ada.refresh_from_db()
    assert ada.state == ExamSession.State.IN_PROGRESS
    questions = []

    def accept(dialog):
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="End exam").click()
    expect(page.locator(".msg.success")).to_have_text("Ended Ada Lovelace's exam.")
    assert questions == ["End Ada Lovelace's exam now? They cannot continue, and this cannot be undone."]
    expect(page.locator("#session-state")).to_have_text("Terminated")
    ada.refresh_from_db()
    assert ada.state == ExamSession.State.TERMINATED
    assert AuditEntry.objects.filter(session=ada, action="proctor_end").count() == 1

    # The whole exam: pause all asks first, then reports how many.
    grid = page.context.new_page()
    grid.goto(f"/proctor/exams/{exam.code}/live")
    grid.locator("summary", has_text="Actions for the whole exam").click()
    grid.once("dialog", lambda dialog: dialog.accept())
    grid.get_by_role("button", name="Pause all").click()
    expect(grid.locator(".msg.success")).to_have_text("Paused the exam for 2 candidates.")
    assert ExamSession.objects.filter(paused=True).count() == 2
    page.set_viewport_size(PHONE)
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert browsers.errors == []


# Records the desktop notifications the page raises.
RECORD_NOTIFICATIONS = """
window.shownNotes = [];
window.Notification = class extends window.Notification {
  constructor(title, options) { super(title, options); window.shownNotes.push(title); }
};
"""


def test_a_new_alert_beeps_counts_in_the_title_and_notifies_when_out_of_sight(browsers, clips, crowd, exam):
    from exams import live

    barack = crowd["people"]["Barack Obama"]
    staff = browsers.launch(clips["alone"])
    grid = browsers.login(staff, "proctor")
    grid.context.grant_permissions(["notifications"])
    grid.context.add_init_script(RECORD_NOTIFICATIONS)
    grid.goto(f"/proctor/exams/{exam.code}/live")
    expect(grid.locator("#live-status")).to_have_text("live")
    title = grid.title()
    # Opting in to desktop alerts is a click (which also lets the page make sound).
    grid.get_by_role("button", name="Desktop alerts").click()
    expect(grid.get_by_role("button", name="Desktop alerts on")).to_have_attribute("aria-pressed", "true")

    # In sight: a beep, no count, no notification. Alerts replayed from the snapshot make no sound.
    assert grid.evaluate("window.gridBeeps || 0") == 0
    first = _alert(barack, "multiple_faces")
    live.session_changed(barack, events=[first])
    expect(grid.locator(f"#alert-{first.public_id}")).to_be_visible()
    grid.wait_for_function("window.gridBeeps === 1")
    assert grid.title() == title
    assert grid.evaluate("window.shownNotes") == []

    # Out of sight (another window has the focus): the title counts, a notification shows.
    grid.evaluate("document.hasFocus = () => false")
    for kind in ("camera_blocked", "identity_mismatch"):
        event = _alert(barack, kind)
        live.session_changed(barack, events=[event])
        expect(grid.locator(f"#alert-{event.public_id}")).to_be_visible()
    expect(grid).to_have_title(f"(2) {title}")
    assert grid.evaluate("window.shownNotes") == [
        "Barack Obama: camera blocked",
        "Barack Obama: identity mismatch",
    ]
    # A low alert (looking away) neither beeps nor counts.
    low = _alert(barack, "looking_away", "low")
    live.session_changed(barack, events=[low])
    expect(grid.locator(f"#alert-{low.public_id}")).to_be_visible()
    expect(grid).to_have_title(f"(2) {title}")
    assert grid.evaluate("window.gridBeeps") == 3

    # Back in sight: the count is gone. With the sound off, no beep.
    grid.evaluate("document.hasFocus = () => true; window.dispatchEvent(new Event('focus'))")
    expect(grid).to_have_title(title)
    grid.get_by_role("button", name="Sound on").click()
    quiet = _alert(barack, "no_face", "medium")
    live.session_changed(barack, events=[quiet])
    expect(grid.locator(f"#alert-{quiet.public_id}")).to_be_visible()
    assert grid.evaluate("window.gridBeeps") == 3
    assert browsers.errors == []
