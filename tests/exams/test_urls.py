"""Every URL the product prints, redirects to, renders or pushes comes from the
URLconf (``reverse()``, ``{% url %}``), never from a string typed in twice.

The proof: mount the site under a prefix, as behind a reverse proxy with
``FORCE_SCRIPT_NAME``. A URL built by hand would still start at ``/``.
"""

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import clear_script_prefix, set_script_prefix
from django.utils import timezone

from exams.models import Event
from tests.conftest import advance

PREFIX = "/office"


@pytest.fixture
def under_a_prefix(settings):
    settings.FORCE_SCRIPT_NAME = PREFIX  # what a request sets the prefix from
    set_script_prefix(f"{PREFIX}/")  # what management commands and tasks use
    yield PREFIX
    clear_script_prefix()


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_prints_the_same_exam_urls_as_before(proctor):
    data = json.loads(_run("create_exam", "--title", "Physics", "--proctor", "proctor", "--json"))
    assert data["live_url"] == f"/proctor/exams/{data['exam']}/live"
    assert data["review_url"] == f"/review/exams/{data['exam']}"


@pytest.mark.django_db
def test_it_prints_exam_urls_under_the_prefix(proctor, under_a_prefix):
    data = json.loads(_run("create_exam", "--title", "Physics", "--proctor", "proctor", "--json"))
    assert data["live_url"] == f"{PREFIX}/proctor/exams/{data['exam']}/live"
    assert data["review_url"] == f"{PREFIX}/review/exams/{data['exam']}"


def _demo(settings, tmp_path, monkeypatch) -> tuple[str, object]:
    from exams.models import Exam

    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-1")
    out = _run("seed_demo", "--base-url", "http://exam.example")
    return out, Exam.objects.get(title="Demo exam")


@pytest.mark.django_db
def test_it_seeds_a_demo_and_prints_the_same_urls_as_before(settings, tmp_path, monkeypatch):
    out, exam = _demo(settings, tmp_path, monkeypatch)
    lines = out.splitlines()
    base = "http://exam.example"
    assert f"  Staff sign-in:  {base}/accounts/login/" in lines
    assert (
        f"  Administrator:  admin / demo-password-1   exams and roster import: "
        f"{base}/admin/exams/exam/{exam.pk}/roster/"
    ) in lines
    assert (
        f"  Proctor:        proctor / demo-password-1   live grid: {base}/proctor/exams/{exam.code}/live"
        in lines
    )
    assert (
        f"  Reviewers:      reviewer / demo-password-1 and reviewer2 / demo-password-1   "
        f"{base}/review/exams/{exam.code}"
    ) in lines
    for candidate in exam.candidates.all():
        assert f"    {candidate.name:<14} {base}/take/{candidate.token}/" in lines


@pytest.mark.django_db
def test_it_seeds_a_demo_with_every_url_under_the_prefix(settings, tmp_path, monkeypatch, under_a_prefix):
    out, _ = _demo(settings, tmp_path, monkeypatch)
    urls = [word for word in out.split() if word.startswith("http://")]
    assert len(urls) == 7
    assert all(url.startswith(f"http://exam.example{PREFIX}/") for url in urls), urls


@pytest.mark.django_db
def test_the_candidate_link_follows_the_urlconf(candidate, under_a_prefix):
    assert candidate.link_path() == f"{PREFIX}/take/{candidate.token}/"


@pytest.mark.django_db
def test_a_review_decision_goes_back_to_the_event_under_the_prefix(candidate, reviewer, under_a_prefix):
    session = candidate.session
    advance(session, "consented", "verified", "in_progress", "submitted")
    now = timezone.now()
    event = Event.objects.create(
        session=session, type="tab_hidden", key="tab_hidden", severity="medium", started_at=now, ended_at=now
    )
    client = Client()
    client.force_login(reviewer)
    response = client.post(f"/review/events/{event.public_id}/decide", {"decision": "dismiss"})
    assert response.status_code == 302
    assert response["Location"] == f"{PREFIX}/review/sessions/{session.public_id}/#event-{event.public_id}"
