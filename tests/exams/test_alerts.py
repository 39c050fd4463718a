"""Alerts the server raises and merges itself: a silent camera, one alert per
cause of a connection, and alerts that end where the attempt or the connection
ended. Sockets are driven through the full ASGI app; moments past a threshold
are given to the check as ``now`` (derived from ``camera_silent_after``), never
waited for."""

from __future__ import annotations

import asyncio
import io
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.utils import timezone
from PIL import Image

from detection.core import EventAction
from exams import live, services
from exams.analysis import intake, queue
from exams.analysis.queue import frame_queue
from exams.models import AuditEntry, Event, ExamSession
from exams.presence import presence
from exams.reports.data import exam_report
from exams.risk import risk_of
from exams.services.connections import MAX_AUDITED_PER_CAUSE, MAX_AUDITED_SOCKET_ERRORS
from tests.conftest import until
from tests.detection.detection_photos import jpeg, photo

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://127.0.0.1")]


async def _connect(token: str, resume: str = "") -> tuple[WebsocketCommunicator, dict]:
    from proctor.asgi import application

    path = f"/ws/take/{token}/" + (f"?resume={resume}" if resume else "")
    communicator = WebsocketCommunicator(application, path, headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    return communicator, await communicator.receive_json_from(timeout=5)


def _corrupt_frame() -> bytes:
    """A JPEG whose header is sound (the socket takes it: it only reads the header)
    and whose body is noise, so the analyser's decoder refuses it."""
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 80, 40)).save(buffer, "JPEG")
    data = buffer.getvalue()
    start_of_scan = data.find(b"\xff\xda")
    return data[: start_of_scan + 14] + bytes(range(256)) * 8


async def _listen(exam) -> tuple[object, str]:
    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(live.exam_group(exam.code), listener)
    return layer, listener


async def _pushed_events(layer, listener) -> list[dict]:
    """Every alert pushed to the proctors so far (tiles skipped)."""
    found = []
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(listener), timeout=0.5)
        except TimeoutError:
            return found
        if message["payload"].get("type") == "event":
            found.append(message["payload"]["event"])


def _silent_moments(session: ExamSession) -> tuple:
    """Just before and just after the session's camera counts as silent, by the code's own rule."""
    session = ExamSession.objects.select_related("candidate__exam").get(pk=session.pk)
    since = max(m for m in (session.last_frame_at, session.frames_due_from, session.started_at) if m)
    after = timedelta(seconds=services.camera_silent_after(session))
    return since, since + after - timedelta(seconds=1), since + after + timedelta(seconds=1)


