"""The audit log: who did what, for staff and candidates alike."""

from __future__ import annotations

import logging
from typing import Any

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


def candidate_label(session: ExamSession) -> str:
    return f"candidate:{session.candidate.email}"
