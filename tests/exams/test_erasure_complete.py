"""Erasure and the retention purge leave nothing personal behind: not in any
table of the database (the append-only audit included), not in any media file."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.core.files.base import ContentFile
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from exams import services
from exams.models import AuditEntry, Candidate, EventFrame, ExamSession, Message
from exams.services.retention import PURGED_TEXT
from tests.conftest import advance
from tests.exams.test_roster_admin import _photo

# A name and address nothing else in a test database holds, so any hit is theirs.
NAME = "Zelda Quixotefield"
EMAIL = "zelda.quixotefield@example.org"
NEEDLES = ("quixotefield", "zelda")

TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb")


def tables_holding(*needles: str) -> dict[str, list[str]]:
    """Every (table, column) of the database whose text or JSON holds one of
    ``needles``, case-insensitively: all tables, not only this app's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type = ANY(%s) "
            "AND table_name IN (SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE')",
            [list(TEXT_TYPES)],
        )
        columns = cursor.fetchall()
        assert len(columns) > 50, "the search covers every table, not a few"
        found: dict[str, list[str]] = {}
        for table, column in columns:
            quoted_table, quoted_column = connection.ops.quote_name(table), connection.ops.quote_name(column)
            for needle in needles:
                cursor.execute(
                    f"SELECT count(*) FROM {quoted_table} WHERE {quoted_column}::text ILIKE %s",
                    [f"%{needle}%"],
                )
                if cursor.fetchone()[0]:
                    found.setdefault(table, []).append(column)
    return found


def media_holding(media_root: Path, *needles: bytes) -> list[str]:
    """Media files whose name or bytes hold one of ``needles`` (case-insensitive)."""
    hits = []
    for path in media_root.rglob("*"):
        if path.is_file():
            haystack = path.as_posix().lower().encode() + path.read_bytes().lower()
            if any(needle in haystack for needle in needles):
                hits.append(path.as_posix())
    return hits


def media_files(media_root: Path) -> list[Path]:
    return [p for p in media_root.rglob("*") if p.is_file()]


@pytest.fixture
def full_session(exam, registrar, proctor, reviewer, settings):
    """A candidate imported with a photo in the admin, invited, chatting both
    ways, warned, then ended by the proctor with a reason naming them, with an
    evidence frame and clip, live-analysis state, and a reviewer's note."""
    settings.SITE_URL = "https://proctor.example.edu"
    exam.reviewers.add(reviewer)
    importer = Client()
    importer.force_login(registrar)
    row = importer.post(
        f"/admin/exams/exam/{exam.pk}/roster/row",
        {"name": NAME, "email": EMAIL, "photo": _photo("obama.jpg")},
    ).json()
    assert row["error"] == "" and row["photo"] is True
    candidate = Candidate.objects.get(email=EMAIL)
    services.invitations_send(candidates=[candidate], actor=registrar)
    assert len(mail.outbox) == 1
    session = candidate.session
    advance(session, "consented", "verified", "in_progress")
    ExamSession.objects.filter(pk=session.pk).update(
        verification_distance=0.41,
        analysis_state={"stream": {"scene": [[128] * 32] * 24, "identity": {"distance": 0.41}}},
    )
    services.message_from_candidate(session=session, text=f"Hello, {NAME} here, my camera is on")
    services.proctor_act(session=session, actor=proctor, action="message", text="Thanks Zelda, all good")
    services.proctor_act(session=session, actor=proctor, action="warn", text="Zelda, eyes on your screen")
    event = services.event_record_instant(
        session=session, event_type="multiple_faces", at=timezone.now(), evidence_jpeg=b"\xff\xd8\xff frame"
    )
    clip = EventFrame(event=event, taken_at=timezone.now())
    clip.image.save("clip.jpg", ContentFile(b"\xff\xd8\xff clip"))
    services.proctor_act(session=session, actor=proctor, action="end", text=f"{NAME} had her brother in view")
    services.event_review(event=event, reviewer=reviewer, decision="confirm", note="Zelda's brother, clearly")
    # The admin's history names the object as it was when changed.
    LogEntry.objects.create(
        user=registrar,
        content_type=ContentType.objects.get_for_model(Candidate),
        object_id=str(candidate.pk),
        object_repr=str(candidate),
        action_flag=CHANGE,
        change_message="[]",
    )
    candidate.refresh_from_db()
    return candidate


@pytest.mark.django_db
def test_it_leaves_nothing_of_the_candidate_anywhere_after_erasure(
    full_session, settings, django_capture_on_commit_callbacks
):
    candidate = full_session
    media = Path(settings.MEDIA_ROOT)
    before = tables_holding(*NEEDLES)
    assert {"exams_candidate", "exams_message", "exams_examsession", "django_admin_log"} <= set(before), (
        "the search finds them before the erasure"
    )
    assert "exams_auditentry" not in before, f"the audit names them by id only: {before}"
    assert len(media_files(media)) == 3, "the reference photo, the evidence frame and the clip frame"

    with django_capture_on_commit_callbacks(execute=True):
        services.candidate_erase(candidate=candidate, actor_label="cli")

    assert tables_holding(*NEEDLES) == {}
    assert media_holding(media, *(n.encode() for n in NEEDLES)) == []
    assert media_files(media) == [], "none of their pictures stays"
    session = ExamSession.objects.get(candidate=candidate)
    assert session.end_reason == "[erased]" and "Ended early" in session.how_it_ended
    assert session.analysis_state == {} and session.verification_distance is None
    ended = AuditEntry.objects.get(action="proctor_end", session=session)
    assert ended.details == {}, "the reason lives in the session, which erasure blanked"


