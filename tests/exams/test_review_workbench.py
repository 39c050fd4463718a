"""The reviewer's workbench: decisions in JSON without a reload, bulk decisions
by event type, the decision state, my queue and the next session in it, the
reference photo and the clip frames."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from exams.models import AuditEntry, Event, EventFrame, ReviewDecision
from tests.conftest import _candidate, advance, photo_bytes

JSON = {"HTTP_ACCEPT": "application/json"}


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _finished(candidate):
    advance(candidate.session, "consented", "verified", "in_progress", "submitted")
    return candidate.session


def _event(session, event_type="tab_hidden", severity="medium", minutes=0) -> Event:
    at = timezone.now() - timedelta(minutes=30 - minutes)
    return Event.objects.create(
        session=session,
        type=event_type,
        key=f"{event_type}-{minutes}",
        severity=severity,
        started_at=at,
        ended_at=at + timedelta(seconds=20),
        is_open=False,
    )


@pytest.fixture
def finished_session(candidate):
    return _finished(candidate)


@pytest.fixture
def assigned(exam, reviewer, second_reviewer):
    exam.reviewers.add(reviewer, second_reviewer)
    return exam


@pytest.mark.django_db
def test_it_confirms_an_event_in_json_when_asked(reviewer, finished_session):
    event = _event(finished_session, "multiple_faces", "high")
    response = _login(reviewer).post(
        f"/review/events/{event.public_id}/decide", {"decision": "confirm"}, **JSON
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    data = response.json()
    assert data["events"] == [
        {
            "id": str(event.public_id),
            "type": "multiple_faces",
            "label": "multiple faces",
            "review_status": "confirmed",
        }
    ]
    assert data["risk"] == 30 and data["decision_state"] == "awaiting_review"
    event.refresh_from_db()
    assert event.review_status == "confirmed"


@pytest.mark.django_db
def test_it_still_redirects_a_plain_form_post(reviewer, finished_session):
    event = _event(finished_session)
    response = _login(reviewer).post(f"/review/events/{event.public_id}/decide", {"decision": "dismiss"})
    assert response.status_code == 302 and response["Location"].endswith(f"#event-{event.public_id}")


@pytest.mark.django_db
def test_it_answers_a_bad_decision_in_json_with_an_error(reviewer, finished_session):
    event = _event(finished_session)
    response = _login(reviewer).post(
        f"/review/events/{event.public_id}/decide", {"decision": "maybe"}, **JSON
    )
    assert response.status_code == 400 and "unknown event decision" in response.json()["error"]


@pytest.mark.django_db
def test_it_dismisses_every_event_of_one_type_at_once(reviewer, finished_session):
    hidden = [_event(finished_session, "tab_hidden", minutes=m) for m in (1, 2, 3)]
    already = _event(finished_session, "tab_hidden", minutes=4)
    already.review_status = "dismissed"
    already.save()
    other = _event(finished_session, "multiple_faces", "high", minutes=5)
    url = f"/review/sessions/{finished_session.public_id}/decide-type"

    data = _login(reviewer).post(url, {"type": "tab_hidden", "decision": "dismiss"}, **JSON).json()
    assert sorted(e["id"] for e in data["events"]) == sorted(str(e.public_id) for e in hidden)
    assert set(Event.objects.filter(type="tab_hidden").values_list("review_status", flat=True)) == {
        "dismissed"
    }
    other.refresh_from_db()
    assert other.review_status == "pending"
    assert data["risk"] == 30  # only the multiple_faces counts now
    # Each event decided as if one by one: a decision and an audit line each.
    assert ReviewDecision.objects.filter(decision="dismiss", reviewer=reviewer).count() == 3
    assert AuditEntry.objects.filter(action="event_dismiss", actor=reviewer).count() == 3

    page = _login(reviewer).post(url, {"type": "multiple_faces", "decision": "confirm"}, follow=True)
    assert b"1 multiple_faces event(s) changed." in page.content
    other.refresh_from_db()
    assert other.review_status == "confirmed"


@pytest.mark.django_db
def test_it_refuses_bulk_decisions_to_non_reviewers(proctor, outsider, finished_session):
    _event(finished_session)
    url = f"/review/sessions/{finished_session.public_id}/decide-type"
    for user in (proctor, outsider):
        assert _login(user).post(url, {"type": "tab_hidden", "decision": "dismiss"}).status_code == 403
    assert not Event.objects.filter(review_status="dismissed").exists()


@pytest.mark.django_db
def test_it_shows_awaiting_second_reviewer_and_the_risk_on_the_exam_list(
    reviewer, second_reviewer, assigned, finished_session
):
    _event(finished_session, "multiple_faces", "high")
    decide = f"/review/sessions/{finished_session.public_id}/decide"
    data = _login(reviewer).post(decide, {"outcome": "violation"}, **JSON).json()
    assert data["result"] == "awaiting_second_reviewer"
    assert data["decision_state_label"] == "Awaiting second reviewer" and data["state"] == "submitted"

    page = _login(reviewer).get(f"/review/exams/{assigned.code}").content.decode()
    assert "Awaiting second reviewer" in page
    assert '<span class="risk-score risk-medium">30</span>' in page
    # The first reviewer has voted: not in their queue; the second reviewer's turn.
    assert "your turn" not in page
    page = _login(second_reviewer).get(f"/review/exams/{assigned.code}?queue=mine").content.decode()
    assert "Barack Obama" in page and "your turn" in page and "Awaiting second reviewer" in page

    data = _login(second_reviewer).post(decide, {"outcome": "violation"}, **JSON).json()
    assert data["decision_state"] == "violation" and data["state"] == "violation"


@pytest.mark.django_db
def test_it_filters_my_queue(
    reviewer, second_reviewer, assigned, finished_session, other_exam, django_user_model
):
    waiting_elsewhere = _finished(_candidate(other_exam, "Joe Biden", "joe@example.org"))
    still_live = _candidate(assigned, "Eileen Collins", "eileen@example.org")
    advance(still_live.session, "consented", "verified", "in_progress")
    cleared = _finished(_candidate(assigned, "Sally Ride", "sally@example.org"))
    _login(second_reviewer).post(f"/review/sessions/{cleared.public_id}/decide", {"outcome": "clear"})

    def queue(user, url):
        page = _login(user).get(url).content.decode()
        return [
            name for name in ("Barack Obama", "Joe Biden", "Eileen Collins", "Sally Ride") if name in page
        ]

    # Finished, undecided, on an exam the reviewer is assigned to.
    assert queue(reviewer, f"/review/exams/{assigned.code}?queue=mine") == ["Barack Obama"]
    assert queue(reviewer, "/review/") == ["Barack Obama"]
    # Every session of the exam without the filter.
    assert queue(reviewer, f"/review/exams/{assigned.code}") == [
        "Barack Obama",
        "Eileen Collins",
        "Sally Ride",
    ]
    # Once decided by them, it leaves their queue.
    _login(reviewer).post(f"/review/sessions/{finished_session.public_id}/decide", {"outcome": "violation"})
    assert queue(reviewer, "/review/") == []
    # A superuser's access is not scoped to assignments: every exam.
    admin = django_user_model.objects.create_superuser("admin", "admin@example.org", "correct-horse-1")
    assert queue(admin, "/review/") == ["Barack Obama", "Joe Biden"]
    assert waiting_elsewhere.state == "submitted"


@pytest.mark.django_db
def test_it_opens_the_next_session_in_my_queue(reviewer, assigned, finished_session):
    riskier = _finished(_candidate(assigned, "Joe Biden", "joe@example.org"))
    _event(riskier, "multiple_faces", "high")
    client = _login(reviewer)
    assert client.get("/review/next")["Location"] == f"/review/sessions/{riskier.public_id}/"
    after = client.get(f"/review/next?after={riskier.public_id}")
    assert after["Location"] == f"/review/sessions/{finished_session.public_id}/"
    client.post(f"/review/sessions/{finished_session.public_id}/decide", {"outcome": "clear"})
    client.post(f"/review/sessions/{riskier.public_id}/decide", {"outcome": "clear"})
    empty = client.get(f"/review/next?after={riskier.public_id}", follow=True)
    assert empty.redirect_chain[-1][0] == "/review/" and b"Your queue is empty" in empty.content


@pytest.mark.django_db
def test_it_shows_the_timeline_strip_shortcuts_and_bulk_forms(reviewer, finished_session):
    first = _event(finished_session, "tab_hidden", minutes=1)
    _event(finished_session, "multiple_faces", "high", minutes=5)
    page = _login(reviewer).get(f"/review/sessions/{finished_session.public_id}/").content.decode()
    assert 'id="strip"' in page and f'data-event="{first.public_id}"' in page
    assert f'data-start="{first.started_at.isoformat()}"' in page
    assert "<kbd>j</kbd>" in page and "<kbd>c</kbd>" in page and "<kbd>n</kbd>" in page
    assert page.count('data-kind="bulk"') == 2
    assert f'href="/review/next?after={finished_session.public_id}"' in page
    assert "style=" not in page, "no inline styles: a strict CSP may forbid them"
    assert "<script>" not in page


@pytest.mark.django_db
def test_it_serves_the_reference_photo_to_reviewers_only(reviewer, proctor, outsider, finished_session):
    candidate = finished_session.candidate
    url = f"/review/sessions/{finished_session.public_id}/reference"
    assert _login(reviewer).get(url).status_code == 404  # none on file yet
    candidate.reference_photo.save("obama.jpg", ContentFile(photo_bytes("obama.jpg")))
    response = _login(reviewer).get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == photo_bytes("obama.jpg")
    assert response["Cache-Control"] == "no-store", "never kept on a shared computer"
    viewed = AuditEntry.objects.get(action="reference_view")
    assert viewed.actor == reviewer and viewed.session == finished_session
    _login(reviewer).get(url)
    assert AuditEntry.objects.filter(action="reference_view").count() == 1, "once per viewer per 10 min"
    assert _login(proctor).get(url).status_code == 403
    assert _login(outsider).get(url).status_code == 403
    page = _login(reviewer).get(f"/review/sessions/{finished_session.public_id}/").content.decode()
    assert page.count(f'src="{url}"') == 1  # beside the facts
    flagged = _event(finished_session, "identity_mismatch", "high")
    flagged.evidence.save("frame.jpg", ContentFile(photo_bytes("biden.jpg")))
    page = _login(reviewer).get(f"/review/sessions/{finished_session.public_id}/").content.decode()
    assert page.count(f'src="{url}"') == 2  # and beside the evidence frame


@pytest.mark.django_db
def test_it_serves_clip_frames_in_order(reviewer, outsider, finished_session):
    event = _event(finished_session, "multiple_faces", "high")
    for n in range(3):
        frame = EventFrame(event=event, taken_at=event.started_at + timedelta(seconds=2 * n - 2))
        frame.image.save(f"f{n}.jpg", ContentFile(b"\xff\xd8\xff frame %d" % n), save=False)
        frame.save()
    client = _login(reviewer)
    for n in range(3):
        response = client.get(f"/evidence/{event.public_id}/clip/{n}.jpg")
        assert b"".join(response.streaming_content) == b"\xff\xd8\xff frame %d" % n
        assert response["Cache-Control"] == "no-store"
    # Watching the clip is audited like viewing the evidence: once per viewer and clip.
    [viewed] = AuditEntry.objects.filter(action="clip_view")
    assert viewed.actor == reviewer and viewed.session == finished_session
    assert viewed.details == {"event": str(event.public_id), "type": "multiple_faces"}
    assert client.get(f"/evidence/{event.public_id}/clip/3.jpg").status_code == 404
    assert _login(outsider).get(f"/evidence/{event.public_id}/clip/0.jpg").status_code == 403
    page = client.get(f"/review/sessions/{finished_session.public_id}/").content.decode()
    assert "clip of 3 frames" in page and f"/evidence/{event.public_id}/clip/2.jpg" in page


@pytest.mark.django_db
def test_the_admin_links_the_reference_photo_to_a_view_that_checks_access(registrar, outsider, candidate):
    candidate.reference_photo.save("obama.jpg", ContentFile(photo_bytes("obama.jpg")))
    link = f"/admin/exams/candidate/{candidate.pk}/reference/"
    page = _login(registrar).get(f"/admin/exams/candidate/{candidate.pk}/change/").content.decode()
    assert f'href="{link}"' in page
    assert "/media/" not in page and 'href="references/' not in page
    response = _login(registrar).get(link)
    assert response.status_code == 200 and b"".join(response.streaming_content) == photo_bytes("obama.jpg")
    assert "no-store" in response["Cache-Control"]  # with the admin's own never_cache headers
    assert AuditEntry.objects.get(action="reference_view").actor == registrar
    assert _login(outsider).get(link).status_code == 302  # the admin's login, not the photo
    outsider.is_staff = True
    outsider.save()
    assert _login(outsider).get(link).status_code == 403


@pytest.mark.django_db
def test_the_csv_links_each_event_to_its_evidence_view(reviewer, finished_session, settings):
    import csv
    import io

    event = _event(finished_session, "multiple_faces", "high")
    event.evidence.save("frame.jpg", ContentFile(b"\xff\xd8\xff"))
    browser = _event(finished_session, "tab_hidden", minutes=3)  # no picture: no link
    url = f"/review/exams/{finished_session.exam.code}/export.csv"

    rows = list(csv.DictReader(io.StringIO(_login(reviewer).get(url).content.decode())))
    links = {row["Event code"]: row["Evidence"] for row in rows}
    assert links == {"multiple_faces": f"http://testserver/evidence/{event.public_id}.jpg", "tab_hidden": ""}
    assert browser.evidence.name == ""

    settings.SITE_URL = "https://proctor.example.org"  # behind a proxy, the public origin wins
    rows = list(csv.DictReader(io.StringIO(_login(reviewer).get(url).content.decode())))
    assert rows[0]["Evidence"] == f"https://proctor.example.org/evidence/{event.public_id}.jpg"
    assert _login(reviewer).get(rows[0]["Evidence"].removeprefix(settings.SITE_URL)).status_code == 200


@pytest.mark.django_db
def test_the_csv_still_neutralises_formulas_next_to_the_links(exam):
    import csv
    import io

    from exams import reports

    _candidate(exam, '=HYPERLINK("http://evil.example")', "evil@example.org")
    rows = list(csv.reader(io.StringIO(reports.report_csv(exam, site_url="https://proctor.example.org"))))
    assert rows[1][0].startswith("'=")


@pytest.mark.django_db
def test_the_export_command_links_evidence_from_site_url(finished_session, settings):
    import csv
    import io

    from django.core.management import call_command

    event = _event(finished_session, "multiple_faces", "high")
    event.evidence.save("frame.jpg", ContentFile(b"\xff\xd8\xff"))

    def exported() -> str:
        out = io.StringIO()
        call_command("export_report", str(finished_session.exam.code), "--format", "csv", stdout=out)
        return next(csv.DictReader(io.StringIO(out.getvalue())))["Evidence"]

    assert exported() == f"/evidence/{event.public_id}.jpg"  # no request, no SITE_URL: the view's path
    settings.SITE_URL = "https://proctor.example.org"
    assert exported() == f"https://proctor.example.org/evidence/{event.public_id}.jpg"


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("https://proctor.example.org/", False),
        ("https://proctor.example.org/office", True),
        ("proctor", True),
    ],
)
def test_it_refuses_a_site_url_that_is_not_an_origin(value, refused):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SITE_URL=value, DJANGO_SETTINGS_MODULE="proctor.settings", SECRET_KEY="x")
    done = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.SITE_URL)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    if refused:
        assert done.returncode != 0 and "SITE_URL must be scheme://host[:port]" in done.stderr
    else:
        assert done.returncode == 0 and done.stdout.strip() == "https://proctor.example.org"


def test_the_report_page_lists_what_proctors_did(reviewer, live_session, proctor):
    from exams import services

    services.proctor_act(session=live_session, actor=proctor, action="warn", text="Eyes on your screen")
    services.session_extend(session=live_session, actor=proctor, minutes=10)
    page = _login(reviewer).get(f"/review/sessions/{live_session.public_id}/")
    text = page.content.decode()
    assert "Proctor actions during the exam" in text
    assert "proctor: warn — Eyes on your screen" in text
    assert "proctor: extra time +10 min" in text
