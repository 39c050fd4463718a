"""Reviewers are assigned per exam, and what they look at is audited."""

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from exams.models import AuditEntry, Event
from exams.services.audit import VIEW_AUDIT_SECONDS
from tests.conftest import advance


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _flag(session, evidence: bool = True) -> Event:
    now = timezone.now()
    event = Event.objects.create(
        session=session,
        type="identity_mismatch",
        key="identity_mismatch",
        severity="high",
        started_at=now,
        ended_at=now,
        is_open=False,
    )
    if evidence:
        event.evidence.save("frame.jpg", ContentFile(b"\xff\xd8\xff\xe0 jpeg"), save=True)
    return event


@pytest.fixture
def finished(candidate, other_candidate):
    for c in (candidate, other_candidate):
        advance(c.session, "consented", "verified", "in_progress", "submitted")
    return candidate.session, other_candidate.session


@pytest.mark.django_db
def test_it_shows_a_reviewer_only_the_exams_they_review(reviewer, exam, other_exam, finished):
    mine, theirs = finished
    client = _login(reviewer)
    index = client.get("/review/").content.decode()
    assert exam.title in index and other_exam.title not in index
    assert client.get(f"/review/exams/{exam.code}").status_code == 200
    assert client.get(f"/review/exams/{other_exam.code}").status_code == 404
    assert client.get(f"/review/exams/{other_exam.code}/export.csv").status_code == 404
    assert client.get(f"/review/sessions/{mine.public_id}/").status_code == 200
    assert client.get(f"/review/sessions/{theirs.public_id}/").status_code == 404


@pytest.mark.django_db
def test_it_lets_a_reviewer_decide_only_their_exams(reviewer, finished):
    mine, theirs = finished
    event = _flag(theirs, evidence=False)
    client = _login(reviewer)
    assert client.post(f"/review/events/{event.public_id}/decide", {"decision": "dismiss"}).status_code == 404
    assert client.post(f"/review/sessions/{theirs.public_id}/decide", {"outcome": "clear"}).status_code == 404
    event.refresh_from_db()
    theirs.refresh_from_db()
    assert event.review_status == "pending" and theirs.state == "submitted"
    assert client.get(f"/evidence/{_flag(theirs).public_id}.jpg").status_code == 404
    client.post(f"/review/sessions/{mine.public_id}/decide", {"outcome": "clear"})
    mine.refresh_from_db()
    assert mine.state == "cleared"


@pytest.mark.django_db
def test_it_lets_a_superuser_review_every_exam(admin_user, other_exam, finished):
    _, theirs = finished
    client = _login(admin_user)
    assert other_exam.title in client.get("/review/").content.decode()
    assert client.get(f"/review/sessions/{theirs.public_id}/").status_code == 200


@pytest.mark.django_db
def test_it_still_shows_evidence_to_the_exams_proctor(proctor, other_proctor, finished):
    mine, _ = finished
    event = _flag(mine)
    assert _login(proctor).get(f"/evidence/{event.public_id}.jpg").status_code == 200
    assert _login(other_proctor).get(f"/evidence/{event.public_id}.jpg").status_code == 404


@pytest.mark.django_db
def test_it_audits_evidence_views_once_per_viewer_and_event(reviewer, second_reviewer, finished):
    mine, _ = finished
    first, second = _flag(mine), _flag(mine)
    client = _login(reviewer)
    for _ in range(3):  # a page reloaded: one row, not three
        response = client.get(f"/evidence/{first.public_id}.jpg")
        assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    client.get(f"/evidence/{second.public_id}.jpg")
    _login(second_reviewer).get(f"/evidence/{first.public_id}.jpg")
    rows = AuditEntry.objects.filter(action="evidence_view")
    assert sorted((r.actor_label, r.details["event"]) for r in rows) == sorted(
        [
            ("reviewer", str(first.public_id)),
            ("reviewer", str(second.public_id)),
            ("second_reviewer", str(first.public_id)),
        ]
    )
    assert all(r.session_id == mine.pk for r in rows)
    assert VIEW_AUDIT_SECONDS == 600


@pytest.mark.django_db
def test_it_audits_report_views(reviewer, finished):
    mine, _ = finished
    client = _login(reviewer)
    client.get(f"/review/sessions/{mine.public_id}/")
    client.get(f"/review/sessions/{mine.public_id}/")
    assert AuditEntry.objects.filter(action="report_view", actor=reviewer, session=mine).count() == 1


def _run(*args) -> str:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_assigns_the_demo_reviewers_to_the_demo_exam(settings, tmp_path, monkeypatch):
    from exams.models import Exam

    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-1")
    _run("seed_demo")
    exam = Exam.objects.get(title="Demo exam")
    assert sorted(exam.reviewers.values_list("username", flat=True)) == ["reviewer", "reviewer2"]


@pytest.mark.django_db
def test_it_creates_an_exam_with_its_reviewers(proctor, reviewer):
    import json

    from django.core.management.base import CommandError

    from exams.models import Exam

    data = json.loads(_run("create_exam", "--title", "Physics", "--reviewer", "reviewer", "--json"))
    assert list(Exam.objects.get(code=data["exam"]).reviewers.all()) == [reviewer]
    with pytest.raises(CommandError, match="unknown reviewer"):
        _run("create_exam", "--title", "Chemistry", "--reviewer", "nobody")
