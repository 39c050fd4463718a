"""Scheduled housekeeping (run by celery beat, or by ``EmbeddedBeat`` in embedded mode).

Housekeeping runs on its own queue (``HOUSEKEEPING_QUEUE``, see
``CELERY_TASK_ROUTES``), so a backlog of frames never delays an overdue
exam's submission, and each beat entry ``expires``: a run that waited
longer than its own period is dropped, the next one does the same work.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache

from celery import current_app, shared_task
from django.conf import settings
from django.db import close_old_connections

from exams import services
from exams.analysis.pacing import pacing

log = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=1800, time_limit=1900)
def purge_expired() -> dict:
    """Idempotent: exams already purged are skipped, a half-done purge resumes;
    then media files that no row refers to (past the grace period) are swept."""
    totals = services.exams_purge_expired()
    services.media_sweep()
    return totals


@shared_task(ignore_result=True)
def mark_stale_connections() -> int:
    return services.connections_mark_stale()


@shared_task(acks_late=True, ignore_result=True)
def submit_overdue() -> int:
    """State before: attempts in progress, some past their deadline. After:
    those are submitted with end_reason "time up" and an audit entry.
    Idempotent: an attempt already submitted is skipped."""
    return services.sessions_submit_overdue()


@shared_task(ignore_result=True)
def flag_silent_cameras() -> int:
    """State before: connected attempts in progress, some whose camera gave no
    analysable frame for CAMERA_SILENT_INTERVALS intervals (scaled by the
    server's pace factor). After: each of those has one open camera_silent
    alert, and one heard from again (or paused, or gone) has it closed.
    Idempotent: a second run changes nothing. Opening is this task's (nothing
    else runs when no frame comes); closing on a frame is the pipeline's."""
    return services.cameras_flag_silent(pace_factor=pacing().factor())


class EmbeddedBeat:
    """Embedded mode has no Celery beat: a daemon thread of the web process
    runs the entries of ``CELERY_BEAT_SCHEDULE`` in-process, each at its own
    period, so overdue exams are submitted, stale connections closed and silent
    cameras flagged there too."""

    TICK_SECONDS = 5.0

    def __init__(self, schedule: dict) -> None:
        self.schedule = schedule
        self.last_run: dict[str, float] = {}

    def due(self, now: float) -> list[str]:
        """The entries whose period has passed since they last ran (all of them at first)."""
        return [
            name
            for name, entry in self.schedule.items()
            if now - self.last_run.get(name, float("-inf")) >= float(entry["schedule"])
        ]

    def tick(self, now: float | None = None) -> list[str]:
        """Run what is due; the names run."""
        now = time.monotonic() if now is None else now
        ran = self.due(now)
        for name in ran:
            self.last_run[name] = now
            task = current_app.tasks[self.schedule[name]["task"]]
            try:
                task.apply(kwargs=self.schedule[name].get("kwargs", {}))
            except Exception:
                log.exception("embedded beat: %s failed", name)
            finally:
                close_old_connections()
        return ran

    def run_forever(self) -> None:
        while True:
            self.tick()
            time.sleep(self.TICK_SECONDS)


@lru_cache(maxsize=1)
def embedded_beat_start() -> threading.Thread:
    """Start the embedded beat thread once per process (web process, embedded mode only)."""
    beat = EmbeddedBeat(settings.CELERY_BEAT_SCHEDULE)
    thread = threading.Thread(target=beat.run_forever, name="embedded-beat", daemon=True)
    thread.start()
    log.info("embedded beat started: %s", ", ".join(beat.schedule))
    return thread
