"""Log records never carry a candidate's link token or an email address.

The token in ``/take/<token>/...`` and ``/ws/take/<token>/`` is the only
credential of an attempt, and Django writes request paths into its log
(``django.request``: "Forbidden: /take/<token>/verify/", "Not Found: ...").
One filter on the console handler (settings.LOGGING, and Celery's handlers in
proctor/celery.py) rewrites every record that reaches it, whichever logger
wrote it, so no caller has to remember. Email addresses (candidates', in invitation
and roster messages) are masked the same way: a log is kept longer and read by
more people than the rows that hold them, and erasure cannot reach it.
"""

from __future__ import annotations

import logging
import re

# The segment after take/ up to the next slash, query, quote or space. Broad on
# purpose: a made-up token is masked too, which costs nothing.
_TOKEN_IN_PATH = re.compile(r"(/(?:ws/)?take/)[^/\s?#\"'<>]+")
MASK = "[token]"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
EMAIL_MASK = "[email]"


def tokens_masked(text: str) -> str:
    """``text`` with the token segment of every candidate path replaced by [token],
    and every email address by [email]."""
    return _EMAIL.sub(EMAIL_MASK, _TOKEN_IN_PATH.sub(rf"\g<1>{MASK}", text))


class MaskCandidateTokens(logging.Filter):
    """Replaces the token segment of candidate paths, and email addresses, in a
    record's message and traceback. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the formatter's to report
            return True
        masked = tokens_masked(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = tokens_masked(record.exc_text)
        if record.stack_info:
            record.stack_info = tokens_masked(record.stack_info)
        return True
