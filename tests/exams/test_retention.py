"""Evidence and biometric data are deleted after the exam's retention period."""

from datetime import timedelta

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
