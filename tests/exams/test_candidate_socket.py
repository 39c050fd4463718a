"""The candidate websocket driven through the full ASGI app: bad input, duplicates, signals."""

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from exams.consumers import CLOSE_DUPLICATE, CLOSE_TAKEN_OVER
from exams.models import AuditEntry, Event, ExamSession
from proctor.asgi import application
from tests.conftest import photo_bytes

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://127.0.0.1")]


async def _connect(token: str, resume: str = "") -> tuple[WebsocketCommunicator, dict]:
    path = f"/ws/take/{token}/" + (f"?resume={resume}" if resume else "")
    communicator = WebsocketCommunicator(application, path, headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    return communicator, await communicator.receive_json_from(timeout=5)


@pytest.fixture
def small_jpeg() -> bytes:
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(photo_bytes("obama.jpg"), np.uint8), cv2.IMREAD_COLOR)
    ok, data = cv2.imencode(".jpg", cv2.resize(image, (320, 240)))
    return data.tobytes()


async def test_it_answers_bad_messages_and_keeps_the_connection(live_session):
    communicator, status = await _connect(live_session.candidate.token)
    assert status["type"] == "status"
    try:
        for payload, code in [
            ("{not json", "malformed"),
            ("[1, 2]", "malformed"),
            (json.dumps({"type": "teleport"}), "unknown_type"),
            (json.dumps({"type": "signal", "name": "rm -rf"}), "malformed"),
            (json.dumps({"type": "signal", "name": "tab_hidden", "active": "yes"}), "malformed"),
            ("x" * 5000, "malformed"),
        ]:
            await communicator.send_to(text_data=payload)
            reply = await communicator.receive_json_from(timeout=5)
            assert reply["type"] == "error" and reply["code"] == code, payload[:30]
        await communicator.send_to(bytes_data=b"\x00" * 600 * 1024)
        assert (await communicator.receive_json_from(timeout=5))["code"] == "frame_too_large"
        await communicator.send_to(bytes_data=b"GIF89a not really an image")
        assert (await communicator.receive_json_from(timeout=5))["code"] == "not_an_image"
        # Still alive: a heartbeat is accepted silently.
        await communicator.send_to(text_data=json.dumps({"type": "heartbeat"}))
        assert await communicator.receive_nothing(timeout=0.5)
    finally:
        await communicator.disconnect()
    codes = [a.details["code"] async for a in AuditEntry.objects.filter(action="bad_message")]
    assert codes.count("malformed") == 5 and "frame_too_large" in codes and "not_an_image" in codes
    session = await ExamSession.objects.aget(pk=live_session.pk)
    assert session.state == "in_progress"  # nothing already stored was lost


async def test_it_refuses_frames_faster_than_the_exam_allows(live_session, small_jpeg):
    communicator, _ = await _connect(live_session.candidate.token)
    try:
        for _ in range(3):  # FRAME_BURST
            await communicator.send_to(bytes_data=small_jpeg)
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.send_to(bytes_data=small_jpeg)
        reply = await communicator.receive_json_from(timeout=5)
        assert reply["code"] == "too_fast"
    finally:
        await communicator.disconnect()


async def test_it_refuses_a_second_tab_without_killing_it_and_records_it_once(live_session):
    token = live_session.candidate.token
    first, _ = await _connect(token, resume="tab-one-aaaa")
    try:
        for _ in range(3):  # the second tab keeps retrying, as the page does
            second, reply = await _connect(token, resume="tab-two-bbbb")
            assert reply["code"] == "duplicate_session" and not reply.get("fatal")
            assert "another tab" in reply["message"] and "connects by itself" in reply["message"]
            closed = await second.receive_output(timeout=5)
            assert closed == {"type": "websocket.close", "code": CLOSE_DUPLICATE}
            await second.disconnect()
        # The first connection is untouched.
        await first.send_to(text_data=json.dumps({"type": "heartbeat"}))
        assert await first.receive_nothing(timeout=0.3)
    finally:
        await first.disconnect()
    assert await Event.objects.filter(session=live_session, type="duplicate_session").acount() == 1
    assert await AuditEntry.objects.filter(action="duplicate_session_refused").acount() == 1
    # Once the first tab is gone, the second gets in.
    second, status = await _connect(token, resume="tab-two-bbbb")
    assert status["type"] == "status"
    await second.disconnect()


async def test_it_lets_the_same_tab_take_over_from_a_half_open_socket(live_session):
    """A Wi-Fi change: the old socket never sent a close frame, so the server still
    holds it; the page reconnects within a second with its resume id."""
    token = live_session.candidate.token
    half_open, _ = await _connect(token, resume="the-tab-1234")
    again, status = await _connect(token, resume="the-tab-1234")
    try:
        assert status["type"] == "status"
        told = await half_open.receive_json_from(timeout=5)
        assert told["code"] == "taken_over" and told["fatal"] is True
        assert (await half_open.receive_output(timeout=5))["code"] == CLOSE_TAKEN_OVER
        await again.send_to(text_data=json.dumps({"type": "heartbeat"}))
        assert await again.receive_nothing(timeout=0.3)
    finally:
        await again.disconnect()
        await half_open.disconnect()
    assert not await Event.objects.filter(session=live_session, type="duplicate_session").aexists()
    session = await ExamSession.objects.aget(pk=live_session.pk)
    assert session.connection_channel == ""  # the newest socket's clean close released it


