"""Candidates' link tokens are masked in every log record, by one filter on the one handler."""

from __future__ import annotations

import io
import logging
import secrets
import sys
from collections.abc import Iterator

import pytest

from proctor.logfilters import MaskCandidateTokens, tokens_masked


def _token() -> str:
    return secrets.token_urlsafe(32)


def test_it_masks_page_and_socket_paths() -> None:
    token = _token()
    assert tokens_masked(f"GET /take/{token}/verify/photo 403") == "GET /take/[token]/verify/photo 403"
    assert (
        tokens_masked(f"WSCONNECT /ws/take/{token}/?resume=abc") == "WSCONNECT /ws/take/[token]/?resume=abc"
    )
    assert (
        tokens_masked(f"https://proctor.example.edu/take/{token}/")
        == "https://proctor.example.edu/take/[token]/"
    )
    assert tokens_masked(f"'/take/{token}'") == "'/take/[token]'"
    assert (
        tokens_masked("/accounts/login/ and /static/js/take_exam.js")
        == "/accounts/login/ and /static/js/take_exam.js"
    )


def test_it_masks_email_addresses() -> None:
    assert (
        tokens_masked("invitation to ada.lovelace+x@mail.example.org failed")
        == "invitation to [email] failed"
    )
    assert tokens_masked("audit: admin roster_row_import {'email': 'ada@example.org'}") == (
        "audit: admin roster_row_import {'email': '[email]'}"
    )


def test_it_masks_arguments_and_tracebacks_and_keeps_the_record() -> None:
    token = _token()
    try:
        raise ValueError(f"bad path /take/{token}/exam/")
    except ValueError:
        record = logging.LogRecord(
            "exams", logging.ERROR, __file__, 1, "Not Found: %s", (f"/take/{token}/exam/",), sys.exc_info()
        )
    assert MaskCandidateTokens().filter(record) is True
    text = logging.Formatter("%(message)s").format(record)
    assert token not in text
    assert "Not Found: /take/[token]/exam/" in text and "ValueError: bad path /take/[token]/exam/" in text


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """What the configured console handler (settings.LOGGING) writes, captured."""
    handler = next(
        h for h in logging.getLogger().handlers if any(isinstance(f, MaskCandidateTokens) for f in h.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


@pytest.mark.django_db
def test_it_masks_the_token_in_what_django_request_logs(client, console, exam) -> None:
    from tests.conftest import _candidate

    token = _candidate(exam, "Ada Lovelace", "ada@example.org").token
    assert client.get(f"/take/{token}/no-such-page/").status_code == 404
    logging.getLogger("exams.anything").warning("ours too: /ws/take/%s/ for %s", token, "ada@example.org")
    written = console.getvalue()
    assert "WARNING django.request Not Found: /take/[token]/no-such-page/" in written
    assert "ours too: /ws/take/[token]/ for [email]" in written
    assert token not in written and "ada@example.org" not in written
