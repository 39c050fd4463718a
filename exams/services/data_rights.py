"""One candidate's data rights: everything held about them as a zip, and erasure.

Export: ``data.json`` (the candidate, their exam, their session, events,
review decisions, messages and the audit entries about their session) and
their pictures (``photos/reference.*`` and ``evidence/<event id>.*``). The
invitation token is left out: it is a credential, not data about them.

Erasure removes what identifies the person and keeps the record that an
attempt happened, so the exam's statistics, its reviewers' decisions and the
audit trail stay whole:

- deleted: the reference photo, the face templates (``reference_encodings``),
  every evidence frame, the latest frame and thumbnail kept for the proctors'
  grid, and the stream state of the live analysis (it holds a small scene
  signature of the last picture and the last identity distance);
- pseudonymised: the name becomes "Erased candidate", the email a random
  address under the reserved ``.invalid`` domain (unique, so the exam's
  one-email-per-candidate rule still holds), the external id is blanked and
  the invitation token is replaced, so the old link no longer works;
- blanked: the text of every message in the session (the candidate's own
  words, and the proctors' words to them, which often name them), a
  proctor's reason for ending the attempt (``end_reason``; "time up" stays),
  reviewers' notes, the admin history's name of the candidate, and, in audit
  rows written before the audit named candidates by id only, the email and
  staff's words (the one change the append-only trigger allows, 0011);
- kept: the session's states and times, events without their pictures,
  review decisions without their notes (the institution's record of the
  outcome) and the audit log, to which a ``candidate_erased`` entry says who
  erased whom (by id) and what went.

The export names no staff: reviewers, proctors and audit actors appear as
"reviewer", "proctor" or "staff".

An attempt in progress is not erased: its frames are still arriving.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
import zipfile
from pathlib import PurePosixPath
from typing import IO, Any

from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from exams import live
from exams.models import AuditEntry, Candidate, Event, EventFrame, ExamSession, Message, ReviewDecision
from exams.services.audit import audit_record, audit_scrub

log = logging.getLogger(__name__)

ERASED_NAME = "Erased candidate"
ERASED_TEXT = "[erased]"


class DataRightsError(ValueError):
    """The request cannot be carried out now; the message says why."""


def candidate_find(*, exam_code: str, token: str = "", email: str = "") -> Candidate:
    """The candidate of exam ``exam_code`` with this invitation token or email.
    Raises Candidate.DoesNotExist (or ValueError for a malformed code)."""
    if bool(token) == bool(email):
        raise ValueError("give either a token or an email")
    found = Candidate.objects.select_related("exam").filter(exam__code=uuid.UUID(str(exam_code)))
    if token:
        return found.get(token=token)
    return found.get(email=email.strip().lower())


def _row(instance: models.Model, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if field.name in skip:
            continue
        value = getattr(instance, field.attname)
        if isinstance(field, models.FileField):
            value = value.name if value else ""
        row[field.attname] = value
    return row


def _add_file(archive: zipfile.ZipFile, name: str, arcname: str) -> str:
    """Copy a stored file into the archive; the archive name, or "" if the file is gone."""
    try:
        with default_storage.open(name, "rb") as source, archive.open(arcname, "w") as target:
            while chunk := source.read(1 << 16):
                target.write(chunk)
    except FileNotFoundError:
        return ""
    return arcname


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower() or ".jpg"


def candidate_export(
    *, candidate: Candidate, out: IO[bytes], actor=None, actor_label: str = ""
) -> dict[str, int]:
    """Write everything held about ``candidate`` to ``out`` as a zip; audited.
    Returns counts of what went in."""
    candidate = Candidate.objects.select_related("exam").get(pk=candidate.pk)
    session = ExamSession.objects.filter(candidate=candidate).first()
    events = list(Event.objects.filter(session=session).prefetch_related("frames")) if session else []
    about = _audit_about(candidate, session)
    counts = {"events": len(events), "files": 0}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        person = _row(candidate, skip=("token",))
        if candidate.reference_photo:
            person["reference_photo_file"] = _add_file(
                archive,
                candidate.reference_photo.name,
                f"photos/reference{_suffix(candidate.reference_photo.name)}",
            )
            counts["files"] += bool(person["reference_photo_file"])
        event_rows = []
        for event in events:
            row = _row(event, skip=("acknowledged_by",))
            if event.evidence:
                row["evidence_file"] = _add_file(
                    archive, event.evidence.name, f"evidence/{event.public_id}{_suffix(event.evidence.name)}"
                )
                counts["files"] += bool(row["evidence_file"])
            row["clip_files"] = [
                _add_file(archive, f.image.name, f"clips/{event.public_id}-{n}{_suffix(f.image.name)}")
                for n, f in enumerate(event.frames.all())
            ]
            counts["files"] += sum(1 for name in row["clip_files"] if name)
            event_rows.append(row)
        data = {
            "exported_at": timezone.now(),
            "candidate": person,
            "exam": {"code": candidate.exam.code, "title": candidate.exam.title},
            "session": _session_row(session) if session else None,
            "events": event_rows,
            # Staff are not named (who decided or wrote is the institution's
            # record, not data about the candidate): rows say "reviewer",
            # "proctor" or "staff" instead of a username or a user id.
            "decisions": [
                {**_row(d, skip=("reviewer",)), "reviewer": "reviewer"}
                for d in ReviewDecision.objects.filter(session=session)
            ]
            if session
            else [],
            "messages": [
                {**_row(m, skip=("author",)), "author": "proctor" if m.author_id else ""}
                for m in Message.objects.filter(session=session)
            ]
            if session
            else [],
            "audit": [
                {**_row(a, skip=("actor",)), "actor_label": _actor_for_candidate(a)}
                for a in AuditEntry.objects.filter(about).order_by("created_at", "pk")
            ],
        }
        archive.writestr("data.json", json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False))
    audit_record(
        action="candidate_export",
        actor=actor,
        actor_label=actor_label,
        exam=candidate.exam,
        session=session,
        details={"candidate": candidate.pk, **counts},
    )
    return counts


def _audit_about(candidate: Candidate, session: ExamSession | None) -> Q:
    """Every audit row about ``candidate``: their session's, the rows that name
    them by id (roster import, invitations, export, erasure), and rows written
    before the audit named candidates by id, which hold their email."""
    about = Q(details__candidate=candidate.pk) | Q(exam=candidate.exam, details__email=candidate.email)
    if session is not None:
        about |= Q(session=session)
    return about


# Before the default reason stopped naming the proctor, it was this plus a username.
_OLD_PROCTOR_REASON = "ended by proctor "


def _session_row(session: ExamSession) -> dict[str, Any]:
    row = _row(session)
    if row["end_reason"].startswith(_OLD_PROCTOR_REASON):
        row["end_reason"] = "ended by a proctor"
    return row


def _actor_for_candidate(entry: AuditEntry) -> str:
    """Who did it, as the candidate's export says it: the candidate's own label
    or "system" as they are, anyone else as "staff"."""
    label = entry.actor_label
    if entry.actor_id is None and (label.startswith("candidate:") or label in ("system", "anonymous")):
        return label
    return "staff"


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            log.warning("could not delete %s while erasing a candidate", name, exc_info=True)


def _end_reason(session: ExamSession) -> str:
    """What is left of how the attempt ended: "time up" says nothing about the
    person and the report reads it; a proctor's reason is their words about the
    candidate, and goes."""
    if session.end_reason in ("", ExamSession.TIME_UP):
        return session.end_reason
    return ERASED_TEXT


def _admin_history_forget(candidate: Candidate, session: ExamSession | None) -> None:
    """The admin's history names an object as it was when changed ("Barack Obama
    <barack@...>"): such rows keep the change, not the name."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    objects = [(Candidate, candidate.pk)] + ([(ExamSession, session.pk)] if session is not None else [])
    for model, pk in objects:
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(model), object_id=str(pk)
        ).update(object_repr=f"{model._meta.verbose_name} {pk} (erased)", change_message="")


