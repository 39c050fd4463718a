"""Exams and their rosters: creating an exam, parsing and importing candidates."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email
from django.db import DatabaseError, IntegrityError, transaction

from detection.core import DetectionError, decode_image, encode_reference
from exams.models import Candidate, Exam, ExamSession
from exams.services.audit import audit_record
from exams.storage import atomic_with_files

User = get_user_model()


def _users(usernames: Sequence[str], role: str) -> list:
    users = list(User.objects.filter(username__in=usernames))
    missing = set(usernames) - {u.username for u in users}
    if missing:
        raise ValueError(f"unknown {role} user(s): {', '.join(sorted(missing))}")
    return users


def exam_create(
    *,
    title: str,
    proctors: Sequence[str] = (),
    reviewers: Sequence[str] = (),
    actor_label: str = "cli",
    **fields: Any,
) -> Exam:
    users = _users(proctors, "proctor")
    reviewer_users = _users(reviewers, "reviewer")
    with transaction.atomic():
        exam = Exam(title=title, **fields)
        exam.full_clean()
        exam.save()
        exam.proctors.set(users)
        exam.reviewers.set(reviewer_users)
        audit_record(action="exam_create", actor_label=actor_label, exam=exam, details={"title": title})
    return exam


# What became of one roster row.
NEW, EXISTING, REFUSED = "new", "existing", "refused"


@dataclass(frozen=True)
class RosterRow:
    name: str
    email: str
    link: str
    error: str
    status: str = NEW  # NEW, EXISTING (already on the exam, left as it was) or REFUSED

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "email": self.email,
            "link": self.link,
            "error": self.error,
            "status": self.status,
        }


@dataclass(frozen=True)
class RosterSummary:
    """What an import did, counted honestly: a second run of the same file
    adds nothing, and says so."""

    new: int
    existing: int
    refused: int

    @classmethod
    def of(cls, rows: Sequence[RosterRow]) -> RosterSummary:
        count = {NEW: 0, EXISTING: 0, REFUSED: 0}
        for row in rows:
            count[row.status] += 1
        return cls(new=count[NEW], existing=count[EXISTING], refused=count[REFUSED])

    def __str__(self) -> str:
        return f"{self.new} new, {self.existing} already on the exam, {self.refused} refused"


class RosterError(ValueError):
    """One roster row cannot be imported; the message says why, for the person fixing the roster."""


ROSTER_COLUMNS = ("name", "email", "photo")


# The columns' sizes: a longer value would stop the import halfway on PostgreSQL.
NAME_MAX = Candidate._meta.get_field("name").max_length
EMAIL_MAX = Candidate._meta.get_field("email").max_length


def roster_rows(text: str) -> list[dict[str, Any]]:
    """Parse roster CSV text (already decoded, byte-order mark removed) into
    ``{"line", "name", "email", "photo"}`` dicts, stripped.

    Raises ValueError when a column is missing or the file is not CSV the
    csv module can read (a field over its size limit, say); row-level problems
    are left to ``candidate_add`` so that one bad row never stops the others.
    """
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = set(ROSTER_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"roster CSV lacks column(s): {', '.join(sorted(missing))}")
        return [
            {"line": line, **{column: (row.get(column) or "").strip() for column in ROSTER_COLUMNS}}
            for line, row in enumerate(reader, start=2)
        ]
    except csv.Error as exc:
        raise ValueError(f"the roster is not readable CSV (line {reader.line_num}): {exc}") from None


# A roster photo larger than this is refused (the admin's upload has the same limit).
ROSTER_PHOTO_MAX_BYTES = 10 * 1024 * 1024


def roster_photo(csv_path: Path, photo: str) -> bytes:
    """The bytes of a roster row's photo: a regular file in the CSV's folder or
    below it, at most ROSTER_PHOTO_MAX_BYTES. Anything outside the folder, and
    anything that is not a regular file (a FIFO, a device, a folder), gets the
    same answer, so that the error never tells which files exist on the server.

    The path is checked with ``os.stat`` before it is opened, and opened
    non-blocking: a FIFO is never opened for reading (that would wait for a
    writer forever), and one swapped in after the check makes the open fail
    at once instead of hanging. The opened file is checked again (``fstat``)
    to be the regular file that was checked.
    """
    folder = csv_path.parent.resolve()
    refused = RosterError(f"photo {photo}: not a readable image file in the roster's folder")
    try:
        path = (folder / photo).resolve()
        if not path.is_relative_to(folder):  # no ../, no absolute path, no symlink out
            raise refused
        checked = os.stat(path)
        if not stat.S_ISREG(checked.st_mode):  # no FIFO, no device, no folder
            raise refused
        if checked.st_size > ROSTER_PHOTO_MAX_BYTES:
            raise RosterError(f"photo {photo} is larger than {ROSTER_PHOTO_MAX_BYTES // (1024 * 1024)} MB")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            opened = os.fstat(fh.fileno())
            if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
                raise refused
            data = fh.read(ROSTER_PHOTO_MAX_BYTES + 1)
        if len(data) > ROSTER_PHOTO_MAX_BYTES:
            raise RosterError(f"photo {photo} is larger than {ROSTER_PHOTO_MAX_BYTES // (1024 * 1024)} MB")
        return data
    except RosterError:
        raise
    except (OSError, ValueError):  # ValueError: a NUL in the path
        raise refused from None


def reference_encodings(photo_bytes: bytes) -> list[list[float]]:
    """The stored form of a reference photo's face: one 128-d encoding.
    Raises DetectionError when the photo is no image or not exactly one face."""
    return [encode_reference(decode_image(photo_bytes)).tolist()]


def candidate_on_exam(*, exam: Exam, email: str) -> Candidate | None:
    return Candidate.objects.filter(exam=exam, email=email.strip().lower()).first()


def _same_name(a: str, b: str) -> bool:
    """Names as a person would compare them: case and spacing do not count."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