@pytest.mark.django_db
def test_it_exports_every_audit_row_about_the_candidate_and_names_no_staff(
    full_session, registrar, proctor, reviewer, tmp_path
):
    import zipfile

    candidate = full_session
    for user, username in ((proctor, "ms_hopper"), (reviewer, "mr_turing")):
        user.username = username
        user.save(update_fields=["username"])
    # The default reason of older releases named the proctor.
    ExamSession.objects.filter(candidate=candidate).update(end_reason="ended by proctor ms_hopper")
    out = tmp_path / "export.zip"
    with open(out, "wb") as handle:
        services.candidate_export(candidate=candidate, out=handle, actor_label="cli")
    data = json.loads(zipfile.ZipFile(out).read("data.json"))
    actions = {a["action"] for a in data["audit"]}
    assert {
        "roster_row_import",
        "invitation_sent",
        "proctor_message",
        "proctor_warn",
        "proctor_end",
    } <= actions
    assert "event_confirm" in actions
    text = json.dumps(data)
    for staff in ("registrar", "hopper", "turing", "reviewer_id", "author_id", "actor_id", "acknowledged_by"):
        assert staff not in text, staff
    assert {a["actor_label"] for a in data["audit"]} == {"staff"}, "every row here is by staff"
    assert {m["author"] for m in data["messages"]} == {"", "proctor"}
    assert data["decisions"][0]["reviewer"] == "reviewer"
    assert data["session"]["end_reason"] == "ended by a proctor"
    assert any(NAME in m["text"] for m in data["messages"]), "their own data is all there"


@pytest.mark.django_db
def test_erasure_reaches_audit_rows_written_before_the_audit_used_ids(
    full_session, django_capture_on_commit_callbacks
):
    """Older rows held the email (roster import, invitations, a candidate label)
    and proctors' words; the trigger lets erasure replace exactly those values."""
    candidate = full_session
    session = candidate.session
    old = [
        AuditEntry.objects.create(action="roster_row_import", exam=candidate.exam, details={"email": EMAIL}),
        AuditEntry.objects.create(
            action="proctor_warn",
            actor_label="proctor",
            session=session,
            exam=candidate.exam,
            details={"text": f"{NAME}, eyes on the screen"},
        ),
        AuditEntry.objects.create(
            action="exam_submit", actor_label=f"candidate:{EMAIL}", session=session, exam=candidate.exam
        ),
    ]
    assert "exams_auditentry" in tables_holding(*NEEDLES)

    with django_capture_on_commit_callbacks(execute=True):
        counts = services.candidate_erase(candidate=candidate, actor_label="cli")

    assert "exams_auditentry" not in tables_holding(*NEEDLES)
    assert counts["audit_rows"] == 3
    rows = {e.pk: e for e in AuditEntry.objects.filter(pk__in=[e.pk for e in old])}
    assert rows[old[0].pk].details == {"email": "[erased]"} and rows[old[0].pk].action == "roster_row_import"
    assert rows[old[1].pk].details == {"text": "[erased]"}
    assert rows[old[2].pk].actor_label == "candidate:[erased]"


@pytest.mark.django_db
def test_the_trigger_allows_erasing_and_nothing_else(exam):
    entry = AuditEntry.objects.create(
        action="invitation_sent", exam=exam, details={"email": EMAIL, "reason": "x"}
    )
    refused = [
        ("details", json.dumps({"email": "someone-else@example.org", "reason": "x"})),
        ("details", json.dumps({"email": "[erased]", "reason": "changed"})),
        ("details", json.dumps({"email": "[erased]", "reason": "x", "text": "[erased]"})),
        ("details", json.dumps({"reason": "x"})),  # a personal key dropped, not erased
        ("actor_label", "candidate:[erased]"),  # only a candidate's label may be erased
        ("action", "invitation_not_sent"),
    ]
    for column, value in refused:
        cast = "::jsonb" if column == "details" else ""
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE exams_auditentry SET {column} = %s{cast} WHERE id = %s", [value, entry.pk]
                )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE exams_auditentry SET details = %s::jsonb WHERE id = %s",
            [json.dumps({"email": "[erased]", "reason": "x"}), entry.pk],
        )
    assert AuditEntry.objects.get(pk=entry.pk).details == {"email": "[erased]", "reason": "x"}
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM exams_auditentry WHERE id = %s", [entry.pk])


def _expire(exam) -> None:
    now = timezone.now()
    exam.opens_at, exam.closes_at, exam.retention_days = (
        now - timedelta(days=40),
        now - timedelta(days=31),
        30,
    )
    exam.save()


