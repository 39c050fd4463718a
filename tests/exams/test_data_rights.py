"""One candidate's data rights: export everything held about them, and erasure."""

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone

from exams import live, services
from exams.models import AuditEntry, Candidate, Event, EventFrame, ExamSession, Message, ReviewDecision
from tests.conftest import advance

PHOTO = b"\xff\xd8\xff\xe0 the reference photo"
FRAME = b"\xff\xd8\xff\xe0 an evidence frame"
CLIP = b"\xff\xd8\xff\xe0 a frame of the clip"


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.org", "pw")


@pytest.fixture
def held(live_session, reviewer, proctor):
    """A candidate with everything the product holds about one: a photo, a face
    template, an evidence frame and a clip frame, a decision, messages and audit entries."""
    candidate = live_session.candidate
    candidate.reference_photo.save("ref.jpg", ContentFile(PHOTO))
    event = services.event_record_instant(
        session=live_session, event_type="no_face", at=timezone.now(), evidence_jpeg=FRAME
    )
    clip = EventFrame(event=event, taken_at=timezone.now())
    clip.image.save("clip.jpg", ContentFile(CLIP))
    Message.objects.create(session=live_session, sender="candidate", text="My camera is on, Barack here")
    Message.objects.create(session=live_session, sender="proctor", author=proctor, text="Thanks Barack")
    advance(live_session, "submitted")
    ReviewDecision.objects.create(session=live_session, event=event, reviewer=reviewer, decision="confirm")
    services.audit_record(
        action="exam_submit", actor_label="candidate:barack@example.org", session=live_session
    )
    return candidate, event


def _export(candidate, tmp_path, *extra) -> zipfile.ZipFile:
    out = tmp_path / "export.zip"
    call_command(
        "candidate_export",
        "--exam",
        str(candidate.exam.code),
        "--email",
        candidate.email,
        "-o",
        str(out),
        *extra,
        stdout=io.StringIO(),
    )
    return zipfile.ZipFile(out)


@pytest.mark.django_db
def test_it_exports_everything_held_about_one_candidate(held, other_candidate, tmp_path):
    candidate, event = held
    archive = _export(candidate, tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "export.zip").st_mode) == 0o600
    data = json.loads(archive.read("data.json"))
    assert data["candidate"]["email"] == "barack@example.org"
    assert len(data["candidate"]["reference_encodings"][0]) == 128
    assert "token" not in data["candidate"] and candidate.token not in archive.read("data.json").decode()
    assert data["session"]["state"] == "submitted"
    assert [e["public_id"] for e in data["events"]] == [str(event.public_id)]
    assert data["decisions"][0]["reviewer"] == "reviewer" and data["decisions"][0]["decision"] == "confirm"
    assert "reviewer_id" not in data["decisions"][0], "staff are not named, by name or id"
    assert {m["text"] for m in data["messages"]} == {"My camera is on, Barack here", "Thanks Barack"}
    assert "exam_submit" in {a["action"] for a in data["audit"]}
    assert archive.read(data["candidate"]["reference_photo_file"]) == PHOTO
    assert archive.read(f"evidence/{event.public_id}.jpg") == FRAME
    assert archive.read(data["events"][0]["clip_files"][0]) == CLIP
    assert "Joe Biden" not in archive.read("data.json").decode(), "nobody else's data"
    entry = AuditEntry.objects.get(action="candidate_export")
    assert entry.session_id == candidate.session.pk and entry.details["files"] == 3


