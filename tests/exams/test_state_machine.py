import pytest
from django.utils import timezone

from exams.models import ExamSession, IllegalTransition
from tests.conftest import advance

State = ExamSession.State


def test_it_walks_the_normal_path(candidate):
    session = candidate.session
    assert session.state == State.INVITED
    advance(session, "consented", "verified", "in_progress", "submitted")
    session.refresh_from_db()
    assert session.state == State.SUBMITTED
    assert session.consented_at and session.verified_at and session.started_at and session.finished_at


@pytest.mark.parametrize(
    "path, illegal",
    [
        ((), "verify"),  # invited -> verified skips consent
        ((), "start"),
        ((), "submit"),
        (("consented",), "start"),  # consented -> in_progress skips verification
        (("consented", "verified"), "submit"),
        (("consented", "verified", "in_progress"), "clear"),  # review only after the exam
        (("consented", "verified", "in_progress", "submitted"), "start"),
        (("consented", "verified", "in_progress", "submitted"), "terminate"),
    ],
)
def test_it_refuses_illegal_transitions(candidate, path, illegal):
    session = candidate.session
    advance(session, *path)
    before = session.state
    now = timezone.now()
    calls = {
        "verify": lambda: session.verify(now=now),
        "start": lambda: session.start(now=now),
        "submit": lambda: session.submit(now=now),
        "clear": lambda: session.clear(now=now),
        "terminate": lambda: session.terminate(now=now, reason="x"),
    }
    with pytest.raises(IllegalTransition):
        calls[illegal]()
    assert session.state == before


def test_it_terminates_from_any_live_state(candidate):
    session = candidate.session
    advance(session, "consented", "verified", "in_progress")
    session.terminate(now=timezone.now(), reason="phone in view")
    assert session.state == State.TERMINATED
    assert session.end_reason == "phone in view"


def test_it_reviews_only_finished_sessions(candidate):
    session = candidate.session
    advance(session, "consented", "verified", "in_progress", "submitted")
    session.mark_violation(now=timezone.now())
    assert session.state == State.VIOLATION
    with pytest.raises(IllegalTransition):
        session.clear(now=timezone.now())
