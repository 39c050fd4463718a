"""What proctors do to a live attempt (warn, message, pause, resume, end), and the candidate's chat."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from exams import live
from exams.models import ExamSession, IllegalTransition, Message
from exams.services.audit import audit_record
from exams.services.events import events_close_open

PROCTOR_ACTIONS = ("warn", "message", "pause", "resume", "end")
DEFAULT_WARNING = "Please follow the exam rules."


def proctor_act(*, session: ExamSession, actor, action: str, text: str = "") -> ExamSession:
    if action not in PROCTOR_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    text = text.strip()[: Message.MAX_LENGTH]
    if action == "message" and not text:
        raise ValueError("Write the message first.")
    now = timezone.now()
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if action in ("pause", "resume"):
            if not session.is_live:
                raise IllegalTransition("only an exam in progress can be paused or resumed")
            session.paused = action == "pause"
            session.save(update_fields=["paused"])
        elif not session.is_live:
            raise IllegalTransition("the exam is not in progress, so the candidate would not see it")
        elif action == "end":
            session.terminate(now=now, reason=text or f"ended by proctor {actor.get_username()}")
            session.save()
            events_close_open(session=session)
        audit_record(action=f"proctor_{action}", actor=actor, session=session, details={"text": text})
        message = None
        if action in ("warn", "message"):
            message = Message.objects.create(
                session=session,
                sender=Message.Sender.PROCTOR,
                kind=action,
                author=actor,
                text=text or DEFAULT_WARNING,
            )
    payload: dict[str, Any] = {"type": action, "text": message.text if message else text, "from": "proctor"}
    if action == "end":
        payload = {"type": "ended", "state": session.state, "text": text or "A proctor ended your exam."}
    live.to_candidate(session, payload)
    live.session_changed(session)
    if message is not None:
        live.message_posted(message)
    return session


def message_from_candidate(*, session: ExamSession, text: str) -> Message:
    """The candidate writes to the proctors. Only during the exam; 1 to 500 characters."""
    text = text.strip() if isinstance(text, str) else ""
    if not text or len(text) > Message.MAX_LENGTH:
        raise ValueError(f"A message is text of 1 to {Message.MAX_LENGTH} characters.")
    session = ExamSession.objects.select_related("candidate__exam").get(pk=session.pk)
    if not session.is_live:
        raise IllegalTransition("Messages can be sent only while the exam is in progress.")
    message = Message.objects.create(session=session, sender=Message.Sender.CANDIDATE, text=text)
    live.message_posted(message)
    return message
