"""The email backend of a server whose operator has not chosen one.

Django's console backend prints every message, invitation links (candidates'
credentials) included, to the log and counts it as sent. On a server
(DATABASE_URL set) it is therefore used only when EMAIL_BACKEND=console says
so; until EMAIL_BACKEND is set, sending is refused with a one-line reason.
"""

from __future__ import annotations

import smtplib

from django.core.mail.backends.base import BaseEmailBackend

REASON = (
    "EMAIL_BACKEND is not set: set EMAIL_BACKEND=smtp (and EMAIL_HOST, ...) to send email, "
    "or EMAIL_BACKEND=console to print it, links included, to the log"
)


class EmailNotConfigured(smtplib.SMTPException):
    """Raised for every message; an SMTPException, so callers that survive a
    refusing mail server (exams.services.invitations) survive this too."""


class NotConfiguredEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        if self.fail_silently or not email_messages:
            return 0
        raise EmailNotConfigured(REASON)
