"""What proctors do to a live attempt (warn, message, pause, resume, end, extra
time), to a whole exam (message all, pause or resume all), to a live alert
(acknowledge), and the candidate's chat."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from exams import live
from exams.models import Event, Exam, ExamSession, IllegalTransition, Message
from exams.services.audit import audit_record
from exams.services.events import events_close_open

PROCTOR_ACTIONS = ("warn", "message", "pause", "resume", "end")
EXAM_ACTIONS = ("message_all", "pause_all", "resume_all")
DEFAULT_WARNING = "Please follow the exam rules."
# One grant of extra time; several grants add up.
MAX_EXTRA_MINUTES = 240


def proctor_act(
    *, session: ExamSession, actor, action: str, text: str = "", exam_wide: bool = False
) -> ExamSession:
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
            fields = ["paused"]
            if not session.paused:  # a silent camera is counted from the resume, not from before the pause
                session.frames_due_from = now
                fields.append("frames_due_from")
            session.save(update_fields=fields)
        elif not session.is_live:
            raise IllegalTransition("the exam is not in progress, so the candidate would not see it")
        elif action == "end":
            # Who ended it is the audit row's actor; the reason names nobody on staff.
            session.terminate(now=now, reason=text or "ended by a proctor")
            session.save()
            events_close_open(session=session)
        message = None
        if action in ("warn", "message"):
            message = Message.objects.create(
                session=session,
                sender=Message.Sender.PROCTOR,
                kind=action,
                author=actor,
                text=text or DEFAULT_WARNING,
            )
        # The proctor's words are not copied into the append-only audit: they
        # live in the Message (or, for "end", the session's end_reason), which
        # erasure and the retention purge can blank, and the row points there.
        details: dict[str, Any] = {"message": message.pk} if message is not None else {}
        if exam_wide:
            details["exam_wide"] = True
        audit_record(action=f"proctor_{action}", actor=actor, session=session, details=details)
    payload: dict[str, Any] = {"type": action, "text": message.text if message else text, "from": "proctor"}
    if action == "end":
        payload = {"type": "ended", "state": session.state, "text": text or "A proctor ended your exam."}
    live.to_candidate(session, payload)
    live.session_changed(session)
    if message is not None:
        live.message_posted(message)
    return session


def exam_act(*, exam: Exam, actor, action: str, text: str = "") -> int:
    """A proctor acts on every attempt in progress: a message to all, or a pause
    or resume of all. Each attempt gets the same audit line and push as if the
    proctor had acted on it alone (marked ``exam_wide``), so each report shows
    it; the exam gets one line with the count. Returns how many attempts changed."""
    if action not in EXAM_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    text = text.strip()[: Message.MAX_LENGTH]
    if action == "message_all" and not text:
        raise ValueError("Write the message first.")
    one = action.removesuffix("_all")
    sessions = ExamSession.objects.filter(candidate__exam=exam, state=ExamSession.State.IN_PROGRESS)
    if one == "pause":
        sessions = sessions.filter(paused=False)
    elif one == "resume":
        sessions = sessions.filter(paused=True)
    done = 0
    for session in sessions.select_related("candidate__exam"):
        try:
            proctor_act(session=session, actor=actor, action=one, text=text, exam_wide=True)
        except IllegalTransition:  # it finished meanwhile
            continue
        done += 1
    # The text is in each attempt's Message, which that attempt's row points to.
    audit_record(action=f"proctor_{action}", actor=actor, exam=exam, details={"sessions": done})
    return done


def session_extend(*, session: ExamSession, actor, minutes: int) -> ExamSession:
    """Give one candidate ``minutes`` more (1 to MAX_EXTRA_MINUTES; grants add
    up). The candidate's page is told its new deadline at once."""
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= MAX_EXTRA_MINUTES:
        raise ValueError(f"Extra time is 1 to {MAX_EXTRA_MINUTES} minutes.")
    with transaction.atomic():
        session = ExamSession.objects.locked(session.pk)
        if session.is_finished:
            raise IllegalTransition("the exam has finished, so extra time would change nothing")
        session.extra_minutes += minutes
        session.save(update_fields=["extra_minutes"])
        deadline = session.deadline
        audit_record(
            action="proctor_extra_time",
            actor=actor,
            session=session,
            details={
                "minutes": minutes,
                "extra_minutes": session.extra_minutes,
                "deadline": deadline.isoformat() if deadline else None,
            },
        )
    if deadline is not None:
        live.to_candidate(session, {"type": "deadline", "deadline": deadline.isoformat()})
    live.session_changed(session)
    return session


def event_acknowledge(*, event: Event, actor) -> Event:
    """A proctor marks a live alert as handled; every proctor of the exam sees
    by whom. Acknowledging twice changes nothing and audits nothing twice."""
    with transaction.atomic():
        event = (
            Event.objects.select_for_update(of=("self",))
            .select_related("session__candidate__exam")
            .get(pk=event.pk)
        )
        if not event.acknowledge(by=actor, at=timezone.now()):
            return event
        audit_record(
            action="proctor_acknowledge",
            actor=actor,
            session=event.session,
            details={"event": str(event.public_id), "type": event.type},
        )
    live.event_acknowledged(event)
    live.session_changed(event.session)
    return event


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
