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
    assert b"cleared by a reviewer. Its decisions are locked" in response.content
    finished_session.refresh_from_db()
    assert finished_session.state == "cleared"


def _final_violation(session, reviewer, second_reviewer) -> None:
    url = f"/review/sessions/{session.public_id}/decide"
    _login(reviewer).post(url, {"outcome": "violation"})
    _login(second_reviewer).post(url, {"outcome": "violation"})
    session.refresh_from_db()
    assert session.state == "violation"


LOCKED = "This session&#x27;s outcome is final: a violation, confirmed by two reviewers."


@pytest.mark.django_db
def test_it_locks_the_decisions_of_a_final_violation(reviewer, second_reviewer, event):
    session = event.session
    client = _login(reviewer)
    client.post(f"/review/events/{event.public_id}/decide", {"decision": "confirm"})
    _final_violation(session, reviewer, second_reviewer)
    decided = AuditEntry.objects.exclude(action="report_view")  # the pages shown are audited too
    decisions, audit = ReviewDecision.objects.count(), decided.count()

    page = client.post(f"/review/events/{event.public_id}/decide", {"decision": "dismiss"}, follow=True)
    assert LOCKED in page.content.decode()
    bulk = f"/review/sessions/{session.public_id}/decide-type"
    page = client.post(bulk, {"type": event.type, "decision": "dismiss"}, follow=True)
    assert LOCKED in page.content.decode()
    page = _login(second_reviewer).post(
        f"/review/sessions/{session.public_id}/decide", {"outcome": "clear"}, follow=True
    )
    assert LOCKED in page.content.decode()
    answer = client.post(
        f"/review/events/{event.public_id}/decide", {"decision": "dismiss"}, HTTP_ACCEPT="application/json"
    )
    assert answer.status_code == 409
    assert answer.json()["error"].startswith("This session's outcome is final: a violation")

    event.refresh_from_db()
    session.refresh_from_db()
    assert event.review_status == "confirmed" and session.state == "violation"
    assert ReviewDecision.objects.count() == decisions and decided.count() == audit
    workbench = client.get(f"/review/sessions/{session.public_id}/").content.decode()
    assert 'id="workbench" data-session="' in workbench and "data-locked>" in workbench
    assert f'<p id="decisions-locked" class="msg info">{LOCKED}' in workbench


@pytest.mark.django_db
def test_it_locks_the_events_of_a_cleared_session(reviewer, event):
    session = event.session
    client = _login(reviewer)
    client.post(f"/review/sessions/{session.public_id}/decide", {"outcome": "clear"})
    page = client.post(f"/review/events/{event.public_id}/decide", {"decision": "confirm"}, follow=True)
    assert "cleared by a reviewer. Its decisions are locked" in page.content.decode()
    event.refresh_from_db()
    assert event.review_status == "pending"


@pytest.mark.django_db
def test_it_says_in_the_admin_that_a_final_sessions_decisions_are_locked(
    admin_client, reviewer, second_reviewer, event
):
    session = event.session
    assert LOCKED not in admin_client.get(f"/admin/exams/examsession/{session.pk}/change/").content.decode()
    _final_violation(session, reviewer, second_reviewer)
    for page in (f"/admin/exams/examsession/{session.pk}/change/", f"/admin/exams/event/{event.pk}/change/"):
        assert LOCKED in admin_client.get(page).content.decode()


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
