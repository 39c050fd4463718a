"""Scheduled housekeeping (run by celery beat)."""

from celery import shared_task

from exams import services


@shared_task(acks_late=True, ignore_result=True)
def purge_expired() -> dict:
    """Idempotent: exams already purged are skipped, a half-done purge resumes;
    then media files that no row refers to (past the grace period) are swept."""
    totals = services.exams_purge_expired()
    services.media_sweep()
    return totals


@shared_task(ignore_result=True)
def mark_stale_connections() -> int:
    return services.connections_mark_stale()