@dataclass(frozen=True)
class CandidateDraft:
    """A roster row that passed every check, ready to write: either a new
    candidate (with its photo's face, if any) or one already on the exam."""

    exam: Exam
    name: str
    email: str
    photo_name: str = ""
    photo_bytes: bytes = b""
    encodings: tuple = ()
    existing: Candidate | None = None


# Characters a name is never made of: C0/C1 controls and DEL (NUL, which
# PostgreSQL refuses, a tab or line break that breaks an email header or a CSV
# line), line and paragraph separators, and the bidirectional overrides and
# isolates that make a name display as something else.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_CONTROL_NAMES = {"\x00": "NUL", "\t": "tab", "\n": "line break", "\r": "carriage return", "\x7f": "DEL"}


def control_character(value: str) -> str:
    """The first control character in ``value``, named for the person fixing
    the roster ("tab", "U+202E"), or "" if there is none."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS:
            return _CONTROL_NAMES.get(char, f"U+{ord(char):04X}")
    return ""


def _field_errors(exc: ValidationError) -> str:
    labels = {"name": "name", "email": "email address", "exam": "exam"}
    parts = []
    for field, messages in exc.message_dict.items():
        label = labels.get(field, field.replace("_", " "))
        parts.append(f"{label}: {' '.join(messages)}" if field != NON_FIELD_ERRORS else " ".join(messages))
    return "; ".join(parts)


def candidate_check(
    *, exam: Exam, name: str, email: str, photo_name: str = "", photo_bytes: bytes = b""
) -> CandidateDraft:
    """Every check a roster row must pass, with nothing written: the name and
    email rules, the model's own validation (``full_clean`` on an unsaved
    Candidate: column sizes, email syntax, constraints) and the photo's face.
    Raises RosterError saying what is wrong."""
    name, email = name.strip(), email.strip().lower()
    if not name:
        raise RosterError("name is empty")
    if len(name) > NAME_MAX:
        raise RosterError(f"name is longer than {NAME_MAX} characters")
    if len(email) > EMAIL_MAX:
        raise RosterError(f"email address is longer than {EMAIL_MAX} characters")
    try:
        validate_email(email)
    except ValidationError:
        raise RosterError(f"{email!r} is not a valid email address") from None
    for label, value in (("name", name), ("email address", email)):
        if bad := control_character(value):
            raise RosterError(
                f"{label} contains a control character ({bad}); a name or address is one line of plain text"
            )
    existing = candidate_on_exam(exam=exam, email=email)
    if existing is not None:
        if _same_name(existing.name, name):
            return CandidateDraft(exam=exam, name=name, email=email, existing=existing)
        # Two people, or a typo: either way the roster and the exam disagree, and
        # handing out the existing candidate's link would give one person's exam
        # to another.
        raise RosterError(
            f"{email} is already on this exam under the name {existing.name!r}, not {name!r}; "
            "correct the roster, or the candidate in the admin"
        )
    try:
        Candidate(exam=exam, name=name, email=email).full_clean()
    except ValidationError as exc:
        raise RosterError(_field_errors(exc)) from None
    encodings: list[list[float]] = []
    if photo_bytes:
        try:
            encodings = reference_encodings(photo_bytes)
        except DetectionError as exc:
            raise RosterError(f"photo {photo_name}: {exc}") from None
    return CandidateDraft(
        exam=exam,
        name=name,
        email=email,
        photo_name=photo_name,
        photo_bytes=photo_bytes,
        encodings=tuple(tuple(e) for e in encodings),
    )


def candidate_write(*, draft: CandidateDraft) -> Candidate:
    """Write a checked row: the candidate, its photo (named by a random id) and
    its session, in one transaction. A row already on the exam is returned
    unchanged. A database refusal (another import added the same email in
    between, say) is a RosterError, and its photo file is removed."""
    if draft.existing is not None:
        return draft.existing
    try:
        with atomic_with_files():
            candidate = Candidate.objects.create(
                exam=draft.exam,
                name=draft.name,
                email=draft.email,
                reference_encodings=[list(e) for e in draft.encodings],
            )
            if draft.photo_bytes:
                candidate.reference_photo.save(
                    draft.photo_name or "photo.jpg", ContentFile(draft.photo_bytes)
                )
            ExamSession.objects.create(candidate=candidate)
    except IntegrityError:
        existing = Candidate.objects.filter(exam=draft.exam, email=draft.email).first()
        if existing is not None:  # the same email was added meanwhile: idempotent, like above
            return existing
        raise RosterError("the database refused this row") from None
    except DatabaseError:
        raise RosterError("the database refused this row") from None
    return candidate


def candidate_add(
    *, exam: Exam, name: str, email: str, photo_name: str = "", photo_bytes: bytes = b""
) -> Candidate:
    """Add one candidate with the face encoding of their roster photo (optional).

    Idempotent on (exam, email): a candidate already on the exam under the same
    name is returned unchanged. Raises RosterError for an empty name, a bad
    email, an email already on the exam under another name, or a photo that
    does not show exactly one face.
    """
    draft = candidate_check(exam=exam, name=name, email=email, photo_name=photo_name, photo_bytes=photo_bytes)
    return candidate_write(draft=draft)


def roster_import(
    *, exam: Exam, csv_path: Path, base_url: str = "", actor_label: str = "cli"
) -> list[RosterRow]:
    """Import candidates from ``name,email,photo``. Bad rows get an error; good rows are imported.

    Every row is checked (``candidate_check``: the model's validation and the
    photo) before any is written, so a bad row anywhere in the file is
    reported and never stops the import halfway. Photo paths are relative to
    the CSV file. Re-importing a row whose email is already on the exam under
    the same name updates nothing and reports its existing link (status
    EXISTING); under another name it is refused.
    """
    # First pass: check every row. Photo bytes are not kept (a roster of a
    # thousand photos would be held in memory); their digest is, and the
    # second pass reads the photo again and refuses it if it changed.
    checked: list[tuple[dict[str, Any], CandidateDraft | RosterError, str]] = []
    for row in roster_rows(csv_path.read_text(encoding="utf-8-sig")):
        try:
            photo_bytes = roster_photo(csv_path, row["photo"]) if row["photo"] else b""
            draft = candidate_check(
                exam=exam,
                name=row["name"],
                email=row["email"],
                photo_name=row["photo"],
                photo_bytes=photo_bytes,
            )
        except RosterError as exc:
            checked.append((row, exc, ""))
        else:
            digest = hashlib.sha256(draft.photo_bytes).hexdigest() if draft.photo_bytes else ""
            checked.append((row, replace(draft, photo_bytes=b""), digest))
    # Second pass: write the rows that passed.
    results: list[RosterRow] = []
    for row, outcome, digest in checked:
        name, email = row["name"], row["email"].lower()
        try:
            if isinstance(outcome, RosterError):
                raise outcome
            if digest:
                photo_bytes = roster_photo(csv_path, row["photo"])
                if hashlib.sha256(photo_bytes).hexdigest() != digest:
                    raise RosterError(f"photo {row['photo']} changed during the import")
                outcome = replace(outcome, photo_bytes=photo_bytes)
            already = outcome.existing is not None
            candidate = candidate_write(draft=outcome)
        except RosterError as exc:
            results.append(RosterRow(name, email, "", f"line {row['line']}: {exc}", REFUSED))
            continue
        results.append(
            RosterRow(name, email, base_url + candidate.link_path(), "", EXISTING if already else NEW)
        )
    summary = RosterSummary.of(results)
    audit_record(
        action="roster_import",
        actor_label=actor_label,
        exam=exam,
        details={
            "rows": len(results),
            "new": summary.new,
            "existing": summary.existing,
            "errors": summary.refused,
        },
    )
    return results


def session_for_candidate(candidate: Candidate) -> ExamSession:
    session, _ = ExamSession.objects.get_or_create(candidate=candidate)
    return session
