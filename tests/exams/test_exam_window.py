"""The exam window and the attempt's duration are enforced: no verification or
start outside opens_at..closes_at, and an attempt is submitted at its deadline."""

import io
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from pypdf import PdfReader

from exams import services
from exams.clock import clock_text
from exams.models import AuditEntry, ExamSession
from exams.reports import report_render
from tests.conftest import advance


def _move_window(exam, opens_in: timedelta, lasts: timedelta = timedelta(hours=2)) -> None:
    exam.opens_at = timezone.now() + opens_in
    exam.closes_at = exam.opens_at + lasts
    exam.save()


@pytest.mark.django_db
def test_it_lets_a_candidate_consent_early_but_not_verify_or_start(candidate):
    exam = candidate.exam
    _move_window(exam, timedelta(hours=1))
    client = Client()
    consent = client.get(f"/take/{candidate.token}/").content.decode()
    assert "not open yet" in consent
    assert f'datetime="{exam.opens_at.isoformat()}"' in consent  # for the page's time zone
    assert client.post(f"/take/{candidate.token}/", {"agree": "yes"}).status_code == 302
    verify = client.get(f"/take/{candidate.token}/verify/")
    assert verify.status_code == 403
    text = verify.content.decode()
    opens = clock_text(exam.opens_at, "datetime")
    assert opens.endswith(" UTC")  # the server's zone, named; clock.js shows the reader's
    iso = exam.opens_at.isoformat()
    assert f'This exam opens at <time datetime="{iso}" data-clock="datetime">{opens}</time>' in text
    assert "js/clock.js" in text
    photo = client.post(f"/take/{candidate.token}/verify/photo", b"\xff\xd8\xff0", content_type="image/jpeg")
    assert photo.status_code == 409 and photo.json()["error"] == "outside_window"
    assert photo.json()["opens_at"] == exam.opens_at.isoformat()
    session = candidate.session
    session.refresh_from_db()
    assert session.verification_status == ""  # nothing was queued
    advance(session, "verified")  # say it was verified by a proctor; the start still waits
    assert client.get(f"/take/{candidate.token}/exam/").status_code == 403
    session.refresh_from_db()
    assert session.state == "verified"
    with pytest.raises(services.OutsideWindow):
        services.session_start(session=session)


@pytest.mark.django_db
def test_it_refuses_a_verification_photo_analysed_after_the_close(candidate):
    session = candidate.session
    advance(session, "consented")
    _move_window(candidate.exam, -timedelta(hours=3), timedelta(hours=1))
    services.verification_compare(
        session=session, distance=0.2, threshold=0.5, match=True, photo_jpeg=b"", give_up_after=3
    )
    session.refresh_from_db()
    assert session.state == "consented" and "closed at" in session.verification_message


@pytest.fixture
def started(live_session):
    live_session.started_at = timezone.now() - timedelta(minutes=61)  # the exam lasts 60
    live_session.save()
    return live_session


@pytest.mark.django_db
def test_it_submits_overdue_attempts_and_records_why(started, other_candidate):
    fresh = other_candidate.session
    advance(fresh, "consented", "verified", "in_progress")  # started just now: time left
    assert services.sessions_submit_overdue() == 1
    started.refresh_from_db()
    fresh.refresh_from_db()
    assert started.state == "submitted" and started.end_reason == "time up"
    assert started.how_it_ended.startswith("Time up")
    assert fresh.state == "in_progress"
    entry = AuditEntry.objects.get(action="exam_time_up", session=started)
    assert entry.actor_label == "system" and entry.details["deadline"]
    assert services.sessions_submit_overdue() == 0  # idempotent
    exam = started.exam
    assert "Time up: submitted automatically" in report_render(exam, "csv").decode()
    assert "Time up: submitted automatically" in report_render(exam, "json").decode()
    pdf = PdfReader(io.BytesIO(report_render(exam, "pdf")))
    assert "Time up: submitted automatically" in " ".join(p.extract_text() for p in pdf.pages)


@pytest.mark.django_db
def test_it_gives_extra_time(started):
    started.extra_minutes = 5
    started.save()
    assert services.sessions_submit_overdue() == 0
    started.refresh_from_db()
    assert started.state == "in_progress"


@pytest.mark.django_db
def test_it_ends_at_the_windows_close_even_with_time_left(live_session):
    exam = live_session.exam
    exam.closes_at = timezone.now() - timedelta(seconds=1)
    exam.save()
    assert services.sessions_submit_overdue() == 1


@pytest.mark.django_db
def test_it_submits_lazily_when_the_candidate_comes_back_late(started):
    page = Client().get(f"/take/{started.candidate.token}/exam/")
    assert page.status_code == 302 and page["Location"].endswith("/done/")
    started.refresh_from_db()
    assert started.state == "submitted" and started.end_reason == "time up"
    done = Client().get(page["Location"]).content.decode()
    assert "Time was up, so your exam was submitted automatically" in done