def candidate_erase(*, candidate: Candidate, actor=None, actor_label: str = "") -> dict[str, int]:
    """Erase one candidate's personal data (see the module docstring); audited.
    The files are deleted once the transaction commits, so a rollback keeps
    them with their rows. Raises DataRightsError while the attempt is live."""
    now = timezone.now()
    with transaction.atomic():
        candidate = Candidate.objects.select_for_update().select_related("exam").get(pk=candidate.pk)
        session = ExamSession.objects.select_for_update().filter(candidate=candidate).first()
        if session is not None and session.is_live:
            raise DataRightsError("the attempt is in progress; end it before erasing the candidate")
        files = [candidate.reference_photo.name] if candidate.reference_photo else []
        evidence = (
            Event.objects.filter(session=session).exclude(evidence="") if session else Event.objects.none()
        )
        files += list(evidence.values_list("evidence", flat=True))
        # A clip frame is nothing without its picture: row and file go together
        # (django-cleanup deletes the files after commit, as for the purge).
        clips = EventFrame.objects.filter(event__session=session) if session else EventFrame.objects.none()
        clip_frames = clips.count()
        counts = {
            "files": len(files) + clip_frames,
            "evidence_files": evidence.update(evidence=""),
            "clip_frames": clip_frames,
            "templates": len(candidate.reference_encodings),
            "messages": 0,
        }
        clips.delete()
        # update(), not save(): nothing here goes through django-cleanup, the
        # files are deleted below, after commit, by this function itself.
        about = _audit_about(candidate, session)
        Candidate.objects.filter(pk=candidate.pk).update(
            name=ERASED_NAME,
            email=f"erased-{uuid.uuid4().hex}@erased.invalid",
            external_id="",
            token=secrets.token_urlsafe(32),
            reference_encodings=[],
            reference_photo="",
            reference_unverified=False,
            erased_at=now,
        )
        if session is not None:
            ExamSession.objects.filter(pk=session.pk).update(
                analysis_state={},
                verification_distance=None,
                connection_channel="",
                end_reason=_end_reason(session),
            )
            counts["messages"] = Message.objects.filter(session=session).update(text=ERASED_TEXT)
            counts["notes"] = (
                ReviewDecision.objects.filter(session=session).exclude(note="").update(note=ERASED_TEXT)
            )
        # Rows written before the audit named candidates by id hold their email
        # or staff's words about them; the append-only trigger lets exactly
        # those values be replaced (migration 0011).
        counts["audit_rows"] = audit_scrub(entries=AuditEntry.objects.filter(about), email=candidate.email)
        _admin_history_forget(candidate, session)
        audit_record(
            action="candidate_erased",
            actor=actor,
            actor_label=actor_label,
            exam=candidate.exam,
            session=session,
            details={"candidate": candidate.pk, **counts},
        )
        transaction.on_commit(lambda: _delete_files(files))
        if session is not None:
            public_id = str(session.public_id)
            transaction.on_commit(lambda: live.pictures_forget([public_id]))
    return counts
