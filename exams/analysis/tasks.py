"""Celery tasks: thin wrappers that hand a session id to the pipeline.

Registered under fixed names (``analysis.*``); ``intake`` queues them by name.

Both are idempotent: the frame is taken from a latest-wins queue (a duplicate
delivery finds nothing to take) and the pipeline ignores frames whose
sequence number it has already analysed. So ``acks_late`` is safe, and a
worker that dies mid-frame has the frame redelivered.
"""

from __future__ import annotations

from celery import shared_task

from exams.analysis import pipeline


@shared_task(name="analysis.analyse_frame", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def analyse_frame(*, session_id: str) -> str:
    """State before: a frame may wait in the queue. After: it is analysed, events stored and pushed."""
    return pipeline.analyse_next_frame(session_id)


@shared_task(name="analysis.verify_identity", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def verify_identity(*, session_id: str) -> str:
    """State before: a consented session with a verification photo waiting.
    After: verified, or told why not."""
    return pipeline.verify_next_photo(session_id)
