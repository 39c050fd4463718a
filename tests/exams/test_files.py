"""Biometric files follow their rows: replaced or deleted rows take their files
with them (after commit), a rollback leaves no file behind, and files are
private (0600 in 0700 folders) and named by a random id."""

import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DataError, transaction
from django.test import Client
from django.utils import timezone

from detection.core import EventAction
from exams import services
from exams.models import Candidate, Event, ExamSession
from exams.storage import atomic_with_files
from tests.conftest import advance, photo_bytes

JPEG = b"\xff\xd8\xff\xe0 not really a picture"


def _event(session: ExamSession, evidence: bytes | None = JPEG) -> Event:
    now = timezone.now()
    return services.event_record_instant(
        session=session, event_type="no_face", at=now, evidence_jpeg=evidence
    )


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.django_db
def test_it_deletes_the_old_photo_when_the_admin_replaces_it(
    registrar, exam, django_capture_on_commit_callbacks
):
    client = Client()
    client.force_login(registrar)
    form = {"exam": exam.pk, "name": "Joe Biden", "email": "joe@example.org", "external_id": ""}
    photo = SimpleUploadedFile("biden.jpg", photo_bytes("biden.jpg"), content_type="image/jpeg")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/exams/candidate/add/", {**form, "reference_photo": photo})
    joe = Candidate.objects.get(email="joe@example.org")
    old = Path(joe.reference_photo.path)
    assert old.exists()

    again = SimpleUploadedFile("biden2.jpg", photo_bytes("biden.jpg"), content_type="image/jpeg")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/exams/candidate/{joe.pk}/change/", {**form, "reference_photo": again})
    assert response.status_code == 302
    joe.refresh_from_db()
    assert Path(joe.reference_photo.path).exists()
    assert not old.exists(), "the replaced photo is deleted"


@pytest.mark.django_db
def test_it_refuses_an_admin_photo_larger_than_the_rosters_limit(registrar, exam, settings):
    from exams.services.roster import ROSTER_PHOTO_MAX_BYTES

    client = Client()
    client.force_login(registrar)
    form = {"exam": exam.pk, "name": "Joe Biden", "email": "joe@example.org", "external_id": ""}
    # A real picture, padded after its end marker: decodable, and one byte over the limit.
    picture = photo_bytes("biden.jpg")
    padded = picture + b"\0" * (ROSTER_PHOTO_MAX_BYTES + 1 - len(picture))
    photo = SimpleUploadedFile("biden.jpg", padded, content_type="image/jpeg")
    response = client.post("/admin/exams/candidate/add/", {**form, "reference_photo": photo})
    assert response.status_code == 200
    assert "The photo is larger than 10 MB, the roster&#x27;s limit." in response.content.decode()
    assert not Candidate.objects.filter(email="joe@example.org").exists()
    assert not any(Path(settings.MEDIA_ROOT).rglob("*.jpg")), "nothing was written"

    at_the_limit = SimpleUploadedFile("biden.jpg", padded[:-1], content_type="image/jpeg")
    response = client.post("/admin/exams/candidate/add/", {**form, "reference_photo": at_the_limit})
    assert response.status_code == 302
    assert len(Candidate.objects.get(email="joe@example.org").reference_encodings) == 1


@pytest.mark.django_db
def test_it_keeps_the_old_photo_when_the_replacement_rolls_back(
    candidate, django_capture_on_commit_callbacks
):
    candidate.reference_photo.save("first.jpg", ContentFile(JPEG))
    old = Path(candidate.reference_photo.path)
    new_path = None
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with atomic_with_files():
                candidate.reference_photo.save("second.jpg", ContentFile(JPEG))
                new_path = Path(candidate.reference_photo.path)
                raise RuntimeError("forced rollback")
    assert old.exists(), "the old file is deleted only after a commit"
    assert new_path is not None and not new_path.exists(), "the rolled-back file is removed"


@pytest.mark.django_db
def test_it_deletes_every_file_of_a_deleted_event_candidate_and_exam(
    live_session, django_capture_on_commit_callbacks
):
    candidate = live_session.candidate
    candidate.reference_photo.save("ref.jpg", ContentFile(JPEG))
    photo = Path(candidate.reference_photo.path)
    lone, kept = _event(live_session), _event(live_session)
    lone_path, kept_path = Path(lone.evidence.path), Path(kept.evidence.path)

    with django_capture_on_commit_callbacks(execute=True):
        lone.delete()
    assert not lone_path.exists() and kept_path.exists()

    with django_capture_on_commit_callbacks(execute=True):
        candidate.exam.delete()  # cascades to the candidate, its session and its events
    assert not photo.exists() and not kept_path.exists()


