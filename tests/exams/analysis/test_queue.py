"""The latest-wins frame queue, on real Redis and in memory: it counts what it
drops, and what a dead analyser lost."""

from __future__ import annotations

import time
import uuid

import pytest
from django.core.management import call_command

from exams.analysis.queue import MemoryFrameQueue, QueuedFrame, RedisFrameQueue


@pytest.fixture(params=["redis", "memory"])
def queue(request, settings):
    if request.param == "memory":
        return MemoryFrameQueue()
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    return RedisFrameQueue(settings.REDIS_URL)


def _frame(session_id: str, seq: int, age: float = 0.0) -> QueuedFrame:
    return QueuedFrame(session_id, seq, time.time() - age, b"jpeg-%d" % seq)


def _delta(before, after) -> dict[str, int]:
    changes = {k: after.counters.get(k, 0) - before.counters.get(k, 0) for k in after.counters}
    return {k: v for k, v in changes.items() if v}


def test_it_keeps_only_the_latest_frame_and_counts_the_replaced_one(queue):
    session = uuid.uuid4().hex
    before = queue.stats("frame")
    first = queue.put("frame", _frame(session, 1, age=4.0))
    assert first.scheduled and not first.replaced
    second = queue.put("frame", _frame(session, 2, age=3.0))
    assert second.replaced and not second.scheduled  # one analysis is already scheduled
    during = queue.stats("frame")
    assert during.waiting >= 1 and during.oldest_wait_seconds >= 3.0
    assert queue.take("frame", session).seq == 2
    assert queue.release("frame", session, first.owner) == "" and queue.idle("frame", session)
    assert _delta(before, queue.stats("frame")) == {"received": 2, "replaced": 1, "taken": 1}


def test_a_failed_analysis_counts_its_frame_lost_and_frees_the_session(queue):
    session = uuid.uuid4().hex
    before = queue.stats("frame")
    first = queue.put("frame", _frame(session, 1))
    assert queue.take("frame", session).seq == 1
    assert queue.release("frame", session, first.owner, failed=True) == "" and queue.idle("frame", session)
    assert _delta(before, queue.stats("frame")) == {"received": 1, "taken": 1, "lost": 1}


@pytest.mark.services
def test_it_reports_a_frame_whose_analyser_died_as_lost(settings):
    """Redis only: in one process an analyser cannot die without the queue."""
    queue = RedisFrameQueue(settings.REDIS_URL)
    session = uuid.uuid4().hex
    before = queue.stats("frame")
    first = queue.put("frame", _frame(session, 1))
    assert queue.take("frame", session).seq == 1  # ... and the worker is killed here
    queue.put("frame", _frame(session, 2))
    assert queue.take("frame", session).seq == 2  # the next analysis notices
    assert queue.release("frame", session, first.owner) == "" and queue.idle("frame", session)
    assert _delta(before, queue.stats("frame")) == {"received": 2, "taken": 2, "lost": 1}


def test_it_prints_the_queue_status(capsys, settings):
    call_command("analysis_status")
    out = capsys.readouterr().out
    assert "oldest wait" in out and "broker tasks waiting" in out


def test_it_lets_only_the_owner_release_the_busy_flag(queue):
    """A stale analyser (its flag expired and a newer analysis took the session
    over) must not clear the newer one's flag, or two analyses of one session
    would run at once and its stream state would go out of order."""
    session = uuid.uuid4().hex
    stale = queue.put("frame", _frame(session, 1))
    assert stale.scheduled and stale.owner
    queue.take("frame", session)
    queue.forget("frame", session)  # stands for the flag expiring under a stuck analyser
    current = queue.put("frame", _frame(session, 2))
    assert current.scheduled and current.owner != stale.owner
    assert queue.release("frame", session, stale.owner) == ""  # the stale finisher
    assert not queue.idle("frame", session)
    assert not queue.put("frame", _frame(session, 3)).scheduled  # still busy: no second analysis
    assert queue.take("frame", session).seq == 3
    assert queue.release("frame", session, current.owner) == "" and queue.idle("frame", session)


def test_it_hands_the_flag_to_a_new_owner_when_a_frame_waits(queue):
    session = uuid.uuid4().hex
    first = queue.put("frame", _frame(session, 1))
    queue.take("frame", session)
    queue.put("frame", _frame(session, 2))  # arrives while the first is analysed
    second = queue.release("frame", session, first.owner)
    assert second and second != first.owner
    assert queue.release("frame", session, first.owner) == ""  # the first owner is done for good
    queue.take("frame", session)
    assert queue.release("frame", session, second) == "" and queue.idle("frame", session)


@pytest.mark.django_db
def test_it_gives_the_slot_back_when_analysis_hits_its_soft_time_limit(settings, monkeypatch):
    """A stuck analysis (SoftTimeLimitExceeded) releases the session's busy flag
    at once, so the session's next frame is analysed, instead of waiting for
    the flag to expire; the frame is counted as lost."""
    from celery.exceptions import SoftTimeLimitExceeded

    from exams.analysis import intake, pipeline, tasks
    from exams.analysis.queue import BUSY_TTL_SECONDS, frame_queue

    assert tasks.analyse_frame.time_limit < BUSY_TTL_SECONDS  # a live analysis keeps its flag
    assert tasks.analyse_frame.soft_time_limit < tasks.analyse_frame.time_limit
    scheduled = []
    monkeypatch.setattr(intake, "_schedule", lambda kind, session_id, owner: scheduled.append(owner))

    def stuck(session_id):
        frame_queue().take(intake.FRAME, session_id)
        frame_queue().put(intake.FRAME, _frame(session_id, 2))  # the next frame arrives meanwhile
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(pipeline, "_analyse_next_frame", stuck)
    session = uuid.uuid4().hex
    before = frame_queue().stats("frame")
    put = frame_queue().put(intake.FRAME, _frame(session, 1))
    assert tasks.analyse_frame.run(session_id=session, owner=put.owner) == "time limit"
    assert len(scheduled) == 1 and scheduled[0] != put.owner  # the next frame got the slot
    assert _delta(before, frame_queue().stats("frame"))["lost"] == 1
    frame_queue().forget(intake.FRAME, session)


def test_it_queues_a_verification_photo_before_every_camera_frame(settings):
    """At 9:00 the candidates already streaming must not hold up those still waiting
    to get in: the broker (kombu's Redis transport takes priority 0 first) holds a
    verification task in the first list and a frame task in a later one."""
    import json

    import redis
    from celery import current_app

    from exams.analysis import intake

    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    broker = redis.Redis.from_url(settings.REDIS_URL)
    session = uuid.uuid4().hex
    eager = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = False
    try:
        intake._schedule(intake.FRAME, session, "frame-owner")
        intake._schedule(intake.VERIFY, session, "verify-owner")
    finally:
        current_app.conf.task_always_eager = eager

    def ours(key: str) -> list[bytes]:
        return [raw for raw in broker.lrange(key, 0, -1) if session in raw.decode()]

    first, later = ours("celery"), ours("celery\x06\x166")
    for raw in first + later:  # no worker may run them: the session does not exist anyway
        broker.lrem("celery", 0, raw)
        broker.lrem("celery\x06\x166", 0, raw)
    assert [json.loads(raw)["headers"]["task"] for raw in first] == ["analysis.verify_identity"]
    assert [json.loads(raw)["headers"]["task"] for raw in later] == ["analysis.analyse_frame"]