async def _until_stored(predicate, *, within: float, what: str) -> None:
    """``until`` for a predicate that reads the database (run off the event loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await sync_to_async(predicate)():
        if loop.time() > deadline:
            pytest.fail(f"not within {within:g} s: {what}")
        await asyncio.sleep(0.1)


def hold(session: ExamSession, channel: str = "specific.test!page") -> None:
    """Hold the session's claim as a connected page's socket does (its heartbeats
    keep it), on a loop of its own: the caller may be inside one."""
    claim = presence().claim(str(session.public_id), channel, "test-page-resume-id")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, claim).result()


def _connected_since(session: ExamSession, moment) -> None:
    """The page has been connected (and the exam running) since ``moment``, no frame analysed."""
    session.connection_channel = "specific.test!page"
    session.started_at = session.frames_due_from = moment
    session.save()
    hold(session)


# ---------------------------------------------------------------- a silent camera


@pytest.mark.services
async def test_it_flags_a_camera_that_only_sends_heartbeats(live_session):
    layer, listener = await _listen(live_session.exam)
    communicator, status = await _connect(live_session.candidate.token)
    assert status["type"] == "status"
    try:
        await communicator.send_to(text_data=json.dumps({"type": "heartbeat"}))
        assert await communicator.receive_nothing(timeout=0.3)
        since, before, past = await sync_to_async(_silent_moments)(live_session)

        assert await sync_to_async(services.cameras_flag_silent)(now=before) == 0
        assert not await Event.objects.filter(session=live_session, type="camera_silent").aexists()
        assert await sync_to_async(services.cameras_flag_silent)(now=past) == 1
        # A second run extends the same alert: one alert, not one per run.
        assert await sync_to_async(services.cameras_flag_silent)(now=past + timedelta(seconds=5)) == 0
        silent = await Event.objects.aget(session=live_session, type="camera_silent")
        assert silent.is_open and silent.severity == "high" and silent.started_at == since
        pushed = [e for e in await _pushed_events(layer, listener) if e["type"] == "camera_silent"]
        assert [e["id"] for e in pushed] == [str(silent.public_id)]
        assert pushed[0]["label"] == "no picture from the camera" and pushed[0]["open"]
        events = [e async for e in Event.objects.filter(session=live_session)]
        (line,) = risk_of(events).lines
        assert line.points == 30 and "no picture the server could analyse" in line.reason
    finally:
        await communicator.disconnect()
    # The connection went: the camera alert ends there and says why; connection_lost takes over.
    silent = await Event.objects.aget(session=live_session, type="camera_silent")
    assert not silent.is_open and silent.details["ended_by"] == "connection_lost"
    assert (await Event.objects.aget(session=live_session, type="connection_lost")).is_open
    report = await sync_to_async(exam_report)(live_session.exam)
    assert "camera_silent" in [e["type"] for e in report[0]["events"]]


@pytest.fixture
def embedded(settings):
    settings.EMBEDDED = True
    settings.REDIS_URL = ""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    queue.frame_queue.cache_clear()
    presence.cache_clear()
    yield
    channel_layers.backends.clear()
    queue.frame_queue.cache_clear()
    presence.cache_clear()


@pytest.mark.slow
@pytest.mark.services
async def test_it_counts_frames_that_never_decode_as_none_and_closes_when_frames_come_back(
    embedded, live_session
):
    """Embedded mode: the web process's own analysis thread drops the corrupt frames."""
    session_id = str(live_session.public_id)
    communicator, _ = await _connect(live_session.candidate.token)
    try:
        await communicator.send_to(bytes_data=_corrupt_frame())
        assert await communicator.receive_nothing(timeout=0.3), "the socket took the frame"
        await until(
            lambda: frame_queue().idle(intake.FRAME, session_id), within=30, what="the frame was analysed"
        )
        session = await ExamSession.objects.aget(pk=live_session.pk)
        assert session.frames_analysed == 0 and session.last_frame_at is None
        _, _, past = await sync_to_async(_silent_moments)(live_session)
        assert await sync_to_async(services.cameras_flag_silent)(now=past) == 1

        await communicator.send_to(bytes_data=jpeg(photo("obama.jpg")))
        # The first real frame loads the models in this process: a generous bound, no timing claim.
        await _until_stored(
            lambda: ExamSession.objects.filter(pk=live_session.pk, frames_analysed=1).exists(),
            within=120,
            what="the real frame was analysed",
        )
    finally:
        await communicator.disconnect()
    silent = await Event.objects.aget(session=live_session, type="camera_silent")
    session = await ExamSession.objects.aget(pk=live_session.pk)
    assert not silent.is_open and silent.ended_at == session.last_frame_at
    assert "ended_by" not in silent.details  # frames came back before the connection went


def test_it_runs_the_check_from_the_embedded_beat(embedded, live_session, settings):
    from exams.tasks import EmbeddedBeat

    assert settings.CELERY_BEAT_SCHEDULE["flag-silent-cameras"]["task"] == "exams.tasks.flag_silent_cameras"
    after = services.camera_silent_after(live_session)
    _connected_since(live_session, timezone.now() - timedelta(seconds=after + 1))
    beat = EmbeddedBeat(settings.CELERY_BEAT_SCHEDULE)
    assert "flag-silent-cameras" in beat.tick()
    assert Event.objects.get(session=live_session, type="camera_silent").is_open


@pytest.mark.slow
@pytest.mark.services
def test_it_runs_the_check_on_the_housekeeping_worker(celery_worker_process, live_session, settings):
    from celery import current_app

    # Well past the worker's own threshold (its settings are the defaults), well before the deadline.
    _connected_since(live_session, timezone.now() - timedelta(minutes=10))
    entry = settings.CELERY_BEAT_SCHEDULE["flag-silent-cameras"]
    assert entry["options"]["queue"] == settings.HOUSEKEEPING_QUEUE
    current_app.send_task(entry["task"], queue=entry["options"]["queue"])
    flagged = Event.objects.filter(session=live_session, type="camera_silent", is_open=True)
    asyncio.run(_until_stored(flagged.exists, within=60, what="the worker flagged the silent camera"))


