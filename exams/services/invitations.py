"""Invitation links and emails.

A link is the site's public address (``settings.SITE_URL``) plus the
candidate's token path: an email or a command has no request to take the host
from. Mail goes through Django's configured backend (the console backend by
default, so nothing leaves a laptop until SMTP is set up).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import formataddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from exams.models import Candidate
from exams.services.audit import audit_record
from exams.services.roster import control_character

log = logging.getLogger(__name__)


def invitation_link(candidate: Candidate) -> str:
    return settings.SITE_URL + candidate.link_path()


def system_check_link(candidate: Candidate) -> str:
    return settings.SITE_URL + reverse("take_check", args=[candidate.token])


@dataclass
class InvitationsSent:
    sent: list[str] = field(default_factory=list)
    # (email, reason) for each candidate not sent an invitation.
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{len(self.sent)} invitation{'s' if len(self.sent) != 1 else ''} sent"
        if self.skipped:
            reasons = "; ".join(f"{email}: {reason}" for email, reason in self.skipped)
            text += f", {len(self.skipped)} not sent ({reasons})"
        return text


def _message(candidate: Candidate, connection) -> EmailMessage:
    exam = candidate.exam
    body = render_to_string(
        "email/invitation.txt",
        {
            "candidate": candidate,
            "exam": exam,
            "link": invitation_link(candidate),
            "check_link": system_check_link(candidate),
            "contact": settings.SUPPORT_CONTACT,
        },
    )
    return EmailMessage(
        subject=f"Your exam link: {exam.title}",
        body=body,
        to=[formataddr((candidate.name, candidate.email))],
        reply_to=[settings.SUPPORT_CONTACT] if settings.SUPPORT_CONTACT else None,
        connection=connection,
    )


def _why_not(candidate: Candidate, now) -> str:
    if not settings.SITE_URL:
        return "SITE_URL is not set, so the email would carry no working link"
    if not candidate.token_valid(now):
        return "the exam has closed"
    session = getattr(candidate, "session", None)
    if session is not None and session.is_finished:
        return "already finished the exam"
    return ""


def invitations_send(
    *, candidates: Iterable[Candidate], actor=None, actor_label: str = ""
) -> InvitationsSent:
    """Email each candidate their exam link. Candidates whose exam has closed or
    who have finished are skipped with a reason; a refused address does not stop
    the others. Each sent or failed invitation is one audit line."""
    result = InvitationsSent()
    now = timezone.now()
    connection = get_connection()
    for candidate in candidates:
        reason = _why_not(candidate, now) or _bad_address(candidate)
        if not reason:
            try:
                _message(candidate, connection).send()
            except (smtplib.SMTPException, OSError) as exc:
                log.warning("invitation to candidate %s failed: %s", candidate.pk, exc.__class__.__name__)
                reason = f"the mail server refused it ({exc.__class__.__name__})"
            except ValueError as exc:
                # Django refuses an address or header it cannot encode (BadHeaderError
                # is a ValueError) before the server sees it: this row's problem only.
                log.warning("invitation to candidate %s refused: %s", candidate.pk, exc.__class__.__name__)
                reason = "the address cannot be used in an email"
        if reason:
            result.skipped.append((candidate.email, reason))
        else:
            result.sent.append(candidate.email)
        # By id, never the email: the audit is append-only and outlives erasure.
        audit_record(
            action="invitation_sent" if not reason else "invitation_not_sent",
            actor=actor,
            actor_label=actor_label,
            exam=candidate.exam,
            session=getattr(candidate, "session", None),
            details={"candidate": candidate.pk, **({"reason": reason} if reason else {})},
        )
    return result


def _bad_address(candidate: Candidate) -> str:
    """Why the candidate's address cannot be written to, or "": a row the roster
    would refuse today may have been stored before (or edited in the admin)."""
    try:
        validate_email(candidate.email)
    except ValidationError:
        return "not a valid email address"
    if control_character(candidate.name):
        return "the name contains a control character"
    return ""
