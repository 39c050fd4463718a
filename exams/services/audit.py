"""The audit log: who did what, for staff and candidates alike."""

from __future__ import annotations

import logging
from typing import Any

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
        actor=actor, actor_label=actor_label, action=action, exam=exam, session=session, details=details or {}
    )
    log.info("audit: %s %s %s", actor_label, action, details or "")
    return entry


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


def candidate_label(session: ExamSession) -> str:
    return f"candidate:{session.candidate.email}"