@pytest.mark.django_db
def test_it_erases_one_candidate_and_audits_who_did_it(
    held, other_candidate, admin_user, django_capture_on_commit_callbacks
):
    candidate, event = held
    session = candidate.session
    photo, frame = Path(candidate.reference_photo.path), Path(event.evidence.path)
    clip = Path(event.frames.get().image.path)
    live.picture_keep(str(session.public_id), frame=FRAME, thumbnail=FRAME)
    # One token in 64 starts with "-"; this one does, so the command is shown to take it.
    old_token = "-" + candidate.token[1:]
    Candidate.objects.filter(pk=candidate.pk).update(token=old_token)
    other_candidate.reference_photo.save("joe.jpg", ContentFile(PHOTO))
    other_photo = Path(other_candidate.reference_photo.path)

    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "candidate_erase",
            "--exam",
            str(candidate.exam.code),
            f"--token={old_token}",
            "--yes",
            "--by",
            "admin",
            stdout=io.StringIO(),
        )

    assert not photo.exists() and not frame.exists() and not clip.exists()
    assert not EventFrame.objects.filter(event=event).exists()
    assert other_photo.exists(), "nobody else's files"
    candidate.refresh_from_db()
    assert candidate.name == "Erased candidate" and candidate.email.endswith("@erased.invalid")
    assert candidate.reference_encodings == [] and not candidate.reference_photo and candidate.erased_at
    assert candidate.external_id == "" and candidate.token != old_token
    assert not Candidate.objects.filter(token=old_token).exists(), "the old link no longer works"
    assert set(Message.objects.filter(session=session).values_list("text", flat=True)) == {"[erased]"}
    assert Event.objects.get(pk=event.pk).evidence == "", "the event stays, without its picture"
    assert ReviewDecision.objects.filter(session=session).count() == 1
    assert ExamSession.objects.get(pk=session.pk).analysis_state == {}
    assert live.picture(str(session.public_id)) is None
    entry = AuditEntry.objects.get(action="candidate_erased")
    assert entry.actor == admin_user and entry.session_id == session.pk
    assert entry.details == {
        "candidate": candidate.pk,
        "files": 3,
        "evidence_files": 1,
        "clip_frames": 1,
        "templates": 1,
        "messages": 2,
        "notes": 0,
        "audit_rows": 1,
    }
    assert "barack" not in json.dumps(entry.details).lower()
    assert AuditEntry.objects.filter(action="exam_submit", session=session).exists(), "the audit is kept"


@pytest.mark.django_db
def test_it_erases_nothing_without_confirmation_or_during_the_attempt(live_session):
    candidate = live_session.candidate
    candidate.reference_photo.save("ref.jpg", ContentFile(PHOTO))
    args = ("candidate_erase", "--exam", str(candidate.exam.code), "--email", candidate.email)
    with pytest.raises(CommandError, match="--yes"):
        call_command(*args, stdout=io.StringIO())
    with pytest.raises(CommandError, match="in progress"):
        call_command(*args, "--yes", stdout=io.StringIO())
    candidate.refresh_from_db()
    assert candidate.name == "Barack Obama" and Path(candidate.reference_photo.path).exists()
    assert not AuditEntry.objects.filter(action="candidate_erased").exists()


@pytest.mark.django_db
def test_an_erasure_that_rolls_back_keeps_the_files(held, django_capture_on_commit_callbacks):
    candidate, event = held
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                services.candidate_erase(candidate=candidate, actor_label="test")
                raise RuntimeError("forced rollback")
    candidate.refresh_from_db()
    assert candidate.name == "Barack Obama" and Path(candidate.reference_photo.path).exists()
    assert Path(Event.objects.get(pk=event.pk).evidence.path).exists()


@pytest.mark.django_db
def test_the_admin_exports_and_erases_with_confirmation(
    held, admin_user, registrar, django_capture_on_commit_callbacks
):
    candidate, _ = held
    client = Client()
    client.force_login(admin_user)
    url = "/admin/exams/candidate/"
    export = client.post(url, {"action": "export_data", "_selected_action": [candidate.pk]})
    assert export.status_code == 200 and export["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(export.content))
    assert json.loads(archive.read("data.json"))["candidate"]["name"] == "Barack Obama"
    assert AuditEntry.objects.get(action="candidate_export").actor == admin_user

    confirm = client.post(url, {"action": "erase_data", "_selected_action": [candidate.pk]})
    assert confirm.status_code == 200 and b"Yes, erase" in confirm.content
    candidate.refresh_from_db()
    assert candidate.name == "Barack Obama", "nothing is erased before the confirmation"
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            url, {"action": "erase_data", "_selected_action": [candidate.pk], "confirm": "yes"}
        )
    assert done.status_code == 302
    candidate.refresh_from_db()
    assert candidate.name == "Erased candidate"
    assert AuditEntry.objects.get(action="candidate_erased").actor == admin_user

    registrar_client = Client()
    registrar_client.force_login(registrar)
    page = registrar_client.get(url)
    assert b"export_data" in page.content and b"erase_data" not in page.content, (
        "erasing needs delete permission"
    )