async def test_it_lets_a_page_reconnect_within_a_second_of_a_clean_close(live_session):
    token = live_session.candidate.token
    first, _ = await _connect(token, resume="reloaded-tab")
    await first.disconnect()
    again, status = await _connect(token, resume="another-page-load")
    assert status["type"] == "status"
    await again.disconnect()


async def test_it_keeps_the_connection_when_a_handler_raises(live_session, monkeypatch):
    """Fault injection: a handler that raises is logged and answered, the claim is
    released on close, and the page can reconnect at once from another tab id."""
    from exams import services

    token = live_session.candidate.token
    communicator, _ = await _connect(token, resume="tab-raises-1")
    try:
        await communicator.send_to(text_data="[" * 3000)  # RecursionError inside json.loads
        assert (await communicator.receive_json_from(timeout=5))["code"] == "malformed"

        def broken(**kwargs):
            raise RuntimeError("database went away")

        monkeypatch.setattr(services, "signal_record", broken)
        await communicator.send_to(text_data=json.dumps({"type": "signal", "name": "tab_hidden"}))
        reply = await communicator.receive_json_from(timeout=5)
        assert reply["code"] == "server_error" and not reply.get("fatal")
        await communicator.send_to(text_data=json.dumps({"type": "heartbeat"}))
        assert await communicator.receive_nothing(timeout=0.3)
    finally:
        await communicator.disconnect()
    other, status = await _connect(token, resume="tab-raises-2")
    assert status["type"] == "status", "the claim was not released"
    await other.disconnect()


async def test_it_records_a_lost_connection_and_closes_it_on_reconnect(live_session):
    first, _ = await _connect(live_session.candidate.token)
    await first.disconnect()
    lost = await Event.objects.aget(session=live_session, type="connection_lost")
    assert lost.is_open
    again, status = await _connect(live_session.candidate.token)
    assert status["type"] == "status"
    lost = await Event.objects.aget(session=live_session, type="connection_lost")
    assert not lost.is_open and lost.ended_at >= lost.started_at
    await again.disconnect()
    # Lost again within a minute: the same alert reopens and counts, as tab switches do.
    lost = await Event.objects.aget(session=live_session, type="connection_lost")
    assert lost.is_open and lost.details["count"] == 2


async def test_it_turns_tab_switches_into_one_event_per_absence(live_session):
    communicator, _ = await _connect(live_session.candidate.token)
    try:
        for active in (True, True, False):  # a repeated "hidden" does not open a second event
            await communicator.send_to(
                text_data=json.dumps({"type": "signal", "name": "tab_hidden", "active": active})
            )
        for _ in range(3):
            await communicator.send_to(text_data=json.dumps({"type": "signal", "name": "copy_paste"}))
        await communicator.send_to(text_data=json.dumps({"type": "heartbeat"}))
        assert await communicator.receive_nothing(timeout=0.5)
    finally:
        await communicator.disconnect()
    tab = [e async for e in Event.objects.filter(session=live_session, type="tab_hidden")]
    assert len(tab) == 1 and not tab[0].is_open
    paste = [e async for e in Event.objects.filter(session=live_session, type="copy_paste")]
    assert len(paste) == 1 and paste[0].details["count"] == 3


async def test_it_ends_the_exam_when_the_proctor_does(live_session, proctor):
    from asgiref.sync import sync_to_async

    from exams import services

    communicator, _ = await _connect(live_session.candidate.token)
    await sync_to_async(services.proctor_act)(
        session=live_session, actor=proctor, action="warn", text="Eyes on screen"
    )
    assert await communicator.receive_json_from(timeout=5) == {
        "type": "warn",
        "text": "Eyes on screen",
        "from": "proctor",
    }
    line = await communicator.receive_json_from(timeout=5)
    assert line["type"] == "chat" and line["message"]["speaker"] == "Proctor (warning)"
    await sync_to_async(services.proctor_act)(session=live_session, actor=proctor, action="end", text="")
    ended = await communicator.receive_json_from(timeout=5)
    assert ended["type"] == "ended" and ended["state"] == "terminated"
    assert (await communicator.receive_output(timeout=5))["type"] == "websocket.close"
    await communicator.disconnect()
    assert await AuditEntry.objects.filter(action="proctor_end", actor=proctor).aexists()


