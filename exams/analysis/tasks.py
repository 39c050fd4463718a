"""Celery tasks: thin wrappers that hand a session id to the pipeline.

Registered under fixed names (``analysis.*``); ``intake`` queues them by name.

Both are idempotent: the frame is taken from a latest-wins queue (a duplicate
delivery finds nothing to take) and the pipeline ignores frames whose
sequence number it has already analysed. So ``acks_late`` is safe, and a
worker that dies mid-frame has the frame redelivered.

Both have time limits below the queue's BUSY_TTL_SECONDS: a frame stuck past
the soft limit raises SoftTimeLimitExceeded inside the
pipeline, which gives the session's queue slot back (counted as lost) so the
next frame is analysed, instead of the session waiting for the busy flag to
expire.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from exams.analysis import pipeline

log = logging.getLogger(__name__)

# One frame takes well under a second (docs/performance.md), a worker's first
# frame a few seconds more while the models load. The hard limit stays below
# queue.BUSY_TTL_SECONDS, so a session's busy flag never expires under a
# live analysis.
SOFT_TIME_LIMIT, TIME_LIMIT = 20, 25
LIMITS = {"soft_time_limit": SOFT_TIME_LIMIT, "time_limit": TIME_LIMIT}


@shared_task(
    name="analysis.analyse_frame", acks_late=True, reject_on_worker_lost=True, ignore_result=True, **LIMITS
)
def analyse_frame(*, session_id: str, owner: str = "") -> str:
    """State before: a frame may wait in the queue. After: it is analysed, events stored and pushed."""
    try:
        return pipeline.analyse_next_frame(session_id, owner=owner)
    except SoftTimeLimitExceeded:
        log.warning("analysis of session %s hit the soft time limit; its frame is dropped", session_id)
        return "time limit"


@shared_task(
    name="analysis.verify_identity", acks_late=True, reject_on_worker_lost=True, ignore_result=True, **LIMITS
)
def verify_identity(*, session_id: str, owner: str = "") -> str:
    """State before: a consented session with a verification photo waiting.
    After: verified, or told why not."""
    try:
        return pipeline.verify_next_photo(session_id, owner=owner)
    except SoftTimeLimitExceeded:
        log.warning("verification of session %s hit the soft time limit; the photo is dropped", session_id)
        return "time limit"
