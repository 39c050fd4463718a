"""Invitation links on the candidate's admin page and invitation emails from the admin."""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from exams import services
from exams.models import AuditEntry
from tests.conftest import _candidate, advance

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = "https://proctor.example.edu"


def test_it_sends_no_invitation_without_the_sites_address(candidate, settings):
    settings.SITE_URL = ""
    result = services.invitations_send(candidates=[candidate], actor_label="cli")
    assert result.sent == [] and "SITE_URL is not set" in result.skipped[0][1]
    assert mail.outbox == []


def _admin(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_shows_the_absolute_invitation_link_on_the_candidates_admin_page(registrar, candidate, settings):
    settings.SITE_URL = "https://proctor.example.edu"
    html = _admin(registrar).get(f"/admin/exams/candidate/{candidate.pk}/change/").content.decode()
    link = f"https://proctor.example.edu/take/{candidate.token}/"
    assert f'<a href="{link}">{link}</a>' in html


def test_it_sends_invitations_from_the_admin_and_audits_each(registrar, exam, candidate, settings):
    settings.SITE_URL = "https://proctor.example.edu"
    settings.SUPPORT_CONTACT = "exams@example.edu"
    done = _candidate(exam, "Eileen Collins", "eileen@example.org")
    advance(done.session, "consented", "verified", "in_progress", "submitted")
    response = _admin(registrar).post(
        "/admin/exams/candidate/",
        {"action": "send_invitations", "_selected_action": [candidate.pk, done.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 invitation sent, 1 not sent (eileen@example.org: already finished the exam)" in (
        response.content.decode()
    )
    [message] = mail.outbox
    assert message.to == ["Barack Obama <barack@example.org>"] and message.reply_to == ["exams@example.edu"]
    assert "Algebra final" in message.subject
    assert f"https://proctor.example.edu/take/{candidate.token}/" in message.body
    assert f"https://proctor.example.edu/take/{candidate.token}/check/" in message.body
    sent = AuditEntry.objects.get(action="invitation_sent")
    assert sent.actor == registrar and sent.details == {"candidate": candidate.pk}, "by id, never the email"
    assert AuditEntry.objects.get(action="invitation_not_sent").session == done.session


def test_it_does_not_invite_to_a_closed_exam(exam, candidate):
    exam.opens_at = timezone.now() - timedelta(days=2)
    exam.closes_at = timezone.now() - timedelta(days=1)
    exam.save()
    result = services.invitations_send(candidates=[candidate], actor_label="cli")
    assert result.sent == [] and result.skipped == [("barack@example.org", "the exam has closed")]
    assert mail.outbox == []


def test_it_goes_on_when_the_mail_server_refuses_one(exam, candidate, monkeypatch):
    import smtplib

    other = _candidate(exam, "Eileen Collins", "eileen@example.org")
    from django.core.mail.backends.locmem import EmailBackend

    real = EmailBackend.send_messages

    def refuse_barack(self, messages):
        if "barack@example.org" in messages[0].to[0]:
            raise smtplib.SMTPRecipientsRefused({"barack@example.org": (550, b"no such user")})
        return real(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", refuse_barack)  # the mail server is the outside world
    result = services.invitations_send(candidates=[candidate, other], actor_label="cli")
    assert result.sent == ["eileen@example.org"]
    assert result.skipped == [("barack@example.org", "the mail server refused it (SMTPRecipientsRefused)")]