@pytest.mark.django_db(transaction=True)
async def test_it_submits_lazily_when_the_candidates_socket_connects_late(started):
    from channels.testing import WebsocketCommunicator

    from proctor.asgi import application

    communicator = WebsocketCommunicator(
        application, f"/ws/take/{started.candidate.token}/", headers=[(b"origin", b"http://127.0.0.1")]
    )
    connected, _ = await communicator.connect()
    assert connected
    try:
        message = await communicator.receive_json_from(timeout=5)
        assert message["type"] == "ended" and "Time is up" in message["text"]
        assert (await communicator.receive_output(timeout=5))["type"] == "websocket.close"
    finally:
        await communicator.disconnect()
    session = await ExamSession.objects.aget(pk=started.pk)
    assert session.state == "submitted" and session.end_reason == "time up"


@pytest.mark.django_db(transaction=True)
async def test_it_submits_when_the_deadline_passes_during_the_socket(live_session):
    from channels.testing import WebsocketCommunicator

    from proctor.asgi import application

    live_session.started_at = timezone.now() - timedelta(minutes=60, seconds=-2)  # 2 s left
    await live_session.asave()
    communicator = WebsocketCommunicator(
        application, f"/ws/take/{live_session.candidate.token}/", headers=[(b"origin", b"http://127.0.0.1")]
    )
    connected, _ = await communicator.connect()
    assert connected
    try:
        assert (await communicator.receive_json_from(timeout=5))["type"] == "status"
        reloaded = await ExamSession.objects.select_related("candidate__exam").aget(pk=live_session.pk)
        left = (reloaded.deadline - timezone.now()).total_seconds()
        assert await communicator.receive_nothing(timeout=max(left, 0) + 0.2)
        await communicator.send_json_to({"type": "heartbeat"})  # the first message after the deadline
        message = await communicator.receive_json_from(timeout=5)
        assert message["type"] == "ended"
    finally:
        await communicator.disconnect()
    session = await ExamSession.objects.aget(pk=live_session.pk)
    assert session.state == "submitted" and session.end_reason == "time up"


def test_it_schedules_the_overdue_check_on_the_housekeeping_queue(settings):
    entries = {e["task"]: e for e in settings.CELERY_BEAT_SCHEDULE.values()}
    overdue = entries["exams.tasks.submit_overdue"]
    assert overdue["schedule"] <= 60
    for entry in entries.values():
        assert entry["options"]["queue"] == settings.HOUSEKEEPING_QUEUE
        assert 0 < entry["options"]["expires"] <= entry["schedule"]


@pytest.mark.django_db(transaction=True)  # the tasks close the connection after themselves
def test_it_runs_the_schedule_in_process_in_embedded_mode(started, settings):
    """Embedded mode has no beat: EmbeddedBeat runs each entry at its period."""
    from exams.tasks import EmbeddedBeat

    beat = EmbeddedBeat(settings.CELERY_BEAT_SCHEDULE)
    assert set(beat.tick(now=1000.0)) == set(settings.CELERY_BEAT_SCHEDULE)  # everything, at first
    started.refresh_from_db()
    assert started.state == "submitted" and started.end_reason == "time up"
    assert beat.tick(now=1001.0) == []  # nothing is due again yet
    assert "submit-overdue-exams" in beat.tick(now=1000.0 + 30)


@pytest.fixture
def extended_past_the_close(live_session):
    """Started 30 minutes ago, the window closed a minute ago, and 15 minutes of
    extra time: the attempt's deadline is 14 minutes from now."""
    exam = live_session.exam
    exam.closes_at = timezone.now() - timedelta(minutes=1)
    exam.save()
    live_session.started_at = timezone.now() - timedelta(minutes=30)
    live_session.extra_minutes = 15
    live_session.save()
    assert live_session.deadline > timezone.now() > exam.closes_at
    return live_session


@pytest.mark.django_db
def test_it_keeps_the_link_of_extra_time_past_the_close_until_the_deadline(extended_past_the_close):
    session = extended_past_the_close
    not_started = services.session_for_candidate(
        services.candidate_add(exam=session.exam, name="Late Comer", email="late@example.org")
    )
    link = f"/take/{session.candidate.token}"
    assert Client().get(f"{link}/exam/").status_code == 200
    assert Client().get(f"/take/{not_started.candidate.token}/").status_code == 410  # no extra time
    assert services.sessions_submit_overdue() == 0
    finish = Client().post(f"{link}/finish")
    assert finish.status_code == 302 and finish["Location"].endswith("/done/")
    assert Client().get(finish["Location"]).status_code == 200  # still until the deadline
    session.refresh_from_db()
    assert session.state == "submitted" and session.end_reason == ""


@pytest.mark.django_db
def test_it_expires_the_link_at_the_extended_deadline(extended_past_the_close):
    session = extended_past_the_close
    exam = session.exam
    exam.closes_at -= timedelta(minutes=15)  # the extended deadline passed a minute ago
    exam.save()
    assert Client().get(f"/take/{session.candidate.token}/exam/").status_code == 410
    assert services.sessions_submit_overdue() == 1


@pytest.mark.django_db(transaction=True)
async def test_it_lets_the_socket_of_extra_time_past_the_close_connect(extended_past_the_close):
    from tests.exams.test_candidate_socket import _connect

    communicator, status = await _connect(extended_past_the_close.candidate.token)
    try:
        assert status["type"] == "status" and status["state"] == "in_progress"
    finally:
        await communicator.disconnect()
