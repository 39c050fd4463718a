"""Deleting biometric data and evidence once an exam's retention period is over."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from exams.models import Event, EventFrame, Exam
from exams.services.audit import audit_record


def exams_purge_expired(*, now: datetime | None = None, progress=None) -> dict[str, int]:
    """Delete evidence frames and clips, reference photos and face encodings of exams past retention.

    Idempotent and resumable: each file is deleted and its row cleared in a
    small transaction, so an interrupted purge picks up where it stopped.
    """
    now = now or timezone.now()
    totals = {"exams": 0, "evidence_files": 0, "clip_frames": 0, "reference_photos": 0}
    due = [
        e for e in Exam.objects.filter(purged_at__isnull=True, closes_at__lt=now) if e.purge_after() <= now
    ]
    for exam in due:
        events = Event.objects.filter(session__candidate__exam=exam).exclude(evidence="")
        total = events.count()
        for done, event in enumerate(events.iterator(), start=1):
            event.evidence.delete(save=True)
            totals["evidence_files"] += 1
            if progress and (done % 100 == 0 or done == total):
                progress(f"{exam.title}: {done}/{total} evidence files deleted")
        # A clip frame is nothing without its picture: the file and the row go together.
        for frame in EventFrame.objects.filter(event__session__candidate__exam=exam).iterator():
            frame.image.delete(save=False)
            frame.delete()
            totals["clip_frames"] += 1
        for candidate in exam.candidates.all():
            if candidate.reference_photo:
                candidate.reference_photo.delete(save=False)
                totals["reference_photos"] += 1
            candidate.reference_encodings = []
            candidate.save(update_fields=["reference_photo", "reference_encodings"])
        exam.purged_at = now
        exam.save(update_fields=["purged_at"])
        audit_record(action="retention_purge", exam=exam, details=dict(totals))
        totals["exams"] += 1
    return totals