def test_it_leaves_a_paused_exam_alone_and_counts_again_from_the_resume(live_session, proctor):
    _connected_since(live_session, timezone.now() - timedelta(minutes=10))
    services.proctor_act(session=live_session, actor=proctor, action="pause")
    assert services.cameras_flag_silent() == 0
    services.proctor_act(session=live_session, actor=proctor, action="resume")
    since, before, past = _silent_moments(live_session)
    assert since > timezone.now() - timedelta(minutes=1)  # from the resume, not from an hour ago
    assert services.cameras_flag_silent(now=before) == 0
    assert services.cameras_flag_silent(now=past) == 1
    # Pausing ends the alert: no frame is expected while paused.
    services.proctor_act(session=live_session, actor=proctor, action="pause")
    assert services.cameras_flag_silent() == 1
    assert not Event.objects.get(session=live_session, type="camera_silent").is_open


def test_it_closes_the_alert_on_its_next_run_once_frames_are_analysed_again(live_session):
    """The pipeline closes it on the first frame after the silence; the check is the safety net."""
    _connected_since(live_session, timezone.now() - timedelta(minutes=10))
    assert services.cameras_flag_silent() == 1
    heard = timezone.now()
    ExamSession.objects.filter(pk=live_session.pk).update(last_frame_at=heard, frames_analysed=1)
    assert services.cameras_flag_silent(now=heard) == 1
    silent = Event.objects.get(session=live_session, type="camera_silent")
    assert not silent.is_open and silent.ended_at == heard
    assert services.cameras_flag_silent(now=heard) == 0


def test_it_leaves_a_vanished_socket_to_the_lost_connection_check(live_session):
    """The database still names a channel, but nothing holds the claim: not a silent camera."""
    live_session.connection_channel = "specific.test!page"
    live_session.started_at = live_session.frames_due_from = timezone.now() - timedelta(minutes=10)
    live_session.save()
    assert services.cameras_flag_silent() == 0
    hold(live_session)
    assert services.cameras_flag_silent() == 1


def test_it_waits_longer_while_the_server_slows_every_page_down(live_session):
    session = ExamSession.objects.select_related("candidate__exam").get(pk=live_session.pk)
    base = services.camera_silent_after(session)
    assert services.camera_silent_after(session, pace_factor=2.0) == 2 * base
    _connected_since(live_session, timezone.now() - timedelta(seconds=base + 1))
    assert services.cameras_flag_silent(pace_factor=2.0) == 0
    assert services.cameras_flag_silent(pace_factor=1.0) == 1


# ---------------------------------------------------------------- one alert per cause


@pytest.mark.services
async def test_it_makes_one_alert_of_thirty_second_devices(live_session):
    layer, listener = await _listen(live_session.exam)
    token = live_session.candidate.token
    first, _ = await _connect(token, resume="the-first-tab")
    try:
        for attempt in range(30):  # each with a fresh resume id, as thirty new tabs would
            second, reply = await _connect(token, resume=f"another-tab-{attempt:04d}")
            assert reply["code"] == "duplicate_session"
            await second.disconnect()
    finally:
        await first.disconnect()
    (event,) = [e async for e in Event.objects.filter(session=live_session, type="duplicate_session")]
    assert event.details["count"] == 30 and event.ended_at > event.started_at
    assert event.details["last_at"] == event.ended_at.isoformat()
    audited = AuditEntry.objects.filter(session=live_session, action="duplicate_session_refused")
    assert await audited.acount() == MAX_AUDITED_PER_CAUSE
    # Every push names the one alert: the grid adds it (and beeps) once, then updates its count.
    pushed = [e for e in await _pushed_events(layer, listener) if e["type"] == "duplicate_session"]
    assert {e["id"] for e in pushed} == {str(event.public_id)}
    assert pushed[-1]["details"]["count"] == 30
    (line,) = [line for line in risk_of([event]).lines]
    assert line.points == 30 and "30 times" in line.reason


