"""Hand frames to the analysers: Celery workers, or a thread pool in embedded mode.

Called from the websocket consumer and from the verification view. Nothing
here decodes or analyses an image.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache

from detection.queue import QueuedFrame, frame_queue

log = logging.getLogger(__name__)

FRAME = "frame"
VERIFY = "verify"
THUMBNAIL_TTL_SECONDS = 60


def thumbnail_key(session_id: str) -> str:
    return f"thumb:{session_id}"


@lru_cache(maxsize=1)
def _embedded_pool() -> ThreadPoolExecutor:
    # Off the event loop, in the web process: embedded mode only.
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="analyse")


def _schedule(kind: str, session_id: str) -> None:
    from detection import tasks

    task = tasks.analyse_frame if kind == FRAME else tasks.verify_identity
    if settings.EMBEDDED:
        _embedded_pool().submit(_run_embedded, task, session_id)
    else:
        task.delay(session_id=session_id)


def _run_embedded(task, session_id: str) -> None:
    from django.db import close_old_connections

    try:
        task.run(session_id=session_id)
    except Exception:
        log.exception("embedded analysis of session %s failed", session_id)
    finally:
        close_old_connections()


def submit(kind: str, *, session_id: str, seq: int, data: bytes) -> None:
    """Queue the latest frame of a session; schedule an analysis unless one is running."""
    frame = QueuedFrame(session_id=session_id, seq=seq, received_at=time.time(), data=data)
    if kind == FRAME:
        cache.set(thumbnail_key(session_id), data, THUMBNAIL_TTL_SECONDS)
    if frame_queue().put(kind, frame):
        _schedule(kind, session_id)


def finished(kind: str, session_id: str) -> None:
    """Called by the analyser when done; picks up a frame that came in meanwhile."""
    if frame_queue().release(kind, session_id):
        _schedule(kind, session_id)
