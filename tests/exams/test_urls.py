"""Every URL the product prints, redirects to, renders or pushes comes from the
URLconf (``reverse()``, ``{% url %}``), never from a string typed in twice.

The proof: mount the site under a prefix, as behind a reverse proxy with
``FORCE_SCRIPT_NAME``. A URL built by hand would still start at ``/``.
"""

import io
import json
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.test import Client
from django.urls import clear_script_prefix, set_script_prefix
from django.utils import timezone

from exams import live, services
from exams.models import Event, ExamSession, Message
from tests.conftest import _candidate, advance

PREFIX = "/office"
ROOT = Path(__file__).resolve().parents[2]
# An attribute holding a path: a link, a form, a picture, or a URL handed to a script.
URL_ATTRIBUTE = re.compile(r'\b(href|src|action|data-[\w-]+)="(/[^"]*)"')


@pytest.fixture
def under_a_prefix(settings):
    # Django caches the static storage's URL, prefixed or not, when first used.
    # Pinned here, it stays unprefixed in this test and is reset after it.
    settings.STATIC_URL = settings.STATIC_URL
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


def _event(session, with_evidence: bool = False) -> Event:
    now = timezone.now()
    event = Event.objects.create(
        session=session, type="tab_hidden", key="tab_hidden", severity="medium", started_at=now, ended_at=now
    )
    if with_evidence:
        event.evidence.save("frame.jpg", ContentFile(b"\xff\xd8\xff"))
    return event