@pytest.mark.services
async def test_it_caps_audited_socket_errors_per_session_not_per_connection(live_session):
    token = live_session.candidate.token
    sent = 0
    for _ in range(3):  # a broken page that reconnects and keeps sending garbage
        communicator, _ = await _connect(token)
        try:
            for _ in range(MAX_AUDITED_SOCKET_ERRORS // 2 + 1):
                await communicator.send_to(text_data="{not json")
                assert (await communicator.receive_json_from(timeout=5))["code"] == "malformed"
                sent += 1
        finally:
            await communicator.disconnect()
    assert sent > MAX_AUDITED_SOCKET_ERRORS
    audited = [a async for a in AuditEntry.objects.filter(session=live_session, action="bad_message")]
    assert len(audited) == MAX_AUDITED_SOCKET_ERRORS
    assert any("later ones are not" in a.details.get("note", "") for a in audited)


# ---------------------------------------------------------------- alerts close where they closed


@pytest.mark.services
async def test_it_tells_the_feed_when_the_end_of_the_attempt_closes_its_alerts(live_session):
    hidden = await sync_to_async(services.signal_record)(
        session=live_session, signal="tab_hidden", active=True
    )
    layer, listener = await _listen(live_session.exam)
    await sync_to_async(services.session_submit)(session=live_session)
    pushed = [e for e in await _pushed_events(layer, listener) if e["id"] == str(hidden.public_id)]
    assert pushed and pushed[-1]["open"] is False
    feed = await sync_to_async(live.exam_feed)(live_session.exam)
    assert [entry["event"]["open"] for entry in feed if entry["type"] == "event"] == [False]


def test_it_never_calls_an_alert_of_a_finished_attempt_ongoing(live_session):
    """An alert a past version left open when the attempt ended."""
    now = timezone.now()
    Event.objects.create(
        session=live_session, type="no_face", key="no_face", severity="medium", started_at=now, ended_at=now
    )
    live_session.submit(now=now)
    live_session.save()
    feed = live.exam_feed(live_session.exam)
    assert [entry["event"]["open"] for entry in feed] == [False]


def test_it_splits_a_camera_alert_at_a_lost_connection(live_session):
    start = timezone.now().timestamp()
    opened = EventAction("open", "multiple_faces", "multiple_faces", start, start + 4, 1.0, {"faces": 2})
    (event,) = services.events_apply(session=live_session, actions=[opened], evidence_jpeg=None)
    live_session.connection_channel = "specific.test!page"
    live_session.save()
    services.connection_close(session=live_session, channel_name="specific.test!page")
    live_session.refresh_from_db()
    event.refresh_from_db()
    assert not event.is_open and event.details["ended_by"] == "connection_lost"
    assert event.ended_at.timestamp() == pytest.approx(start + 4)  # the last frame that showed it
    # A frame analysed after the loss opens nothing while the page is away.
    later = EventAction("extend", "multiple_faces", "multiple_faces", start, start + 6, 1.0, {"faces": 2})
    assert services.events_apply(session=live_session, actions=[later], evidence_jpeg=None) == []
    # Back online, the second person is still there: the rules say "extend", the data a new alert.
    services.connection_open(session=live_session, channel_name="specific.test!again")
    live_session.refresh_from_db()
    later = EventAction("extend", "multiple_faces", "multiple_faces", start, start + 30, 1.0, {"faces": 2})
    (after,) = services.events_apply(session=live_session, actions=[later], evidence_jpeg=None)
    assert after.pk != event.pk and after.is_open and after.details["continued"]
    assert after.started_at.timestamp() == pytest.approx(start + 30)


def test_it_does_not_reopen_a_tab_switch_across_a_lost_connection(live_session):
    services.connection_open(session=live_session, channel_name="specific.test!page")
    before = services.signal_record(session=live_session, signal="tab_hidden", active=True)
    services.connection_close(session=live_session, channel_name="specific.test!page")
    services.connection_open(session=live_session, channel_name="specific.test!again")
    # Hidden again within the merge window, but on the far side of the lost connection.
    after = services.signal_record(session=live_session, signal="tab_hidden", active=True)
    assert after.pk != before.pk
    before.refresh_from_db()
    assert not before.is_open and before.details["ended_by"] == "connection_lost"


@pytest.mark.django_db
def test_it_closes_quietly_a_socket_whose_session_was_deleted(live_session):
    """loadtest's cleanup deletes its exam while the sockets still close: no error, nothing written."""
    from exams.models import AuditEntry

    pk, before = live_session.pk, AuditEntry.objects.count()
    live_session.delete()
    live_session.pk = pk
    services.connection_close(session=live_session, channel_name="specific.test!page")
    assert AuditEntry.objects.count() == before
