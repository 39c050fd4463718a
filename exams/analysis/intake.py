"""The one entry into live analysis: hand a frame to the analysers (Celery
workers, or a thread pool in embedded mode).

The candidate websocket (camera frames) and the verification upload (identity
photos) both call ``submit``, and nothing else enters analysis. Nothing here
decodes or analyses an image. Tasks are queued by name, so this module never
imports the task module that imports it back.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from celery import current_app
from django.conf import settings
from django.db import close_old_connections

from exams import services
from exams.analysis.queue import CLAIMED, IDLE, QueuedFrame, frame_queue
from exams.models import ExamSession

log = logging.getLogger(__name__)

FRAME = "frame"
VERIFY = "verify"
# Under overload a page is asked for frames at most this many times further
# apart than the exam's interval (exams.consumers paces it).
SLOWEST_PACE = 4.0


@lru_cache(maxsize=1)
def _embedded_pool() -> ThreadPoolExecutor:
    """Off the event loop, in the web process: embedded mode only.

    One thread: dlib's models are not safe to call from two threads at once
    (two analysis threads crashed the web process with "free(): invalid size"
    in tests/exams/analysis/test_embedded_sqlite.py), and they hold the GIL,
    so a second thread would not have analysed any faster. Services mode
    runs one analysis per worker process instead."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="analyse")


# The task each kind of frame is analysed by, by registered name.
TASKS = {FRAME: "analysis.analyse_frame", VERIFY: "analysis.verify_identity"}
# Broker priority (Redis: kombu keeps a list per priority step and takes 0 first).
# At 9:00 the candidates already streaming must not keep those still at the door
# waiting: a verification photo goes before every queued camera frame.
PRIORITY = {VERIFY: 0, FRAME: 6}


def _schedule(kind: str, session_id: str, owner: str) -> None:
    """Queue the analysis that owns the session's busy flag (``owner``, its token)."""
    name = TASKS[kind]
    if settings.EMBEDDED:
        _embedded_pool().submit(_run_embedded, name, session_id, owner)
    else:
        signature = current_app.signature(name, kwargs={"session_id": session_id, "owner": owner})
        signature.apply_async(priority=PRIORITY[kind])


def _run_embedded(name: str, session_id: str, owner: str) -> None:
    try:
        # Imports CELERY_IMPORTS once, so the task is registered by name.
        current_app.loader.import_default_modules()
        current_app.tasks[name].run(session_id=session_id, owner=owner)
    except Exception:
        log.exception("embedded analysis of session %s failed", session_id)
    finally:
        close_old_connections()


def submit(kind: str, *, session: ExamSession, data: bytes) -> bool:
    """Queue the latest ``data`` of a session (a camera frame or a verification
    photo, by ``kind``) and schedule its analysis unless one is running.

    True if it replaced a frame that was still waiting: analysis lags behind
    this session's stream, and its sender should slow down."""
    session_id = str(session.public_id)
    if kind == VERIFY:
        services.verification_pending(session=session)
        seq = session.verification_attempts + 1
    else:
        seq = time.time_ns() // 1000  # monotonic across reconnects, unlike a per-connection counter
    frame = QueuedFrame(session_id=session_id, seq=seq, received_at=time.time(), data=data)
    put = frame_queue().put(kind, frame)
    if put.scheduled:
        _schedule(kind, session_id, put.owner)
    return put.replaced


def finished(kind: str, session_id: str, *, owner: str, failed: bool = False) -> None:
    """Called by the analyser when done (``failed`` if it raised: the database
    was down, say); picks up a frame that came in meanwhile. Only the owner
    of the session's busy flag releases it."""
    new_owner = frame_queue().release(kind, session_id, owner, failed=failed)
    if new_owner:
        _schedule(kind, session_id, new_owner)


def verification_recover(*, session: ExamSession) -> bool:
    """The verify page's status poll, for a session whose photo is "pending": make
    sure a result is coming. The queue's busy flag stands while an analysis is
    queued, and expires BUSY_TTL_SECONDS after the photo came in, longer than the
    task's hard time limit; the in-flight mark stands while an analysis runs (the
    hard limit ends it, and a redelivery clears it). So neither standing with the
    photo still waiting means its task was lost (the broker or a worker dropped
    it): queue it again. Neither and no photo, and still pending, means the photo
    was lost (the analyser failed, the photo waited past FRAME_TTL_SECONDS): the
    page is told to take another. So "pending" lasts at most about
    BUSY_TTL_SECONDS past an analysis that was never going to answer. Idempotent:
    many polls at once claim a waiting photo once, and a result written meanwhile
    is never overwritten. True if the session changed."""
    session_id = str(session.public_id)
    reclaim = frame_queue().reclaim(VERIFY, session_id)
    if reclaim.outcome == CLAIMED:
        # Or still queued behind a backlog longer than the flag lasts: then the copy finds nothing.
        log.warning("verification of session %s: no analysis queued or running, queued again", session_id)
        _schedule(VERIFY, session_id, reclaim.owner)
    elif reclaim.outcome == IDLE and services.verification_lost(session=session):
        log.warning("verification of session %s: its photo was lost, the page asks for another", session_id)
        return True
    return False
