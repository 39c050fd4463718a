"""Evidence and biometric data are deleted after the exam's retention period."""

import io
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone

from exams.models import AuditEntry, Event


@pytest.mark.django_db
def test_it_purges_evidence_photos_and_encodings_after_retention(live_session):
    candidate = live_session.candidate
    candidate.reference_photo.save("ref.jpg", ContentFile(b"\xff\xd8\xffphoto"))
    now = timezone.now()
    event = Event.objects.create(
        session=live_session,
        type="no_face",
        key="no_face",
        severity="medium",
        started_at=now,
        ended_at=now,
        is_open=False,
    )
    event.evidence.save("ev.jpg", ContentFile(b"\xff\xd8\xffframe"))
    evidence_path = event.evidence.path
    exam = candidate.exam

    call_command("purge_expired", stdout=open("/dev/null", "w"))
    event.refresh_from_db()
    assert event.evidence, "nothing is purged before retention ends"

    exam.opens_at = now - timedelta(days=40)
    exam.closes_at = now - timedelta(days=31)
    exam.retention_days = 30
    exam.save()
    call_command("purge_expired", stdout=open("/dev/null", "w"))
    event.refresh_from_db()
    candidate.refresh_from_db()
    exam.refresh_from_db()
    assert not event.evidence and not candidate.reference_photo and candidate.reference_encodings == []
    import os

    assert not os.path.exists(evidence_path)
    assert exam.purged_at is not None
    assert Event.objects.filter(pk=event.pk).exists(), "the event record stays, without its picture"
    assert AuditEntry.objects.filter(action="retention_purge", exam=exam).count() == 1
    call_command("purge_expired", stdout=open("/dev/null", "w"))  # idempotent
    assert AuditEntry.objects.filter(action="retention_purge", exam=exam).count() == 1


def _age(path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def _sweep(*args: str) -> str:
    out = io.StringIO()
    call_command("purge_expired", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_sweeps_media_files_no_row_refers_to(live_session, settings):
    """Old orphans go; files a row refers to, and orphans younger than the grace
    period (a write whose row is not committed yet), stay. Dry run deletes nothing."""
    candidate = live_session.candidate
    candidate.reference_photo.save("ref.jpg", ContentFile(b"\xff\xd8\xffphoto"))
    now = timezone.now()
    event = Event.objects.create(
        session=live_session, type="no_face", key="no_face", severity="medium", started_at=now, ended_at=now
    )
    event.evidence.save("ev.jpg", ContentFile(b"\xff\xd8\xffframe"))
    media = Path(settings.MEDIA_ROOT)
    orphans = [media / "evidence" / f"orphan{i}.jpg" for i in range(3)] + [media / "stray.bin"]
    young = media / "references" / "inflight.jpg"
    for path in [*orphans, young]:
        path.write_bytes(b"x")
    for path in [*orphans, Path(candidate.reference_photo.path), Path(event.evidence.path)]:
        _age(path, 2)

    dry = _sweep("--dry-run", "--batch", "2")
    assert all(f"would delete {p.relative_to(media).as_posix()}" in dry for p in orphans), dry
    assert "inflight" not in dry
    assert candidate.reference_photo.name not in dry and event.evidence.name not in dry
    assert all(p.exists() for p in orphans), "a dry run deletes nothing"
    assert dry.count("files checked") == 5, "7 files in batches of 2: 4 progress lines and the summary"

    out = _sweep("--batch", "2")
    assert (
        "media sweep: 7 files checked, 4 with no row, 4 deleted, 1 younger than the grace period kept" in out
    )
    assert not any(p.exists() for p in orphans)
    assert young.exists()
    assert Path(candidate.reference_photo.path).exists() and Path(event.evidence.path).exists()
    assert AuditEntry.objects.filter(action="media_sweep").count() == 1

    _age(young, 2)
    _sweep()
    assert not young.exists(), "once past the grace period, an orphan goes"


@pytest.mark.django_db
def test_a_dry_run_lists_the_exams_due_without_purging(live_session):
    candidate = live_session.candidate
    candidate.reference_photo.save("ref.jpg", ContentFile(b"\xff\xd8\xffphoto"))
    exam = candidate.exam
    now = timezone.now()
    exam.opens_at, exam.closes_at, exam.retention_days = (
        now - timedelta(days=40),
        now - timedelta(days=31),
        30,
    )
    exam.save()
    out = _sweep("--dry-run")
    assert (
        f"would purge {exam.title} ({exam.code}): 0 evidence files, 0 clip frames, 1 reference photos" in out
    )
    candidate.refresh_from_db()
    exam.refresh_from_db()
    assert candidate.reference_photo and exam.purged_at is None
