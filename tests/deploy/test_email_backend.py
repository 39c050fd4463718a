"""The console email backend prints invitations, links included: on a server
(DATABASE_URL set) it is used only when EMAIL_BACKEND=console asks for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Sends one message with the configured backend; prints the backend and what happened.
SEND = """
import json
from django.conf import settings
from django.core.mail import EmailMessage
try:
    sent = EmailMessage("Your exam link", "http://x/take/t/", to=["ada@example.org"]).send()
    outcome = f"sent {sent}"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print("RESULT " + json.dumps({"backend": settings.EMAIL_BACKEND, "outcome": outcome}))
"""


def _send(tmp_path: Path, **env: str) -> dict:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SEND],
        cwd=REPO,
        env={**keep, "VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return {**json.loads(line.removeprefix("RESULT ")), "stdout": result.stdout}


SERVER = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/proctor",
    "SECRET_KEY": "test-only-not-a-secret",
}


def test_it_refuses_to_send_on_a_server_until_email_backend_is_set(tmp_path: Path) -> None:
    found = _send(tmp_path, **SERVER)
    assert found["backend"] == "exams.mail.NotConfiguredEmailBackend"
    assert found["outcome"].startswith("EmailNotConfigured: EMAIL_BACKEND is not set: set EMAIL_BACKEND=smtp")
    assert "take/t/" not in found["stdout"].replace(found["outcome"], "")


@pytest.mark.parametrize(
    ("env", "backend"),
    [
        ({**SERVER, "EMAIL_BACKEND": "console"}, "django.core.mail.backends.console.EmailBackend"),
        ({}, "django.core.mail.backends.console.EmailBackend"),
    ],
    ids=["a server that asks for console", "a laptop"],
)
def test_it_prints_mail_only_where_that_is_asked_or_harmless(tmp_path: Path, env: dict, backend: str) -> None:
    found = _send(tmp_path, **env)
    assert found["backend"] == backend and found["outcome"] == "sent 1"
    assert "http://x/take/t/" in found["stdout"]


def test_it_uses_smtp_when_asked(tmp_path: Path) -> None:
    assert _send(tmp_path, **SERVER, EMAIL_BACKEND="smtp", EMAIL_HOST="127.0.0.1", EMAIL_PORT="1")[
        "backend"
    ] == ("django.core.mail.backends.smtp.EmailBackend")


@pytest.mark.django_db
def test_it_reports_invitations_as_not_sent_without_a_backend(settings, exam) -> None:
    from exams.services.invitations import invitations_send
    from tests.conftest import _candidate

    settings.EMAIL_BACKEND = "exams.mail.NotConfiguredEmailBackend"
    settings.SITE_URL = "https://proctor.example.edu"
    candidate = _candidate(exam, "Ada Lovelace", "ada@example.org")
    result = invitations_send(candidates=[candidate])
    assert result.sent == []
    assert [(email, "EmailNotConfigured" in reason) for email, reason in result.skipped] == [
        ("ada@example.org", True)
    ]