def _stale(session):
    from datetime import timedelta

    from django.utils import timezone

    ExamSession.objects.filter(pk=session.pk).update(
        connection_channel="specific.gone!", last_seen_at=timezone.now() - timedelta(minutes=5)
    )


def test_it_marks_a_connection_that_vanished_without_closing(live_session):
    from exams import services

    _stale(live_session)
    assert services.connections_mark_stale() == 1
    lost = Event.objects.get(session=live_session, type="connection_lost")
    assert lost.is_open
    assert services.connections_mark_stale() == 0  # idempotent


async def test_it_lets_the_candidate_back_in_after_a_vanished_connection(live_session):
    from asgiref.sync import sync_to_async

    await sync_to_async(_stale)(live_session)
    communicator, status = await _connect(live_session.candidate.token)
    assert status["type"] == "status", "a dead connection must not lock the candidate out"
    await communicator.disconnect()


async def test_it_asks_a_lagging_page_for_fewer_frames(live_session, small_jpeg):
    """No worker runs here, so every frame after the first finds one still waiting:
    the page is asked to slow down instead of frames piling up."""
    exam = live_session.exam
    exam.frame_interval = 0.5
    await exam.asave()
    communicator, status = await _connect(live_session.candidate.token, resume="slow-me-down")
    try:
        assert status["interval"] == 0.5 and status["busy"] is False
        await communicator.send_to(bytes_data=small_jpeg)
        assert await communicator.receive_nothing(timeout=0.6)
        await communicator.send_to(bytes_data=small_jpeg)
        slower = await communicator.receive_json_from(timeout=5)
        assert slower["type"] == "status" and slower["busy"] is True
        assert slower["interval"] == 0.75
    finally:
        await communicator.disconnect()


def _server_behind(reports: int) -> float:
    """Workers report frames that waited long before analysis, one adjust period apart."""
    from exams.analysis import pacing

    shared, factor = pacing.pacing(), 1.0
    for _ in range(reports):
        factor = shared.report(pacing.SLOW_DOWN_WAIT * 4)
        shared.redis.hincrbyfloat(pacing.RedisPacing.KEY, "adjusted_at", -pacing.ADJUST_SECONDS)
    return factor


async def test_it_starts_a_page_at_the_slower_pace_while_the_server_is_behind(live_session):
    from asgiref.sync import sync_to_async

    factor = await sync_to_async(_server_behind)(3)
    communicator, status = await _connect(live_session.candidate.token)
    try:
        assert status["busy"] is True
        assert status["interval"] == pytest.approx(live_session.exam.frame_interval * factor, abs=0.01)
    finally:
        await communicator.disconnect()


async def test_it_tells_a_streaming_page_when_the_server_falls_behind(live_session, small_jpeg):
    from asgiref.sync import sync_to_async

    from exams.analysis import pacing

    communicator, status = await _connect(live_session.candidate.token, resume="server-behind")
    try:
        assert status["busy"] is False
        factor = await sync_to_async(_server_behind)(2)
        await asyncio.sleep(pacing.READ_EVERY_SECONDS)  # the web process reads the factor this often
        await communicator.send_to(bytes_data=small_jpeg)
        slower = await communicator.receive_json_from(timeout=5)
        assert slower["type"] == "status" and slower["busy"] is True
        assert slower["interval"] == pytest.approx(live_session.exam.frame_interval * factor, abs=0.01)
    finally:
        await communicator.disconnect()


@pytest.mark.parametrize("fmt, size", [("GIF", (640, 480)), ("BMP", (200, 150)), ("JPEG", (2000, 1500))])
async def test_it_refuses_frames_of_other_formats_or_sizes(live_session, fmt, size):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buffer, format=fmt)
    communicator, _ = await _connect(live_session.candidate.token)
    try:
        await communicator.send_to(bytes_data=buffer.getvalue())
        assert (await communicator.receive_json_from(timeout=5))["code"] == "not_an_image"
    finally:
        await communicator.disconnect()


async def test_it_limits_a_flood_of_signals(live_session):
    from exams.consumers import SIGNAL_BURST

    communicator, _ = await _connect(live_session.candidate.token)
    try:
        for number in range(60):  # a script toggling the tab as fast as it can
            signal = {"type": "signal", "name": "tab_hidden", "active": number % 2 == 0}
            await communicator.send_to(text_data=json.dumps(signal))
        # One answer per refused signal; the admitted ones are written to the database
        # first, which on a busy machine takes longer than any fixed quiet period.
        answers = [await communicator.receive_json_from(timeout=30) for _ in range(60 - SIGNAL_BURST)]
        assert await communicator.receive_nothing(timeout=1)
    finally:
        await communicator.disconnect()
    assert [answer["code"] for answer in answers] == ["too_fast"] * (60 - SIGNAL_BURST)
    # The admitted toggles are debounced into one event (SIGNAL_MERGE_SECONDS).
    events = await Event.objects.filter(session=live_session, type="tab_hidden").acount()
    assert events == 1
