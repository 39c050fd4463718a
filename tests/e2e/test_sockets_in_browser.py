"""static/js/socket.js in Chromium: the pages reconnect with jittered backoff,
say so, and the exam page gives up when a new connection would be refused."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from tests.conftest import _candidate

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

# Keeps every websocket a page opens in window.sockets, so a test can drop one
# (as a network would) and count the reconnections.
RECORD_SOCKETS = """
window.sockets = [];
window.WebSocket = class extends window.WebSocket {
  constructor(...args) { super(...args); window.sockets.push(this); }
};
"""


def test_the_waits_grow_exponentially_with_jitter_up_to_15_s(browsers, clips, proctor, exam):
    grid = browsers.login(browsers.launch(clips["alone"]), "proctor")
    grid.goto(f"/proctor/exams/{exam.code}/live")
    waits = grid.evaluate(
        """async () => {
          const src = document.querySelector("script[src$='proctor_live.js']").src;
          const { reconnectDelay } = await import(new URL("socket.js", src));
          return [0, 1, 2, 3, 4, 5, 10].map((attempt) =>
            Array.from({ length: 200 }, () => reconnectDelay(attempt)));
        }"""
    )
    for attempt, samples in zip([0, 1, 2, 3, 4, 5, 10], waits, strict=True):
        step = min(1000 * 2**attempt, 15_000)
        assert all(step / 2 <= wait <= step for wait in samples), (attempt, min(samples), max(samples))
        assert len(set(samples)) > 100, "no jitter"
    assert browsers.errors == []


def test_the_grid_says_it_is_reconnecting_and_comes_back_live(browsers, clips, proctor, exam, live_session):
    grid = browsers.login(browsers.launch(clips["alone"]), "proctor")
    grid.context.add_init_script(RECORD_SOCKETS)
    grid.goto(f"/proctor/exams/{exam.code}/live")
    status = grid.locator("#live-status")
    expect(status).to_have_text("live")

    # A candidate added while the page is open gets a tile from the snapshot the
    # next connection brings, built from the payload's links and label.
    late = _candidate(exam, "Ada Lovelace", "ada@example.org").session
    grid.evaluate("window.sockets[0].close()")
    expect(status).to_have_text("reconnecting…")
    expect(status).to_have_text("live")
    assert grid.evaluate("window.sockets.length") == 2
    tile = grid.locator(f"#tile-{late.public_id}")
    expect(tile.locator(".name")).to_have_text("Ada Lovelace")
    expect(tile.locator(".state")).to_have_text("Invited")
    assert tile.get_attribute("href") == f"/proctor/sessions/{late.public_id}/"

    # The new connection gets the pushes too.
    detail = grid.context.new_page()
    detail.goto(f"/proctor/sessions/{live_session.public_id}/")
    detail.get_by_role("button", name="Pause").click()
    expect(grid.locator(f"#tile-{live_session.public_id} .state")).to_have_text("In progress · paused")
    assert browsers.errors == []


def test_the_exam_page_does_not_reconnect_after_a_fatal_refusal(browsers, clips, live_session):
    from exams.models import ExamSession

    take = browsers.context(browsers.launch(clips["alone"])).new_page()
    take.add_init_script(RECORD_SOCKETS)
    take.goto(f"/take/{live_session.candidate.token}/exam/")
    expect(take.locator("#conn")).to_have_text("Connected")
    # The attempt ends while the network drops: the reconnect is refused for good.
    ExamSession.objects.filter(pk=live_session.pk).update(state=ExamSession.State.TERMINATED)
    take.evaluate("window.sockets[0].close()")
    expect(take.locator("#notice")).to_have_text("This exam has finished.")
    expect(take.locator("#conn")).to_have_text("Not connected")
    time.sleep(3.5)  # two more retries would have gone out by now (0.5-1 s, then 1-2 s)
    assert take.evaluate("window.sockets.length") == 2
    expect(take.locator("#conn")).to_have_text("Not connected")
    assert browsers.errors == []


def test_the_exam_page_jitters_its_frames_around_the_pace(
    browsers, clips, celery_worker_process, live_session
):
    # One pace for a whole exam hall: without jitter, pages the server re-timed
    # one after another stay in step (tests/exams/test_loadtest.py simulates it).
    exam = live_session.exam
    exam.frame_interval = 1.0
    exam.save(update_fields=["frame_interval"])
    take = browsers.context(browsers.launch(clips["alone"])).new_page()
    seen: list[tuple[float, float | None]] = []  # (when, None for a frame or the pace a status asked)
    take.on("websocket", lambda ws: _watch(ws, seen))
    take.goto(f"/take/{live_session.candidate.token}/exam/")
    expect(take.locator("#conn")).to_have_text("Connected")
    deadline = time.monotonic() + 90
    while sum(pace is None for _, pace in seen) < 13 and time.monotonic() < deadline:
        take.wait_for_timeout(250)
    # Each gap between two frames over the pace the page was asked for when it
    # timed the second one (the server slows a page while its worker loads models).
    ratios, pace, last = [], 1.0, None
    for when, asked in seen:
        if asked is not None:
            pace = asked
            continue
        if last is not None:
            ratios.append((when - last) / pace)
        last = when
    ratios = ratios[:12]

    assert len(ratios) == 12, f"the page sent {len(ratios) + 1} frames in 90 s"
    # Each frame the pace give or take 15 %, and whatever a loaded machine adds to a timer.
    assert all(0.7 <= r <= 1.6 for r in ratios), ratios
    # Uniform over 0.3 of the pace, 12 gaps span under 0.1 of it with a chance of 5 in 100,000.
    assert max(ratios) - min(ratios) > 0.1, ratios
    assert browsers.errors == []


def _watch(ws, seen: list[tuple[float, float | None]]) -> None:
    def sent(payload) -> None:
        if isinstance(payload, bytes):
            seen.append((time.monotonic(), None))

    def received(payload) -> None:
        message = json.loads(payload) if isinstance(payload, str) else {}
        if message.get("type") == "status" and message.get("interval"):
            seen.append((time.monotonic(), float(message["interval"])))

    ws.on("framesent", sent)
    ws.on("framereceived", received)