@pytest.mark.django_db
def test_the_purge_leaves_no_chat_picture_or_distance_and_counts_each_exam(
    full_session, other_candidate, other_proctor, settings
):
    candidate = full_session
    session = candidate.session
    other_session = other_candidate.session
    advance(other_session, "consented", "verified", "in_progress")
    other_candidate.reference_photo.save("ref.jpg", ContentFile(b"\xff\xd8\xff photo"))
    services.message_from_candidate(session=other_session, text="Joe here, ready")
    # A row from before the audit pointed to messages holds the proctor's words.
    AuditEntry.objects.create(
        action="proctor_message",
        actor_label="proctor",
        session=session,
        exam=candidate.exam,
        details={"text": "Zelda, please sit up"},
    )
    media = Path(settings.MEDIA_ROOT)
    assert media_files(media)
    _expire(candidate.exam)
    _expire(other_candidate.exam)

    totals = services.exams_purge_expired()

    assert totals == {
        "exams": 2,
        "evidence_files": 1,
        "clip_frames": 1,
        "reference_photos": 2,
        "messages": 4,
        "sessions": 1,
    }
    purged = AuditEntry.objects.get(action="retention_purge", exam=candidate.exam)
    assert purged.details == {
        "evidence_files": 1,
        "clip_frames": 1,
        "reference_photos": 1,
        "messages": 3,
        "sessions": 1,
    }
    other = AuditEntry.objects.get(action="retention_purge", exam=other_candidate.exam)
    assert other.details == {
        "evidence_files": 0,
        "clip_frames": 0,
        "reference_photos": 1,
        "messages": 1,
        "sessions": 0,
    }
    assert set(Message.objects.values_list("text", flat=True)) == {PURGED_TEXT}
    session.refresh_from_db()
    assert session.analysis_state == {} and session.verification_distance is None
    assert media_files(media) == [], "no picture of either exam stays"
    # What the purge is for: nothing said or seen during the exam is left in any table.
    said = ("my camera is on", "all good", "eyes on your screen", "please sit up", "joe here")
    assert tables_holding(*said) == {}
    assert tables_holding("[[128, 128") == {}, "the stream state's grey picture"
    assert services.exams_purge_expired()["exams"] == 0, "once per exam"


@pytest.mark.django_db
def test_the_migration_scrubs_old_rows_no_erasure_could_reach(exam, candidate, proctor):
    """Old rows of a candidate still on the exam keep their email until that
    candidate is erased (erasure finds them by it); an email of nobody on the
    exam, a label of an already erased candidate, and staff text about an
    erased or deleted session are scrubbed when 0011 runs."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("exams.migrations.0011_audit_privacy")
    gone = Candidate.objects.create(exam=exam, name="Gone Person", email="gone@example.org")
    gone_session = ExamSession.objects.create(candidate=gone)
    Candidate.objects.filter(pk=gone.pk).update(
        name="Erased candidate", email="erased-1@erased.invalid", erased_at=timezone.now()
    )
    rows = {
        "kept": AuditEntry.objects.create(
            action="invitation_sent", exam=exam, session=candidate.session, details={"email": candidate.email}
        ),
        "kept_text": AuditEntry.objects.create(
            action="proctor_warn", session=candidate.session, exam=exam, details={"text": "Barack, sit up"}
        ),
        "exam_wide": AuditEntry.objects.create(
            action="proctor_message_all", exam=exam, details={"text": "Ten minutes left", "sessions": 2}
        ),
        "refused_row": AuditEntry.objects.create(
            action="roster_row_import", exam=exam, details={"email": "typo@example.org", "error": ""}
        ),
        "erased_email": AuditEntry.objects.create(
            action="invitation_sent", exam=exam, session=gone_session, details={"email": "gone@example.org"}
        ),
        "erased_label": AuditEntry.objects.create(
            action="exam_start", actor_label="candidate:gone@example.org", exam=exam, session=gone_session
        ),
        "erased_text": AuditEntry.objects.create(
            action="proctor_end", session=gone_session, exam=exam, details={"text": "Gone had notes"}
        ),
        "deleted_session": AuditEntry.objects.create(
            action="session_violation",
            exam=exam,
            details={"note": "Someone's brother", "result": "violation"},
        ),
    }

    migration._scrub_unreachable(apps, None)

    after = {name: AuditEntry.objects.get(pk=row.pk) for name, row in rows.items()}
    assert after["kept"].details == {"email": candidate.email}
    assert after["kept_text"].details == {"text": "Barack, sit up"}
    assert after["exam_wide"].details == {"text": "Ten minutes left", "sessions": 2}
    assert after["refused_row"].details == {"email": "[erased]", "error": ""}
    assert after["erased_email"].details == {"email": "[erased]"}
    assert after["erased_label"].actor_label == "candidate:[erased]"
    assert after["erased_text"].details == {"text": "[erased]"}
    assert after["deleted_session"].details == {"note": "[erased]", "result": "violation"}
