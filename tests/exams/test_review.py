"""Reviewers confirm or dismiss events; a violation needs a second reviewer."""

import pytest
from django.test import Client
from django.utils import timezone

from exams.models import AuditEntry, Event, ReviewDecision
from tests.conftest import advance


@pytest.fixture
def finished_session(candidate):
    session = candidate.session
    advance(session, "consented", "verified", "in_progress", "submitted")
    return session


@pytest.fixture
def event(finished_session):
    now = timezone.now()
    return Event.objects.create(
        session=finished_session,
        type="identity_mismatch",
        key="identity_mismatch",
        severity="high",
        started_at=now,
        ended_at=now,
        confidence=0.8,
        is_open=False,
    )


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_it_confirms_and_dismisses_events_with_an_audit_line(reviewer, event):
    client = _login(reviewer)
    client.post(f"/review/events/{event.public_id}/decide", {"decision": "dismiss"})
    event.refresh_from_db()
    assert event.review_status == "dismissed"
    client.post(f"/review/events/{event.public_id}/decide", {"decision": "confirm"})
    event.refresh_from_db()
    assert event.review_status == "confirmed"
    assert list(
        AuditEntry.objects.filter(actor=reviewer).values_list("action", flat=True).order_by("created_at")
    ) == ["event_dismiss", "event_confirm"]


@pytest.mark.django_db
def test_it_needs_two_reviewers_for_a_violation(reviewer, second_reviewer, finished_session):
    url = f"/review/sessions/{finished_session.public_id}/decide"
    _login(reviewer).post(url, {"outcome": "violation"})
    _login(reviewer).post(url, {"outcome": "violation"})  # the same reviewer twice is still one vote
    finished_session.refresh_from_db()
    assert finished_session.state == "submitted"
    page = _login(second_reviewer).get(f"/review/sessions/{finished_session.public_id}/")
    assert b"Confirm violation" in page.content and b"reviewer" in page.content
    _login(second_reviewer).post(url, {"outcome": "violation"})
    finished_session.refresh_from_db()
    assert finished_session.state == "violation"
    assert ReviewDecision.objects.filter(session=finished_session, decision="violation").count() == 3


@pytest.mark.django_db
def test_it_clears_a_session_once(reviewer, finished_session):
    url = f"/review/sessions/{finished_session.public_id}/decide"
    _login(reviewer).post(url, {"outcome": "clear"})
    finished_session.refresh_from_db()
    assert finished_session.state == "cleared"
    response = _login(reviewer).post(url, {"outcome": "violation"}, follow=True)
    assert b"cannot be reviewed" in response.content
    finished_session.refresh_from_db()
    assert finished_session.state == "cleared"


@pytest.mark.django_db
def test_it_shows_an_explained_risk_score(reviewer, event):
    page = _login(reviewer).get(f"/review/sessions/{event.session.public_id}/")
    assert b"Risk score: 24 / 100" in page.content  # 30 points for high severity x 0.8 confidence
    assert b"identity_mismatch" in page.content


@pytest.mark.django_db
def test_it_sorts_sessions_by_their_flags(reviewer, exam, candidate, obama_encoding):
    from tests.conftest import _candidate

    quiet = _candidate(exam, "Quiet Candidate", "quiet@example.org")
    now = timezone.now()
    Event.objects.create(
        session=candidate.session,
        type="multiple_faces",
        key="multiple_faces",
        severity="high",
        started_at=now,
        ended_at=now,
        is_open=False,
    )
    page = _login(reviewer).get(f"/review/exams/{exam.code}").content.decode()
    assert page.index("Barack Obama") < page.index(quiet.name)
