"""Evidence clips: a bounded rolling buffer of recent frames per session, written
out as the frames before, at and after each event that opens."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from exams import clips
from exams.models import Event, EventFrame
from tests.conftest import photo_bytes
from tests.detection.detection_photos import jpeg, webcam_photo

pytestmark = [pytest.mark.services]


@pytest.fixture(params=["redis", "memory"])
def buffer(request, settings, monkeypatch):
    """The Redis buffer of a deployment, and the in-process one of embedded mode."""
    if request.param == "redis":
        chosen = clips.RedisClipBuffer(settings.REDIS_URL)
    else:
        chosen = clips.MemoryClipBuffer()
    monkeypatch.setattr(clips, "clip_buffer", lambda: chosen)
    return chosen


def _jpeg(n: int) -> bytes:
    """A distinct small 'JPEG' per frame: the real start bytes and a marker."""
    return b"\xff\xd8\xff\xe0" + f"frame-{n}".encode()


def _open_event(session, at) -> Event:
    return Event.objects.create(
        session=session,
        type="multiple_faces",
        key="multiple_faces",
        severity="high",
        started_at=at,
        ended_at=at,
        is_open=True,
    )


def _never():
    raise AssertionError("a small JPEG is kept as it is, never re-encoded")


def test_it_keeps_only_the_last_few_frames_of_a_session(buffer):
    session_id = uuid.uuid4().hex
    for n in range(10):
        clips.clip_frame_seen(session_id, taken_at=1000.0 + n, jpeg=_jpeg(n), reencode=_never)
    recent = buffer.recent(session_id)
    assert [f.jpeg for f in recent] == [_jpeg(n) for n in range(10 - clips.BEFORE, 10)]
    assert [f.taken_at for f in recent] == [1000.0 + n for n in range(10 - clips.BEFORE, 10)]
    buffer.forget(session_id)
    assert buffer.recent(session_id) == []


@pytest.mark.django_db
def test_it_stores_the_frames_before_at_and_after_an_event(buffer, live_session):
    session_id = str(live_session.public_id)
    start = timezone.now().timestamp()
    for n in range(6):  # quiet frames: nothing is written
        assert clips.clip_frame_seen(session_id, taken_at=start + n, jpeg=_jpeg(n), reencode=_never) == 0
    opened_at = start + 6
    event = _open_event(live_session, timezone.now())
    stored = clips.clip_frame_seen(
        session_id, taken_at=opened_at, jpeg=_jpeg(6), opened=[event], reencode=_never
    )
    assert stored == clips.BEFORE
    for n in range(7, 12):
        clips.clip_frame_seen(session_id, taken_at=start + n, jpeg=_jpeg(n), reencode=_never)

    frames = list(event.frames.all())
    kept = list(range(7 - clips.BEFORE, 7 + clips.AFTER))  # 3 before, the opening frame, 3 after
    assert [f.image.read() for f in frames] == [_jpeg(n) for n in kept]
    assert [f.taken_at.timestamp() for f in frames] == pytest.approx([start + n for n in kept])
    assert EventFrame.objects.count() == clips.BEFORE + clips.AFTER, "no frames after the clip is full"
    assert all(f.image.name.startswith("clips/") for f in frames)


@pytest.mark.django_db
def test_it_reencodes_only_a_frame_that_is_not_a_small_jpeg(buffer, live_session):
    session_id = str(live_session.public_id)
    event = _open_event(live_session, timezone.now())
    webcam = jpeg(webcam_photo("obama.jpg"), quality=70)  # what static/js/camera.js sends
    large = photo_bytes("obama.jpg")
    assert len(webcam) <= clips.MAX_KEPT_BYTES < len(large)
    clips.clip_frame_seen(session_id, taken_at=1.0, jpeg=webcam, opened=[event], reencode=_never)
    clips.clip_frame_seen(session_id, taken_at=2.0, jpeg=b"\x89PNG....", reencode=lambda: _jpeg(98))
    clips.clip_frame_seen(session_id, taken_at=3.0, jpeg=large, reencode=lambda: _jpeg(99))
    assert [f.image.read() for f in event.frames.all()] == [webcam, _jpeg(98), _jpeg(99)]


@pytest.mark.django_db
def test_it_writes_no_clip_for_an_event_deleted_meanwhile(buffer, live_session):
    session_id = str(live_session.public_id)
    event = _open_event(live_session, timezone.now())
    clips.clip_frame_seen(session_id, taken_at=1.0, jpeg=_jpeg(1), opened=[event], reencode=_never)
    event.delete()
    assert clips.clip_frame_seen(session_id, taken_at=2.0, jpeg=_jpeg(2), reencode=_never) == 0
    assert EventFrame.objects.count() == 0


@pytest.mark.django_db
def test_it_deletes_clip_files_with_the_evidence_after_retention(buffer, live_session, settings):
    from exams.services import exams_purge_expired

    session_id = str(live_session.public_id)
    event = _open_event(live_session, timezone.now())
    for n in range(3):
        clips.clip_frame_seen(
            session_id, taken_at=float(n), jpeg=_jpeg(n), opened=[event] if n == 0 else [], reencode=_never
        )
    paths = [f.image.path for f in event.frames.all()]
    assert len(paths) == 3 and all(os.path.exists(p) for p in paths)

    exam = live_session.exam
    exam.closes_at = timezone.now() - timedelta(days=exam.retention_days + 1)
    exam.opens_at = exam.closes_at - timedelta(hours=2)
    exam.save()
    totals = exams_purge_expired()
    assert totals["clip_frames"] == 3
    assert not any(os.path.exists(p) for p in paths)
    assert EventFrame.objects.count() == 0
