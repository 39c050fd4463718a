"""The candidate's pages around the exam: the timer's data, the finish
confirmation and full screen prompt markup, declining consent, the system
check, and the verification give-up. The pages' behaviour in a browser is in
tests/e2e/test_candidate_pages_in_browser.py."""

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from exams.models import AuditEntry, ExamSession
from exams.views.candidate import CHECK_DOWNLOAD_BYTES
from tests.conftest import advance

pytestmark = pytest.mark.django_db


def _attribute(html: str, name: str) -> str:
    return html.split(f'{name}="', 1)[1].split('"', 1)[0]


def test_it_renders_the_server_deadline_and_clock_into_the_exam_page(live_session):
    live_session.extra_minutes = 15
    live_session.save(update_fields=["extra_minutes"])
    before = timezone.now()
    html = Client().get(f"/take/{live_session.candidate.token}/exam/").content.decode()
    deadline = datetime.fromisoformat(_attribute(html, "data-deadline"))
    server_now = datetime.fromisoformat(_attribute(html, "data-server-now"))
    assert deadline == live_session.deadline  # duration plus the extra time
    assert before <= server_now <= timezone.now()
    assert 'id="timer"' in html and 'role="timer"' in html
    assert 'id="time-warning"' in html and 'aria-live="assertive"' in html


def test_it_puts_the_finish_confirmation_on_the_exam_page(live_session):
    html = Client().get(f"/take/{live_session.candidate.token}/exam/").content.decode()
    assert '<dialog id="finish-dialog"' in html and "Finish the exam now?" in html
    assert "onclick" not in html and "<script>" not in html  # the CSP allows no inline script


def test_it_asks_for_full_screen_only_when_the_exam_requires_it(live_session):
    url = f"/take/{live_session.candidate.token}/exam/"
    assert 'id="fullscreen-prompt"' not in Client().get(url).content.decode()
    live_session.exam.requires_fullscreen = True
    live_session.exam.save(update_fields=["requires_fullscreen"])
    html = Client().get(url).content.decode()
    assert 'id="fullscreen-prompt"' in html and 'data-requires-fullscreen="true"' in html


def test_it_explains_declining_on_the_consent_page(candidate):
    html = Client().get(f"/take/{candidate.token}/").content.decode()
    assert "If you do not agree" in html
    assert f'action="/take/{candidate.token}/decline"' in html
    assert f'href="/take/{candidate.token}/check/"' in html


def test_it_records_a_decline_and_says_whom_to_contact(candidate, settings):
    settings.SUPPORT_CONTACT = "exams@example.edu"
    response = Client().post(f"/take/{candidate.token}/decline")
    html = response.content.decode()
    assert response.status_code == 200
    assert "cannot be started from this link without your agreement" in html
    assert 'href="mailto:exams@example.edu"' in html
    entry = AuditEntry.objects.get(action="consent_declined")
    assert entry.session == candidate.session and entry.actor_label.startswith("candidate")
    # The candidate can still change their mind.
    assert ExamSession.objects.get(pk=candidate.session.pk).state == "invited"
    assert Client().get(f"/take/{candidate.token}/decline").status_code == 405


def test_it_does_not_record_a_decline_after_consent(candidate):
    advance(candidate.session, "consented")
    response = Client().post(f"/take/{candidate.token}/decline")
    assert response.status_code == 302 and response["Location"].endswith("/verify/")
    assert not AuditEntry.objects.filter(action="consent_declined").exists()


@pytest.mark.parametrize("state", [(), ("consented",), ("consented", "verified", "in_progress", "submitted")])
def test_it_serves_the_system_check_in_any_state_and_changes_nothing(candidate, state):
    advance(candidate.session, *state)
    before = ExamSession.objects.values().get(pk=candidate.session.pk)
    client = Client()
    page = client.get(f"/take/{candidate.token}/check/")
    assert page.status_code == 200 and b"system_check.js" in page.content
    download = client.get(f"/take/{candidate.token}/check/download")
    assert len(download.content) == CHECK_DOWNLOAD_BYTES and download["Cache-Control"] == "no-store"
    assert client.get(f"/take/{candidate.token}/check/ping").status_code == 204
    upload = client.post(
        f"/take/{candidate.token}/check/upload", b"x" * 1000, content_type="application/octet-stream"
    )
    assert upload.status_code == 204
    too_big = client.post(
        f"/take/{candidate.token}/check/upload",
        b"x" * (CHECK_DOWNLOAD_BYTES + 1),
        content_type="application/octet-stream",
    )
    assert too_big.status_code == 413
    assert ExamSession.objects.values().get(pk=candidate.session.pk) == before
    assert not AuditEntry.objects.exists()


def test_it_refuses_the_system_check_for_an_unknown_link(db):
    assert Client().get("/take/not-a-token/check/").status_code == 404
    assert Client().get("/take/not-a-token/check/download").status_code == 404


def test_it_refuses_the_system_check_once_the_exam_closed(candidate):
    exam = candidate.exam
    exam.closes_at = timezone.now() - timedelta(minutes=1)
    exam.opens_at = exam.closes_at - timedelta(hours=1)
    exam.save()
    assert Client().get(f"/take/{candidate.token}/check/").status_code == 410
