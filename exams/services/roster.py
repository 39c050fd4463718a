"""Exams and their rosters: creating an exam, parsing and importing candidates."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email
from django.db import transaction

from detection.core import DetectionError, decode_image, encode_reference
from exams.models import Candidate, Exam, ExamSession
from exams.services.audit import audit_record

User = get_user_model()


def exam_create(*, title: str, proctors: Sequence[str] = (), actor_label: str = "cli", **fields: Any) -> Exam:
    users = list(User.objects.filter(username__in=proctors))
    missing = set(proctors) - {u.username for u in users}
    if missing:
        raise ValueError(f"unknown proctor user(s): {', '.join(sorted(missing))}")
    with transaction.atomic():
        exam = Exam(title=title, **fields)
        exam.full_clean()
        exam.save()
        exam.proctors.set(users)
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


def roster_photo(csv_path: Path, photo: str) -> bytes:
    """The bytes of a roster row's photo: a regular file in the CSV's folder or
    below it. Anything else gets the same answer, so that the error never
    tells which files exist on the server."""
    folder = csv_path.parent.resolve()
    refused = RosterError(f"photo {photo}: not a readable image file in the roster's folder")
    try:
        path = (folder / photo).resolve()
        if not path.is_relative_to(folder) or not path.is_file():  # no ../, no FIFO, no device
            raise refused
        return path.read_bytes()
    except OSError:
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


def candidate_add(
    *, exam: Exam, name: str, email: str, photo_name: str = "", photo_bytes: bytes = b""
) -> Candidate:
    """Add one candidate with the face encoding of their roster photo (optional).

    Idempotent on (exam, email): a candidate already on the exam under the same
    name is returned unchanged. Raises RosterError for an empty name, a bad
    email, an email already on the exam under another name, or a photo that
    does not show exactly one face.
    """
    email = email.strip().lower()
    if not name.strip():
        raise RosterError("name is empty")
    if len(name.strip()) > NAME_MAX:
        raise RosterError(f"name is longer than {NAME_MAX} characters")
    if len(email) > EMAIL_MAX:
        raise RosterError(f"email address is longer than {EMAIL_MAX} characters")
    try:
        validate_email(email)
    except ValidationError:
        raise RosterError(f"{email!r} is not a valid email address") from None
    existing = candidate_on_exam(exam=exam, email=email)
    if existing is not None:
        if _same_name(existing.name, name):
            return existing
        # Two people, or a typo: either way the roster and the exam disagree, and
        # handing out the existing candidate's link would give one person's exam
        # to another.
        raise RosterError(
            f"{email} is already on this exam under the name {existing.name!r}, not {name.strip()!r}; "
            "correct the roster, or the candidate in the admin"
        )
    encodings: list[list[float]] = []
    if photo_bytes:
        try:
            encodings = reference_encodings(photo_bytes)
        except DetectionError as exc:
            raise RosterError(f"photo {photo_name}: {exc}") from None
    with transaction.atomic():
        candidate = Candidate.objects.create(
            exam=exam, name=name.strip(), email=email, reference_encodings=encodings
        )
        if photo_bytes:
            suffix = Path(photo_name).suffix.lower() or ".jpg"
            candidate.reference_photo.save(f"{candidate.token[:12]}{suffix}", ContentFile(photo_bytes))
        ExamSession.objects.create(candidate=candidate)
    return candidate


def roster_import(
    *, exam: Exam, csv_path: Path, base_url: str = "", actor_label: str = "cli"
) -> list[RosterRow]:
    """Import candidates from ``name,email,photo``. Bad rows get an error; good rows are imported.

    Photo paths are relative to the CSV file. Re-importing a row whose email is
    already on the exam under the same name updates nothing and reports its
    existing link (status EXISTING); under another name it is refused.
    """
    results: list[RosterRow] = []
    for row in roster_rows(csv_path.read_text(encoding="utf-8-sig")):
        name, email, photo = row["name"], row["email"].lower(), row["photo"]
        photo_bytes = b""
        try:
            if photo:
                photo_bytes = roster_photo(csv_path, photo)
            already = candidate_on_exam(exam=exam, email=email) is not None
            candidate = candidate_add(
                exam=exam, name=name, email=email, photo_name=photo, photo_bytes=photo_bytes
            )
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
