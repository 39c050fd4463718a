"""Deleting biometric data and evidence once an exam's retention period is over."""

from __future__ import annotations

import itertools
import logging
import os
import stat
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.apps import apps
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from exams import live
from exams.models import AuditEntry, Event, EventFrame, Exam, ExamSession, Message
from exams.services.audit import audit_record, audit_scrub

log = logging.getLogger(__name__)


def exams_purge_expired(
    *, now: datetime | None = None, progress: Callable[[str], None] | None = None, dry_run: bool = False
) -> dict[str, int]:
    """Delete, for each exam past retention, its evidence frames and clips,
    reference photos and face encodings, the chat (messages are blanked, so the
    record that one was sent stays), and the stream state of the live analysis
    (a small grey picture of the last frame, identity distances) with the
    verification's distance. Each exam's own audit row counts what went from it;
    the totals add up all exams.

    Idempotent and resumable: each file is deleted and its row cleared in a
    small transaction, so an interrupted purge picks up where it stopped.
    With ``dry_run`` nothing changes: each exam due is reported to ``progress``
    with what would go, and the totals count it.
    """
    now = now or timezone.now()
    totals = {"exams": 0, **dict.fromkeys(PURGE_COUNTS, 0)}
    due = [
        e for e in Exam.objects.filter(purged_at__isnull=True, closes_at__lt=now) if e.purge_after() <= now
    ]
    for exam in due:
        counts = _purge_dry(exam) if dry_run else _purge(exam, progress)
        totals["exams"] += 1
        for name in PURGE_COUNTS:
            totals[name] += counts[name]
        if dry_run:
            if progress:
                progress(
                    f"would purge {exam.title} ({exam.code}): "
                    f"{counts['evidence_files']} evidence files, {counts['clip_frames']} clip frames, "
                    f"{counts['reference_photos']} reference photos, {counts['messages']} messages"
                )
            continue
        exam.purged_at = now
        exam.save(update_fields=["purged_at"])
        audit_record(action="retention_purge", exam=exam, details=counts)
    return totals


# What the purge counts, per exam in its audit row and in total.
PURGE_COUNTS = ("evidence_files", "clip_frames", "reference_photos", "messages", "sessions")
PURGED_TEXT = "[deleted after retention]"


def _sessions(exam: Exam):
    return ExamSession.objects.filter(candidate__exam=exam)


def _analysis_held(exam: Exam):
    """The exam's sessions still holding analysis state or a verification distance."""
    return _sessions(exam).filter(~Q(analysis_state={}) | Q(verification_distance__isnull=False))


def _purge_dry(exam: Exam) -> dict[str, int]:
    return {
        "evidence_files": Event.objects.filter(session__candidate__exam=exam).exclude(evidence="").count(),
        "clip_frames": EventFrame.objects.filter(event__session__candidate__exam=exam).count(),
        "reference_photos": exam.candidates.exclude(reference_photo="").count(),
        "messages": Message.objects.filter(session__candidate__exam=exam).exclude(text=PURGED_TEXT).count(),
        "sessions": _analysis_held(exam).count(),
    }


def _purge(exam: Exam, progress: Callable[[str], None] | None) -> dict[str, int]:
    """Purge one exam; what went, counted. A rerun after an interruption counts
    only what it still found."""
    counts = dict.fromkeys(PURGE_COUNTS, 0)
    events = Event.objects.filter(session__candidate__exam=exam).exclude(evidence="")
    total = events.count()
    for done, event in enumerate(events.iterator(), start=1):
        event.evidence.delete(save=True)
        counts["evidence_files"] += 1
        if progress and (done % 100 == 0 or done == total):
            progress(f"{exam.title}: {done}/{total} evidence files deleted")
    # A clip frame is nothing without its picture: the file and the row go together.
    for frame in EventFrame.objects.filter(event__session__candidate__exam=exam).iterator():
        frame.image.delete(save=False)
        frame.delete()
        counts["clip_frames"] += 1
    for candidate in exam.candidates.all():
        if candidate.reference_photo:
            candidate.reference_photo.delete(save=False)
            counts["reference_photos"] += 1
        candidate.reference_encodings = []
        candidate.save(update_fields=["reference_photo", "reference_encodings"])
    with transaction.atomic():
        chat = Message.objects.filter(session__candidate__exam=exam).exclude(text=PURGED_TEXT)
        counts["messages"] = chat.update(text=PURGED_TEXT)
        counts["sessions"] = _analysis_held(exam).update(analysis_state={}, verification_distance=None)
        # Audit rows from before the audit pointed to messages hold their text.
        audit_scrub(entries=AuditEntry.objects.filter(session__candidate__exam=exam), keys=("text",))
    live.pictures_forget([str(p) for p in _sessions(exam).values_list("public_id", flat=True)])
    return counts


# A file younger than this is never swept, even with no row pointing at it:
# services write a file inside the transaction that adds its row, so until
# that transaction commits the file is rightly unreferenced. No transaction
# here lasts anywhere near an hour; a file still orphaned after it is one
# whose row rolled back or was never written (a crash between the two).
SWEEP_GRACE = timedelta(hours=1)


def file_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) that stores a file, in every installed app
    (a file another app's row refers to must never look orphaned)."""
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.FileField)
    ]


def _referenced(names: list[str]) -> set[str]:
    found: set[str] = set()
    for model, field in file_fields():
        found.update(model.objects.filter(**{f"{field}__in": names}).values_list(field, flat=True))
    return found


def _media_files(storage: FileSystemStorage) -> Iterator[tuple[str, float]]:
    """(storage name, modification time) of every regular file under the
    media folder, walked lazily; symlinks are neither followed nor listed."""
    root = Path(storage.location)
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for filename in sorted(files):
            path = Path(folder, filename)
            try:
                st = path.lstat()
            except OSError:
                continue  # deleted meanwhile
            if stat.S_ISREG(st.st_mode):
                yield path.relative_to(root).as_posix(), st.st_mtime


def media_sweep(
    *,
    batch: int = 500,
    grace: timedelta = SWEEP_GRACE,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    storage: FileSystemStorage | None = None,
) -> dict[str, int]:
    """Delete media files that no row refers to and that are older than
    ``grace``. Files are looked up ``batch`` at a time (one query per file
    field per batch), so memory and query size stay bounded however many
    files there are. With ``dry_run`` nothing is deleted and every file that
    would go is passed to ``progress`` instead."""
    storage = storage or default_storage
    cutoff = (now or timezone.now()) - grace
    totals = {"checked": 0, "orphans": 0, "deleted": 0, "too_young": 0}
    files = _media_files(storage)
    while chunk := list(itertools.islice(files, batch)):
        referenced = _referenced([name for name, _ in chunk])
        for name, mtime in chunk:
            totals["checked"] += 1
            if name in referenced:
                continue
            if mtime > cutoff.timestamp():
                totals["too_young"] += 1
                continue
            totals["orphans"] += 1
            if dry_run:
                if progress:
                    progress(f"would delete {name}")
                continue
            try:
                storage.delete(name)
            except OSError:
                log.warning("could not delete orphaned media file %s", name, exc_info=True)
                continue
            totals["deleted"] += 1
        if progress:
            progress(
                f"{totals['checked']} files checked, {totals['orphans']} orphaned"
                + ("" if dry_run else f", {totals['deleted']} deleted")
            )
    if totals["deleted"]:
        audit_record(action="media_sweep", details=dict(totals))
    return totals
