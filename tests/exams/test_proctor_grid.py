"""The proctors' tools for a big exam, server side: the grid's tiles and feed
history, acknowledging an alert, exam-wide actions and extra time, each audited,
pushed and on the report."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone
from pypdf import PdfReader

from exams import live, reports, services
from exams.clock import clock_text
from exams.models import AuditEntry, Event, ExamSession, Message
from proctor.asgi import application
from tests.conftest import _candidate, advance

ORIGIN = (b"origin", b"http://127.0.0.1")


def _alert(session, event_type="multiple_faces", *, severity="high", is_open=True, ago=0.0) -> Event:
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


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def _proctor_socket(exam, user) -> tuple[WebsocketCommunicator, dict]:
    client = await sync_to_async(_logged_in)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application, f"/ws/proctor/exams/{exam.code}/", headers=[ORIGIN, (b"cookie", cookie)]
    )
    connected, _ = await communicator.connect()
    assert connected
    snapshot = await communicator.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    return communicator, snapshot


async def _candidate_socket(session) -> tuple[WebsocketCommunicator, dict]:
    communicator = WebsocketCommunicator(
        application, f"/ws/take/{session.candidate.token}/", headers=[ORIGIN]
    )
    connected, _ = await communicator.connect()
    assert connected
    status = await communicator.receive_json_from(timeout=5)
    assert status["type"] == "status"
    return communicator, status


async def _next_of(communicator, kind: str) -> dict:
    """The next message of ``kind``, skipping the tile updates the grid also gets."""
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == kind:
            return message


def _flash(response) -> str:
    """What the page the proctor is sent back to says last."""
    return [str(m) for m in get_messages(response.wsgi_request)][-1]


# ---------------------------------------------------------------- tiles and feed


@pytest.mark.django_db
def test_it_gives_tiles_human_labels_risk_and_why_a_candidate_waits(live_session, exam):
    _alert(live_session, "identity_mismatch")
    _alert(live_session, "looking_away", severity="low", is_open=False)
    tile = live.session_payload(live_session)
    assert tile["open_flags"] == [
        {"type": "identity_mismatch", "label": "identity mismatch", "acknowledged": False}
    ]
    assert tile["open_high"] == 1
    assert tile["risk"] == 35  # 30 for the high alert, 5 for the low one
    assert tile["connected"] is False
    assert tile["waiting"] == ""

    stuck = _candidate(exam, "Ada Lovelace", "ada@example.org").session
    advance(stuck, "consented")
    stuck.verification_status = "multiple_faces"
    stuck.verification_attempts = 3
    stuck.save()
    assert live.session_payload(stuck)["waiting"] == "Several faces, 3 tries"
    assert live.session_payload(stuck)["state_label"] == "Consented"


@pytest.mark.django_db(transaction=True)
async def test_a_late_proctor_gets_the_open_alerts_and_the_recent_feed(live_session, exam, proctor):
    @sync_to_async
    def history():
        # An alert still open from long ago, then more recent history than the feed keeps.
        old = _alert(live_session, "camera_blocked", ago=3600)
        for i in range(live.FEED_HISTORY + 5):
            _alert(live_session, "no_face", severity="medium", is_open=False, ago=600 - i)
        services.message_from_candidate(session=live_session, text="My lamp went out.")
        return old

    old = await history()
    grid, snapshot = await _proctor_socket(exam, proctor)
    try:
        feed = snapshot["feed"]
        assert feed[0]["type"] == "event" and feed[0]["event"]["id"] == str(old.public_id)
        assert feed[0]["event"]["label"] == "camera blocked" and feed[0]["event"]["open"]
        assert len(feed) == 1 + live.FEED_HISTORY
        assert feed[-1] == {"type": "chat", "message": feed[-1]["message"]}
        assert feed[-1]["message"]["text"] == "My lamp went out."
        times = [e["event"]["started_at"] for e in feed[1:-1]]
        assert times == sorted(times)
    finally:
        await grid.disconnect()


# ---------------------------------------------------------------- acknowledge


@pytest.mark.django_db(transaction=True)
async def test_an_acknowledged_alert_is_audited_once_and_every_proctor_sees_who(
    live_session, exam, proctor, other_proctor
):
    await sync_to_async(exam.proctors.add)(other_proctor)
    alert = await sync_to_async(_alert)(live_session, "identity_mismatch")
    mine, _ = await _proctor_socket(exam, proctor)
    theirs, _ = await _proctor_socket(exam, other_proctor)
    try:
        client = await sync_to_async(_logged_in)(proctor)
        url = f"/proctor/events/{alert.public_id}/acknowledge"
        response = await sync_to_async(client.post)(url)
        assert response.status_code == 200
        assert response.json()["event"]["acknowledged_by"] == "proctor"
        for socket in (mine, theirs):
            # The alert goes out at once, the tile in the next batch: either may come first.
            got: dict[str, dict] = {}
            while len(got) < 2:
                message = await socket.receive_json_from(timeout=5)
                if message["type"] in ("event", "sessions"):
                    got[message["type"]] = message
            pushed = got["event"]
            assert pushed["event"]["id"] == str(alert.public_id)
            assert pushed["event"]["acknowledged_by"] == "proctor"
            tile = got["sessions"]["sessions"][0]
            assert tile["open_flags"][0]["acknowledged"] is True and tile["open_high"] == 0
        # The other proctor acknowledges it too late: the first one stands, audited once.
        other = await sync_to_async(_logged_in)(other_proctor)
        assert (await sync_to_async(other.post)(url)).json()["event"]["acknowledged_by"] == "proctor"
    finally:
        await mine.disconnect()
        await theirs.disconnect()

    @sync_to_async
    def check():
        alert.refresh_from_db()
        assert alert.acknowledged_by == proctor and alert.acknowledged_at is not None
        entries = AuditEntry.objects.filter(action="proctor_acknowledge")
        assert [(e.actor, e.session_id, e.details["type"]) for e in entries] == [
            (proctor, live_session.pk, "identity_mismatch")
        ]
        row = reports.exam_report(exam)[0]
        assert [(a["action"], a["by"]) for a in row["proctor_actions"]] == [("acknowledge", "proctor")]

    await check()


@pytest.mark.django_db
def test_only_the_exams_proctors_may_acknowledge(live_session, other_proctor, reviewer):
    alert = _alert(live_session)
    url = f"/proctor/events/{alert.public_id}/acknowledge"
    assert _logged_in(other_proctor).post(url).status_code == 404
    assert _logged_in(reviewer).post(url).status_code == 403
    assert Client().post(url).status_code == 302
    assert _logged_in(reviewer).get(url).status_code == 405
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


# ---------------------------------------------------------------- exam-wide actions


@pytest.fixture
def two_live(exam, live_session):
    other = _candidate(exam, "Ada Lovelace", "ada@example.org").session
    advance(other, "consented", "verified", "in_progress")
    waiting = _candidate(exam, "Alan Turing", "alan@example.org").session
    return live_session, other, waiting


@pytest.mark.django_db(transaction=True)
async def test_a_message_to_all_reaches_every_candidate_in_progress(exam, proctor, two_live):
    first, second, waiting = two_live
    sockets = [(await _candidate_socket(s))[0] for s in (first, second)]
    try:
        client = await sync_to_async(_logged_in)(proctor)
        response = await sync_to_async(client.post)(
            f"/proctor/exams/{exam.code}/action", {"action": "message_all", "text": "Ten minutes left."}
        )
        assert response.status_code == 302
        assert _flash(response) == "Sent your message to 2 candidates in the exam."
        for socket in sockets:
            told = await _next_of(socket, "message")
            assert told["text"] == "Ten minutes left."
    finally:
        for socket in sockets:
            await socket.disconnect()

    @sync_to_async
    def check():
        assert sorted(Message.objects.values_list("session__candidate__name", "text")) == [
            ("Ada Lovelace", "Ten minutes left."),
            ("Barack Obama", "Ten minutes left."),
        ]
        per_session = AuditEntry.objects.filter(action="proctor_message")
        assert {e.session_id for e in per_session} == {first.pk, second.pk}
        assert all(e.details["exam_wide"] for e in per_session)
        whole = AuditEntry.objects.get(action="proctor_message_all")
        assert whole.exam == exam and whole.details["sessions"] == 2 and whole.actor == proctor

    await check()


@pytest.mark.django_db(transaction=True)
async def test_pause_all_and_resume_all_reach_every_candidate_in_progress(exam, proctor, two_live):
    first, second, waiting = two_live
    socket, _ = await _candidate_socket(first)
    client = await sync_to_async(_logged_in)(proctor)
    url = f"/proctor/exams/{exam.code}/action"
    try:
        response = await sync_to_async(client.post)(url, {"action": "pause_all"})
        assert _flash(response) == "Paused the exam for 2 candidates."
        assert (await _next_of(socket, "pause"))["type"] == "pause"
        states = await sync_to_async(lambda: dict(ExamSession.objects.values_list("pk", "paused")))()
        assert states == {first.pk: True, second.pk: True, waiting.pk: False}
        # Already paused: nobody is paused twice.
        response = await sync_to_async(client.post)(url, {"action": "pause_all"})
        assert _flash(response) == "Paused the exam for 0 candidates."
        response = await sync_to_async(client.post)(url, {"action": "resume_all"})
        assert _flash(response) == "Resumed the exam for 2 candidates."
        assert (await _next_of(socket, "resume"))["type"] == "resume"
    finally:
        await socket.disconnect()
    paused = await sync_to_async(lambda: list(ExamSession.objects.filter(paused=True)))()
    assert paused == []
    actions = await sync_to_async(
        lambda: list(AuditEntry.objects.filter(session=first).values_list("action", flat=True))
    )()
    assert sorted(actions) == ["proctor_pause", "proctor_resume"]


@pytest.mark.django_db
def test_exam_actions_are_for_the_exams_proctors_only(exam, other_proctor, two_live):
    response = _logged_in(other_proctor).post(f"/proctor/exams/{exam.code}/action", {"action": "pause_all"})
    assert response.status_code == 404
    assert not ExamSession.objects.filter(paused=True).exists()


# ---------------------------------------------------------------- extra time and flash texts


@pytest.mark.django_db(transaction=True)
async def test_extra_time_moves_the_deadline_and_the_candidate_hears_it(live_session, proctor):
    socket, status = await _candidate_socket(live_session)
    before = await sync_to_async(
        lambda: ExamSession.objects.select_related("candidate__exam").get(pk=live_session.pk).deadline
    )()
    assert status["deadline"] == before.isoformat()
    client = await sync_to_async(_logged_in)(proctor)
    url = f"/proctor/sessions/{live_session.public_id}/extra-time"
    try:
        response = await sync_to_async(client.post)(url, {"minutes": "10"})
        told = await _next_of(socket, "deadline")
    finally:
        await socket.disconnect()
    after = before + timedelta(minutes=10)
    assert told == {"type": "deadline", "deadline": after.isoformat()}
    ends = clock_text(after)
    assert _flash(response) == f"Gave Barack Obama 10 more minutes. Their exam now ends at {ends}."

    @sync_to_async
    def check():
        session = ExamSession.objects.select_related("candidate__exam").get(pk=live_session.pk)
        assert session.extra_minutes == 10 and session.deadline == after
        entry = AuditEntry.objects.get(action="proctor_extra_time")
        assert entry.actor == proctor and entry.details["minutes"] == 10
        # A reconnecting page is told the new deadline too.
        return session

    await check()
    socket, status = await _candidate_socket(live_session)
    await socket.disconnect()
    assert status["deadline"] == after.isoformat()


@pytest.mark.django_db
@pytest.mark.parametrize("minutes", ["0", "-5", "241", "ten", ""])
def test_extra_time_refuses_what_is_not_1_to_240_minutes(live_session, proctor, minutes):
    response = _logged_in(proctor).post(
        f"/proctor/sessions/{live_session.public_id}/extra-time", {"minutes": minutes}
    )
    assert _flash(response) == "Extra time is a whole number of minutes, 1 to 240."
    live_session.refresh_from_db()
    assert live_session.extra_minutes == 0
    assert not AuditEntry.objects.filter(action="proctor_extra_time").exists()


@pytest.mark.django_db
def test_extra_time_adds_up_and_stops_once_the_exam_finished(live_session, proctor):
    services.session_extend(session=live_session, actor=proctor, minutes=5)
    services.session_extend(session=live_session, actor=proctor, minutes=7)
    live_session.refresh_from_db()
    assert live_session.extra_minutes == 12
    advance(live_session, "submitted")
    response = _logged_in(proctor).post(
        f"/proctor/sessions/{live_session.public_id}/extra-time", {"minutes": "5"}
    )
    assert _flash(response) == "The exam has finished, so extra time would change nothing."


@pytest.mark.django_db
@pytest.mark.parametrize(
    "action, text, flash",
    [
        ("end", "", "Ended Barack Obama's exam."),
        ("pause", "", "Paused Barack Obama's exam."),
        ("warn", "", "Warned Barack Obama."),
        ("message", "Hello", "Sent your message to Barack Obama."),
    ],
)
def test_a_proctor_is_told_plainly_what_happened(live_session, proctor, action, text, flash):
    response = _logged_in(proctor).post(
        f"/proctor/sessions/{live_session.public_id}/action", {"action": action, "text": text}
    )
    assert _flash(response) == flash


@pytest.mark.django_db
def test_the_end_button_asks_first_and_the_page_has_no_inline_script(live_session, proctor):
    page = _logged_in(proctor).get(f"/proctor/sessions/{live_session.public_id}/").content.decode()
    assert 'value="end" class="danger" data-confirm="End Barack Obama\'s exam now?' in page
    assert "onclick" not in page and "<script>" not in page
    assert 'id="timeline"' in page


@pytest.mark.django_db
def test_the_report_lists_the_proctors_actions(live_session, exam, proctor):
    services.proctor_act(session=live_session, actor=proctor, action="warn", text="Eyes on screen")
    services.session_extend(session=live_session, actor=proctor, minutes=5)
    services.exam_act(exam=exam, actor=proctor, action="pause_all")
    row = json.loads(reports.report_json(exam))["sessions"][0]
    assert [(a["action"], a["by"]) for a in row["proctor_actions"]] == [
        ("warn", "proctor"),
        ("extra_time", "proctor"),
        ("pause", "proctor"),
    ]
    assert row["proctor_actions"][2]["details"]["exam_wide"] is True
    reader = PdfReader(io.BytesIO(reports.report_render(exam, "pdf")))
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    assert "Proctor actions during the exam" in text
    assert "proctor: warn: Eyes on screen" in text
    assert "proctor: extra time, 5 min" in text
    assert "proctor: pause (whole exam)" in text
