"""Scheduled housekeeping (run by celery beat)."""

from celery import shared_task

from exams import services


@shared_task(acks_late=True, ignore_result=True)
def purge_expired() -> dict:
    """Idempotent: exams already purged are skipped, a half-done purge resumes."""
    return services.exams_purge_expired()


@shared_task(ignore_result=True)
def mark_stale_connections() -> int:
    return services.connections_mark_stale()
