"""The frame pipeline on a real Celery worker, real Redis and real PostgreSQL."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from detection.core import decode_image
from exams import clips, live
from exams.analysis import intake, pipeline
from exams.analysis.queue import QueuedFrame, frame_queue
from exams.models import Event, ExamSession
from tests.detection.detection_photos import jpeg, photo, side_by_side, webcam_photo

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _with_sensor_noise(image: np.ndarray, seed: int) -> np.ndarray:
    """A real webcam never repeats a frame exactly; identical frames mean a frozen feed."""
    noise = np.random.default_rng(seed).normal(0, 2.0, image.shape).round()
    return np.clip(image.astype(np.int16) + noise.astype(np.int16), 0, 255).astype(np.uint8)


@pytest.fixture
def two_faces() -> np.ndarray:
    return side_by_side(photo("obama.jpg"), photo("biden.jpg"), height=480)


@pytest.fixture
def two_faces_jpeg(two_faces) -> bytes:
    return jpeg(two_faces)


def _wait_for(predicate, timeout: float = 60.0, step: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def test_it_turns_a_persisting_second_face_into_one_live_event(
    celery_worker_process, live_session, two_faces
):
    exam = live_session.exam
    exam.frame_interval = 1.0
    exam.save()
    layer = get_channel_layer()
    listener = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(live.exam_group(exam.code), listener)
    session_id = str(live_session.public_id)

    def send_and_wait(picture: np.ndarray, seq: int) -> None:
        """One frame per interval, each analysed before the next: a loaded machine
        then cannot make the latest-wins queue skip frames and break the sequence."""
        sent_at = time.monotonic()
        data = jpeg(_with_sensor_noise(picture, seq))
        intake.submit(intake.FRAME, session=live_session, data=data)
        _wait_for(lambda: frame_queue().idle(intake.FRAME, session_id), step=0.05)
        time.sleep(max(0.0, exam.frame_interval - (time.monotonic() - sent_at)))

    send_and_wait(photo("obama.jpg"), 0)  # the worker loads its models on the first frame
    for seq in range(1, 7):  # ~6 s of a second person in view
        send_and_wait(two_faces, seq)

    events = _wait_for(lambda: list(Event.objects.filter(session=live_session, type="multiple_faces")))
    _wait_for(lambda: frame_queue().idle(intake.FRAME, session_id))
    events = list(Event.objects.filter(session=live_session, type="multiple_faces"))
    assert len(events) == 1, "a persisting condition is one event whose end moves forward"
    event = events[0]
    assert event.ended_at > event.started_at
    assert event.details["faces"] == 2 and event.severity == "high"
    assert event.evidence and event.evidence.size > 1000
    # Its clip: the frames before the one that opened it (the buffer, bounded
    # to clips.BEFORE), that frame, and the frames after it as they came.
    clip = list(event.frames.all())
    opened = event.evidence.read()
    at = [f.image.read() for f in clip].index(opened)
    assert 1 <= at <= clips.BEFORE - 1, "the frames before the event, then the one that opened it"
    assert 1 <= len(clip) - at - 1 <= clips.AFTER, "and the frames after it"
    assert all(a.taken_at < b.taken_at for a, b in zip(clip, clip[1:], strict=False))
    session = ExamSession.objects.get(pk=live_session.pk)
    assert session.frames_analysed == 7
    assert session.last_faces == 2
    assert live.picture(session_id) is not None  # the latest frame, for a proctor's page
    # A new picture at most every PICTURE_EVERY_SECONDS: kept from the first frame,
    # then from the frame 3 s later, and so on; the state says when the last one was.
    assert session.analysis_state["picture_at"] >= session.last_frame_at.timestamp() - 3
    thumbnail = live.thumbnails([session_id])[session_id]
    assert thumbnail.startswith("data:image/jpeg;base64,")
    assert decode_image(base64.b64decode(thumbnail.split(",", 1)[1])).shape == (120, 160, 3)

    pushed = []
    while True:
        try:
            pushed.append(async_to_sync(layer.receive)(listener))
        except Exception:
            break
        if any(m["payload"].get("type") == "event" for m in pushed):
            break
    alert = next(m["payload"]["event"] for m in pushed if m["payload"].get("type") == "event")
    assert alert["type"] == "multiple_faces" and alert["candidate"] == "Barack Obama"


def test_it_lets_the_candidate_pass_identity_verification(celery_worker_process, candidate):
    from tests.conftest import advance

    session = candidate.session
    advance(session, "consented")
    intake.submit(
        intake.VERIFY, session=ExamSession.objects.get(pk=session.pk), data=jpeg(webcam_photo("obama2.jpg"))
    )
    session = _wait_for(lambda: ExamSession.objects.filter(pk=session.pk, state="verified").first())
    assert session.verification_status == "matched"
    assert session.verification_distance < 0.5


def test_it_refuses_a_stranger_twice_then_flags_for_a_human(celery_worker_process, candidate):
    from tests.conftest import advance

    session = candidate.session
    advance(session, "consented")
    biden = jpeg(webcam_photo("biden.jpg"))
    for attempt in (1, 2):
        intake.submit(intake.VERIFY, session=ExamSession.objects.get(pk=session.pk), data=biden)
        _wait_for(lambda n=attempt: ExamSession.objects.get(pk=session.pk).verification_attempts == n)
        refused = ExamSession.objects.get(pk=session.pk)
        assert refused.state == "consented" and refused.verification_status == "mismatch"
        assert "did not match" in refused.verification_message
    intake.submit(intake.VERIFY, session=ExamSession.objects.get(pk=session.pk), data=biden)
    flagged = _wait_for(lambda: ExamSession.objects.filter(pk=session.pk, state="verified").first())
    assert flagged.verification_status == "mismatch_flagged"
    event = Event.objects.get(session=session, type="identity_mismatch")
    assert event.details["stage"] == "verification" and event.details["distance"] > event.details["threshold"]


@pytest.mark.django_db(transaction=True)
def test_it_ignores_a_duplicate_delivery_and_a_replayed_frame(live_session, two_faces_jpeg):
    """Run in-process: the task body is idempotent whoever runs it."""
    session_id = str(live_session.public_id)
    frame_queue().put(intake.FRAME, QueuedFrame(session_id, 5, time.time(), two_faces_jpeg))
    assert pipeline.analyse_next_frame(session_id).startswith("analysed")
    assert pipeline.analyse_next_frame(session_id) == "no frame"  # the same task delivered twice
    frame_queue().put(intake.FRAME, QueuedFrame(session_id, 5, time.time(), two_faces_jpeg))
    assert pipeline.analyse_next_frame(session_id) == "already analysed"
    assert ExamSession.objects.get(pk=live_session.pk).frames_analysed == 1


def test_it_captures_an_unverified_reference_when_the_roster_had_no_photo(celery_worker_process, exam):
    from exams.models import AuditEntry
    from tests.conftest import _candidate, advance

    newcomer = _candidate(exam, "No Photo", "nophoto@example.org")
    session = newcomer.session
    advance(session, "consented")
    intake.submit(
        intake.VERIFY, session=ExamSession.objects.get(pk=session.pk), data=jpeg(webcam_photo("obama.jpg"))
    )
    session = _wait_for(lambda: ExamSession.objects.filter(pk=session.pk, state="verified").first())
    newcomer.refresh_from_db()
    assert session.verification_status == "captured_reference"
    assert newcomer.reference_unverified and len(newcomer.reference_encodings[0]) == 128
    assert newcomer.reference_photo
    assert AuditEntry.objects.filter(action="reference_captured", session=session).exists()


@pytest.mark.django_db(transaction=True)
def test_it_tells_the_candidate_why_no_face_was_found(candidate):
    """Run in-process, like a worker would: a dark room, a covered lens, an empty chair."""
    import cv2

    from tests.conftest import advance

    session = candidate.session
    advance(session, "consented")
    session_id = str(session.public_id)
    room = cv2.resize(photo("obama.jpg")[0:400, 0:320], (640, 480))  # the curtains and flag, nobody in view
    rng = np.random.default_rng(1)
    pictures = {
        "too dark to find a face (brightness 7 of 255)": np.clip(
            room * 0.08 + rng.normal(0, 1.5, room.shape), 0, 255
        ),
        "is the camera covered": np.full((480, 640, 3), 128.0) + rng.normal(0, 1.0, (480, 640, 3)),
        "lit from the front (not only from a window behind you)": room,
    }
    for seq, (reason, picture) in enumerate(pictures.items(), start=1):
        frame_queue().put(
            intake.VERIFY,
            QueuedFrame(session_id, seq, time.time(), jpeg(picture.astype(np.uint8))),
        )
        assert pipeline.verify_next_photo(session_id) == "no_face"
        refused = ExamSession.objects.get(pk=session.pk)
        assert refused.state == "consented" and refused.verification_status == "no_face"
        assert reason in refused.verification_message, refused.verification_message


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("behind", [False, True])
def test_a_first_frame_that_waited_puts_its_identity_check_off(live_session, behind):
    """Run in-process. At 9:00 an exam hall's first frames wait behind each
    other; a first frame that waited leaves its identity check for a frame at
    most FIRST_IDENTITY_WITHIN_SECONDS later. One that did not wait checks it."""
    import redis
    from django.conf import settings

    from exams.analysis.pacing import RedisPacing

    redis.Redis.from_url(settings.REDIS_URL).delete(RedisPacing.KEY)  # no pace slowed down
    session_id = str(live_session.public_id)
    waited = 2.0 if behind else 0.0
    received = time.time() - waited
    frame = QueuedFrame(session_id, int(received * 1e6), received, jpeg(webcam_photo("obama.jpg")))
    frame_queue().put(intake.FRAME, frame)
    assert pipeline.analyse_next_frame(session_id).startswith("analysed")

    stream = ExamSession.objects.get(pk=live_session.pk).analysis_state["stream"]
    assert stream["faces"] == 1
    if behind:
        assert "t_identity" not in stream and stream["identity"] is None
        put_off = stream["identity_after"] - received
        assert 0 < put_off <= pipeline.FIRST_IDENTITY_WITHIN_SECONDS
    else:
        assert "t_identity" in stream and stream["identity"] is not None
        assert "identity_after" not in stream


@pytest.mark.parametrize(
    ("last_at", "now", "due"),
    [
        (None, 100.0, True),  # no picture yet
        ("junk", 100.0, True),  # a state from elsewhere: take a picture rather than none
        (100.0, 100.0, False),
        (100.0, 100.0 + live.PICTURE_EVERY_SECONDS - 0.01, False),
        (100.0, 100.0 + live.PICTURE_EVERY_SECONDS, True),
        (100.0, 90.0, True),  # a clock that went back does not hold the pictures off
    ],
)
def test_a_picture_is_due_at_most_every_few_seconds(last_at, now, due):
    assert live.picture_due(last_at, now) is due


def _stranded_photo(session: ExamSession, data: bytes) -> str:
    """A verification photo whose task the broker lost: pending, the photo waiting,
    and no busy flag (it expired BUSY_TTL_SECONDS after the photo came in)."""
    from exams import services

    session_id = str(session.public_id)
    services.verification_pending(session=session)
    put = frame_queue().put(intake.VERIFY, QueuedFrame(session_id, 1, time.time(), data))
    assert put.scheduled  # ...and then never scheduled
    frame_queue().redis.delete(f"proctor:{intake.VERIFY}-busy:{session_id}")
    return session_id


def test_it_queues_a_lost_verification_again_when_the_page_polls(celery_worker_process, candidate):
    from django.test import Client

    from tests.conftest import advance

    session = candidate.session
    advance(session, "consented")
    _stranded_photo(ExamSession.objects.get(pk=session.pk), jpeg(webcam_photo("obama2.jpg")))
    client = Client()

    def poll() -> dict:
        return client.get(f"/take/{candidate.token}/verify/status").json()

    assert poll()["status"] == "pending"  # this poll queued it again
    verified = _wait_for(lambda: (status := poll())["state"] == "verified" and status)
    assert verified["status"] == "matched"
    assert ExamSession.objects.get(pk=session.pk).verification_attempts == 1  # analysed once


def test_it_tells_the_page_when_a_verification_photo_was_lost(celery_worker_process, candidate):
    """The analyser took the photo and failed (the database refused it, say): nothing
    will answer, so the poll says to take another, and that one is checked."""
    from django.test import Client

    from tests.conftest import advance

    session = candidate.session
    advance(session, "consented")
    session_id = _stranded_photo(ExamSession.objects.get(pk=session.pk), b"lost")
    assert frame_queue().take(intake.VERIFY, session_id) is not None
    frame_queue().release(intake.VERIFY, session_id, "", failed=True)
    client = Client()
    status = client.get(f"/take/{candidate.token}/verify/status").json()
    assert status["state"] == "consented" and status["status"] == ""
    assert "Take it again" in status["message"]

    photo_url = f"/take/{candidate.token}/verify/photo"
    sent = client.post(photo_url, jpeg(webcam_photo("obama2.jpg")), content_type="image/jpeg")
    assert sent.status_code == 202
    verified = _wait_for(
        lambda: (
            (s := client.get(f"/take/{candidate.token}/verify/status").json())["state"] == "verified" and s
        )
    )
    assert verified["status"] == "matched"
