"""The audit log: who did what, for staff and candidates alike."""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from django.db.models import Q, QuerySet

from exams import limits
from exams.models import AuditEntry, Exam, ExamSession

log = logging.getLogger(__name__)


def audit_record(
    *,
    action: str,
    actor=None,
    actor_label: str = "",
    exam: Exam | None = None,
    session: ExamSession | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    if not actor_label:
        actor_label = actor.get_username() if actor is not None else "system"
    if session is not None and exam is None:
        exam = session.exam
    entry = AuditEntry.objects.create(
        actor=actor,
        actor_label=actor_label,
        action=action,
        exam=exam,
        session=session,
        subject_label=subject_label(exam=exam, session=session),
        details=details or {},
    )
    log.info("audit: %s %s %s", actor_label, action, details or "")
    return entry


def subject_label(*, exam: Exam | None, session: ExamSession | None) -> str:
    """What an audit row is about, in words that outlive the rows (exam and
    session are emptied when those are deleted). Ids and the exam's title, no
    candidate name: erasing a candidate must not have to rewrite the audit."""
    parts = []
    if exam is not None:
        parts.append(f"exam {exam.title!r} ({exam.code})")
    if session is not None:
        parts.append(f"session {session.public_id}")
    return "; ".join(parts)[:300]


# Viewing evidence is audited once per viewer, action and subject per this
# many seconds: a report page loads one picture per flag, and each must not
# add a row.
VIEW_AUDIT_SECONDS = 600


def audit_view(*, action: str, actor, subject: str, exam=None, session=None, details=None) -> bool:
    """Audit that ``actor`` looked at ``subject`` (an event's evidence, a
    report), at most once per VIEW_AUDIT_SECONDS for the same viewer, action
    and subject; True if a row was written. The first view is always audited."""
    key = f"audit-view:{actor.pk}:{action}:{subject}"
    if not cache.add(key, 1, VIEW_AUDIT_SECONDS):
        return False
    audit_record(action=action, actor=actor, exam=exam, session=session, details=details)
    return True


def audit_anonymous_refusal(*, action: str, reason: str) -> bool:
    """A refused anonymous request (an unknown or expired exam link). Each one is
    counted in the shared cache and logged; only the first of each minute writes an
    audit row, which carries how many of its kind the minute before had, so 200
    guessed tokens make at most a row a minute instead of 200. True if it wrote one."""
    name = f"refused:{action}:{reason}"
    seen = limits.window_count(name)
    log.info("refused %s (%s): %d this minute", action, reason, seen)
    if seen != 1:
        return False
    details: dict[str, Any] = {"reason": reason}
    before = limits.window_count(name, windows_ago=1)
    if before:
        details["refused_last_minute"] = before
    audit_record(action=action, actor_label="anonymous", details=details)
    return True


# Details keys that older rows (and only older rows) used for personal data: the
# candidate's email, and free text by staff (a proctor's message or reason, a
# reviewer's note). New rows point to the row that holds the words (a Message,
# the session's end_reason, a ReviewDecision) by id instead. The append-only
# trigger (migration 0011) lets an UPDATE replace these keys' values by
# ERASED_VALUE, and nothing else, so an erasure reaches old rows too.
ERASABLE_KEYS = ("email", "text", "note")
ERASED_VALUE = "[erased]"


# Rows older still (before candidate_label) named the candidate by email.
ERASED_CANDIDATE_LABEL = "candidate:[erased]"


def audit_scrub(
    *, entries: QuerySet[AuditEntry], keys: tuple[str, ...] = ERASABLE_KEYS, email: str = ""
) -> int:
    """Replace the personal ``keys`` of ``entries``' details by ERASED_VALUE, and
    an actor label ``candidate:<email>`` by ERASED_CANDIDATE_LABEL: the only
    changes the append-only audit allows to its rows' contents. Returns how many
    rows changed; a row already scrubbed is left as it is."""
    changed = 0
    if email:
        changed = entries.filter(actor_label__iexact=f"candidate:{email}").update(
            actor_label=ERASED_CANDIDATE_LABEL
        )
    holding = Q()
    for name in keys:
        holding |= Q(details__has_key=name) & ~Q(**{f"details__{name}": ERASED_VALUE})
    for pk, details in entries.filter(holding).values_list("pk", "details"):
        scrubbed = {k: (ERASED_VALUE if k in keys else v) for k, v in details.items()}
        # update(), not save(): AuditEntry.save() refuses stored rows on purpose.
        changed += AuditEntry.objects.filter(pk=pk).update(details=scrubbed)
    return changed


def candidate_label(session: ExamSession) -> str:
    """Who a candidate's own actions are by: the session's public id, never the
    email. The audit is append-only, so a label holding personal data would
    outlive the candidate's erasure; the session link says who it was while
    the candidate's data exists."""
    return f"candidate:{session.public_id}"