@pytest.mark.django_db
def test_it_deletes_files_of_a_candidate_deleted_by_queryset(
    live_session, django_capture_on_commit_callbacks
):
    candidate = live_session.candidate
    candidate.reference_photo.save("ref.jpg", ContentFile(JPEG))
    photo, evidence = Path(candidate.reference_photo.path), Path(_event(live_session).evidence.path)
    with django_capture_on_commit_callbacks(execute=True):
        Candidate.objects.filter(pk=candidate.pk).delete()
    assert not photo.exists() and not evidence.exists()


@pytest.mark.django_db
def test_a_delete_that_rolls_back_keeps_the_files(live_session, django_capture_on_commit_callbacks):
    evidence = Path(_event(live_session).evidence.path)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                live_session.candidate.exam.delete()
                raise RuntimeError("forced rollback")
    assert evidence.exists()


@pytest.mark.django_db
def test_a_frame_write_that_rolls_back_leaves_no_evidence_file(live_session, settings):
    """The evidence frame is written, then the database refuses the event (a key
    longer than its column) and the whole analysis write rolls back."""
    now = datetime.now(tz=UTC).timestamp()
    action = EventAction(
        kind="open",
        type="no_face",
        key="k" * 200,
        started_at=now,
        ended_at=now,
        confidence=1.0,
        details={},
    )
    with pytest.raises(DataError):
        services.analysis_record(
            session=live_session,
            seq=1,
            received_at=now,
            state={},
            faces=0,
            actions=[action],
            evidence_jpeg=JPEG,
        )
    evidence = Path(settings.MEDIA_ROOT) / "evidence"
    assert not evidence.exists() or list(evidence.iterdir()) == []
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_captured_reference_that_rolls_back_leaves_no_file(candidate, settings, monkeypatch):
    advance(candidate.session, "consented")

    def audit_fails(**kwargs):
        raise RuntimeError("forced rollback")

    monkeypatch.setattr("exams.services.candidate_flow.audit_record", audit_fails)
    with pytest.raises(RuntimeError):
        services.verification_capture_reference(
            session=candidate.session, encoding=[0.0] * 128, photo_jpeg=JPEG
        )
    references = Path(settings.MEDIA_ROOT) / "references"
    assert not references.exists() or list(references.iterdir()) == []
    candidate.refresh_from_db()
    assert not candidate.reference_photo


@pytest.mark.django_db
def test_nested_blocks_keep_or_drop_their_files_with_their_transaction(settings):
    with atomic_with_files():
        kept = default_storage.save("evidence/a.jpg", ContentFile(JPEG))
        with pytest.raises(RuntimeError):
            with atomic_with_files():
                dropped = default_storage.save("evidence/b.jpg", ContentFile(JPEG))
                raise RuntimeError("inner rollback")
    assert default_storage.exists(kept) and not default_storage.exists(dropped)

    with pytest.raises(RuntimeError):
        with atomic_with_files():
            with atomic_with_files():
                inner = default_storage.save("evidence/c.jpg", ContentFile(JPEG))
            raise RuntimeError("outer rollback")
    assert not default_storage.exists(inner), "the outer rollback takes the inner block's file too"


@pytest.mark.django_db
def test_files_are_private_and_named_by_a_random_id(exam, settings):
    media = Path(settings.MEDIA_ROOT)
    media.mkdir(mode=0o755)  # an existing, too open media folder is tightened
    os.chmod(media, 0o755)
    candidate = services.candidate_add(
        exam=exam,
        name="Barack Obama",
        email="barack@example.org",
        photo_name="obama.jpg",
        photo_bytes=photo_bytes("obama.jpg"),
    )
    advance(candidate.session, "consented", "verified", "in_progress")
    event = _event(candidate.session)
    for field in (candidate.reference_photo, event.evidence):
        path = Path(field.path)
        assert _mode(path) == 0o600, field.name
        assert _mode(path.parent) == 0o700, field.name
        assert re.fullmatch(r"(references|evidence)/[0-9a-f]{32}\.jpg", field.name), field.name
        assert candidate.token[:12] not in field.name and "obama" not in field.name.lower()
        assert candidate.session.public_id.hex not in field.name
    assert _mode(media) == 0o700


@pytest.mark.django_db
def test_a_captured_reference_is_private_and_named_by_a_random_id(candidate):
    advance(candidate.session, "consented")
    services.verification_capture_reference(session=candidate.session, encoding=[0.0] * 128, photo_jpeg=JPEG)
    candidate.refresh_from_db()
    assert re.fullmatch(r"references/[0-9a-f]{32}\.jpg", candidate.reference_photo.name)
    assert _mode(candidate.reference_photo.path) == 0o600