def _paths_on(client: Client, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, url
    return [path for _, path in URL_ATTRIBUTE.findall(response.content.decode())]


@pytest.mark.django_db
def test_every_page_links_under_the_prefix(exam, live_session, proctor, reviewer, admin_user, under_a_prefix):
    services.message_from_candidate(session=live_session, text="Hello")
    services.proctor_act(session=live_session, actor=proctor, action="warn", text="")
    _event(live_session, with_evidence=True)
    token = live_session.candidate.token
    invited = _candidate(exam, "Ada Lovelace", "ada@example.org").token
    consented = _candidate(exam, "Alan Turing", "alan@example.org")
    advance(consented.session, "consented")
    done = _candidate(exam, "Grace Hopper", "grace@example.org")
    advance(done.session, "consented", "verified", "in_progress", "submitted")
    pages = [
        (admin_user, "/"),
        (None, "/accounts/login/"),
        (None, f"/take/{invited}/"),
        (None, f"/take/{consented.token}/verify/"),
        (None, f"/take/{token}/exam/"),
        (None, f"/take/{done.token}/done/"),
        (proctor, "/proctor/"),
        (proctor, f"/proctor/exams/{exam.code}/live"),
        (proctor, f"/proctor/sessions/{live_session.public_id}/"),
        (reviewer, "/review/"),
        (reviewer, f"/review/exams/{exam.code}"),
        (reviewer, f"/review/sessions/{live_session.public_id}/"),
        (admin_user, f"/admin/exams/exam/{exam.pk}/change/"),
        (admin_user, f"/admin/exams/exam/{exam.pk}/roster/"),
    ]
    for user, url in pages:
        client = Client()
        if user is not None:
            client.force_login(user)
        # Static files are not routes (and under_a_prefix pins their URL).
        paths = [path for path in _paths_on(client, url) if "/static/" not in path]
        assert paths, url
        # (The admin's "View site" is the prefix itself.)
        assert [path for path in paths if not (path + "/").startswith(f"{PREFIX}/")] == [], url


@pytest.mark.django_db
def test_the_pages_hand_their_scripts_the_socket_and_next_urls(exam, live_session, proctor, under_a_prefix):
    token = live_session.candidate.token
    page = Client().get(f"/take/{token}/exam/").content.decode()
    assert f'data-ws-path="{PREFIX}/ws/take/{token}/"' in page
    assert f'data-done-url="{PREFIX}/take/{token}/done/"' in page
    client = Client()
    client.force_login(proctor)
    for url in (f"/proctor/exams/{exam.code}/live", f"/proctor/sessions/{live_session.public_id}/"):
        assert f'data-ws-path="{PREFIX}/ws/proctor/exams/{exam.code}/"' in client.get(url).content.decode()


def test_the_socket_paths_are_the_routes_the_consumers_serve():
    """The websocket tests connect to these paths, so they reach the consumers."""
    assert live.socket_path("candidate_socket", "abc") == "/ws/take/abc/"
    code = "6f1c1b5e-7d7a-4a53-9c3e-1d2b3c4d5e6f"
    assert live.socket_path("proctor_socket", code) == f"/ws/proctor/exams/{code}/"


@pytest.mark.django_db
def test_the_pushed_session_carries_its_links_and_state_label(live_session, under_a_prefix):
    payload = live.session_payload(live_session)
    session_url = f"{PREFIX}/proctor/sessions/{live_session.public_id}/"
    assert payload["url"] == session_url
    assert live.event_payload(_event(live_session))["session_url"] == session_url
    for state in ExamSession.State:
        live_session.state = state
        assert live.session_payload(live_session)["state_label"] == live_session.get_state_display()


@pytest.mark.django_db
def test_the_pushed_lines_carry_the_speaker_the_pages_show(live_session, proctor, under_a_prefix):
    services.message_from_candidate(session=live_session, text="My camera froze.")
    services.proctor_act(session=live_session, actor=proctor, action="message", text="Thanks.")
    services.proctor_act(session=live_session, actor=proctor, action="warn", text="")
    lines = list(Message.objects.filter(session=live_session))
    for_staff = [live.message_payload(m) for m in lines]
    assert [p["speaker"] for p in for_staff] == [
        "Barack Obama",
        "Proctor",  # the user named "proctor" is not "Proctor proctor"
        "Proctor (warning)",
    ]
    assert [p["speaker"] for p in for_staff] == [m.speaker for m in lines]
    assert {p["session_url"] for p in for_staff} == {f"{PREFIX}/proctor/sessions/{live_session.public_id}/"}
    for_candidate = [live.candidate_message_payload(m) for m in lines]
    assert [p["speaker"] for p in for_candidate] == ["You", "Proctor", "Proctor (warning)"]
    assert [p["speaker"] for p in for_candidate] == [m.speaker_for_candidate for m in lines]

    # The pages say the same as the pushes.
    candidate_page = Client().get(f"/take/{live_session.candidate.token}/exam/").content.decode()
    staff = Client()
    staff.force_login(proctor)
    staff_page = staff.get(f"/proctor/sessions/{live_session.public_id}/").content.decode()
    for page, payloads in ((candidate_page, for_candidate), (staff_page, for_staff)):
        shown = re.findall(r'<span class="who">([^<]*)</span>', page)
        assert shown == [p["speaker"] for p in payloads]


SCRIPTS = sorted((ROOT / "static" / "js").glob("*.js"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_no_script_builds_a_url_or_copies_a_label(script):
    """URLs reach scripts in data-* attributes or in the socket's payloads, and
    labels in the payloads: a script that types one in drifts from the server."""
    source = script.read_text()
    for route in ("/ws/", "/take/", "/proctor/", "/review/", "/evidence/", "/admin/", "/accounts/"):
        assert route not in source, f"{script.name} builds a {route} URL; take it from the page or payload"
    for label in ("STATE_LABELS", "In progress", "(warning)", '"You"', "Proctor ${"):
        assert label not in source, f"{script.name} copies the label {label!r}; the payload carries it"


@pytest.mark.parametrize(
    "template",
    sorted((ROOT / "templates").rglob("*.html")),
    ids=lambda path: str(path.parent.name + "/" + path.name),
)
def test_no_template_types_a_path(template):
    typed = URL_ATTRIBUTE.findall(template.read_text())
    assert typed == [], f"use {{% url %}} or {{% socket_path %}} in {template.name}"
