"""The candidate's pages over HTTP, identified by the token alone."""

import pytest
from django.test import Client

from exams.models import AuditEntry
from tests.conftest import advance


@pytest.mark.django_db
def test_it_asks_for_consent_and_stores_it_with_the_policy_version(candidate, settings):
    client = Client()
    page = client.get(f"/take/{candidate.token}/")
    text = page.content.decode()
    for must in (
        "What is recorded",
        "Who sees it",
        "How long it is kept",
        f"{candidate.exam.retention_days} days",
    ):
        assert must in text
    refused = client.post(f"/take/{candidate.token}/", {})
    assert refused.status_code == 400 and b"Tick the box" in refused.content
    done = client.post(f"/take/{candidate.token}/", {"agree": "yes"})
    assert done.status_code == 302 and done["Location"].endswith("/verify/")
    session = candidate.session
    session.refresh_from_db()
    assert session.state == "consented" and session.consent_version == settings.CONSENT_POLICY_VERSION
    assert session.consented_at is not None
    assert AuditEntry.objects.filter(action="consent", session=session).exists()
    # A second consent changes nothing and moves the candidate on.
    assert client.post(f"/take/{candidate.token}/", {"agree": "yes"})["Location"].endswith("/verify/")


@pytest.mark.django_db
def test_it_validates_the_verification_photo(candidate):
    advance(candidate.session, "consented")
    client = Client(enforce_csrf_checks=False)
    url = f"/take/{candidate.token}/verify/photo"
    assert client.post(url, b"", content_type="image/jpeg").status_code == 400
    assert client.post(url, b"GIF89a....", content_type="image/gif").status_code == 415
    assert (
        client.post(url, b"\xff\xd8\xff" + b"0" * (600 * 1024), content_type="image/jpeg").status_code == 413
    )
    status = client.get(f"/take/{candidate.token}/verify/status").json()
    assert status["state"] == "consented" and status["attempts"] == 0


@pytest.mark.django_db
def test_it_starts_the_exam_and_finishes_it(candidate):
    session = candidate.session
    advance(session, "consented", "verified")
    client = Client()
    page = client.get(f"/take/{candidate.token}/exam/")
    assert b"You are being proctored" in page.content
    session.refresh_from_db()
    assert session.state == "in_progress"
    assert client.post(f"/take/{candidate.token}/finish")["Location"].endswith("/done/")
    session.refresh_from_db()
    assert session.state == "submitted"
    # The link now only shows the end page; the exam cannot be reopened.
    assert client.get(f"/take/{candidate.token}/exam/")["Location"].endswith("/done/")
    assert b"You have finished" in client.get(f"/take/{candidate.token}/done/").content


@pytest.fixture
def fresh_refusal_counts():
    """The refusal counts per minute in the shared cache: start and leave them empty,
    so that no other test's refused link is counted here or goes unaudited there."""
    import time

    from django.core.cache import cache

    def clear():
        minute = int(time.time() // 60)
        cache.delete_many(
            [
                f"limit:refused:{action}:unknown_token:{m}"
                for action in ("link_refused", "websocket_refused")
                for m in range(minute - 2, minute + 3)
            ]
        )

    clear()
    yield
    clear()


@pytest.mark.django_db
def test_it_counts_unknown_links_and_audits_them_once_a_minute(client, fresh_refusal_counts):
    from exams import limits
    from exams.models import AuditEntry

    for number in range(50):
        assert client.get(f"/take/guess-{number:040d}/").status_code == 404
    # One row for the first refusal of each minute (two if the burst straddles one).
    assert 1 <= AuditEntry.objects.filter(action="link_refused").count() <= 2
    name = "refused:link_refused:unknown_token"
    counted = limits.window_count(name, increment=False) + limits.window_count(name, windows_ago=1)
    assert counted == 50


@pytest.mark.django_db
def test_it_leaves_a_pending_verification_alone_while_its_analysis_is_queued(candidate):
    """The busy flag or the in-flight mark stands (a task is queued or running): the poll
    waits; and a result written meanwhile is never turned back into "lost"."""
    from exams import services
    from exams.analysis import intake
    from exams.analysis.queue import QueuedFrame, frame_queue
    from exams.models import ExamSession, VerificationStatus

    session = candidate.session
    advance(session, "consented")
    session_id = str(session.public_id)
    services.verification_pending(session=session)
    assert frame_queue().put(intake.VERIFY, QueuedFrame(session_id, 1, 0.0, b"photo")).scheduled
    try:
        status = Client().get(f"/take/{candidate.token}/verify/status").json()
        assert status["status"] == "pending"
        # Running longer than the flag lasts (it counts from the photo's arrival): still running.
        frame_queue().redis.delete(f"proctor:{intake.VERIFY}-busy:{session_id}")
        assert frame_queue().take(intake.VERIFY, session_id) is not None
        assert Client().get(f"/take/{candidate.token}/verify/status").json()["status"] == "pending"
        assert frame_queue().reclaim(intake.VERIFY, session_id).outcome == "busy"
        stale = ExamSession.objects.get(pk=session.pk)
        services.verification_result(session=stale, status=VerificationStatus.NO_FACE, message="No face.")
        assert not services.verification_lost(session=stale)
        assert ExamSession.objects.get(pk=session.pk).verification_status == VerificationStatus.NO_FACE
    finally:
        frame_queue().forget(intake.VERIFY, session_id)
