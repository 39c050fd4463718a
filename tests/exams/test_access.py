"""Who may open what: every page and every websocket route against every actor."""

import time

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from exams.models import Event
from proctor.asgi import application
from tests.conftest import advance

ACTORS = ["anonymous", "outsider", "candidate", "other_candidate", "proctor", "other_proctor", "reviewer"]


@pytest.fixture
def world(exam, candidate, other_candidate, proctor, other_proctor, reviewer, outsider):
    from django.utils import timezone

    session = candidate.session
    advance(session, "consented", "verified", "in_progress")
    event = Event.objects.create(
        session=session,
        type="no_face",
        key="no_face",
        severity="medium",
        started_at=timezone.now(),
        ended_at=timezone.now(),
        is_open=False,
    )
    return {
        "exam": exam,
        "session": session,
        "event": event,
        "users": {
            "outsider": outsider,
            "proctor": proctor,
            "other_proctor": other_proctor,
            "reviewer": reviewer,
        },
    }


def _client(world, actor) -> Client:
    client = Client()
    if actor in world["users"]:
        client.force_login(world["users"][actor])
    return client


def _staff_pages(world):
    exam, session, event = world["exam"], world["session"], world["event"]
    return {
        "proctor_index": "/proctor/",
        "proctor_live": f"/proctor/exams/{exam.code}/live",
        "proctor_session": f"/proctor/sessions/{session.public_id}/",
        "proctor_thumbnail": f"/proctor/sessions/{session.public_id}/thumbnail.jpg",
        "review_index": "/review/",
        "review_exam": f"/review/exams/{exam.code}",
        "review_session": f"/review/sessions/{session.public_id}/",
        "review_export": f"/review/exams/{exam.code}/export.csv",
        "evidence": f"/evidence/{event.public_id}.jpg",
    }


# Which actors may open which staff page (2xx). Everybody else is refused.
ALLOWED = {
    "proctor_index": {"proctor", "other_proctor"},
    "proctor_live": {"proctor"},
    "proctor_session": {"proctor"},
    "proctor_thumbnail": {"proctor"},
    "review_index": {"reviewer"},
    "review_exam": {"reviewer"},
    "review_session": {"reviewer"},
    "review_export": {"reviewer"},
    "evidence": set(),  # this event has no evidence frame: 404 even for the allowed
}


@pytest.mark.django_db
@pytest.mark.parametrize("actor", ACTORS)
def test_it_enforces_the_staff_page_matrix(world, actor):
    client = _client(world, actor)
    for name, url in _staff_pages(world).items():
        response = client.get(url)
        if actor in ALLOWED[name]:
            assert response.status_code in (200, 204), (name, actor, response.status_code)
        elif actor in ("anonymous", "candidate", "other_candidate"):
            assert response.status_code == 302 and "/accounts/login/" in response["Location"], (name, actor)
        else:
            assert response.status_code in (403, 404), (name, actor, response.status_code)


@pytest.mark.django_db
def test_it_gives_evidence_to_the_exams_proctor_and_reviewers_only(world, settings):
    from django.core.files.base import ContentFile

    event = world["event"]
    event.evidence.save("e.jpg", ContentFile(b"\xff\xd8\xff\xe0jpeg"))
    url = f"/evidence/{event.public_id}.jpg"
    for actor, expected in [("proctor", 200), ("reviewer", 200), ("other_proctor", 404), ("outsider", 403)]:
        assert _client(world, actor).get(url).status_code == expected, actor
    assert _client(world, "anonymous").get(url).status_code == 302


@pytest.mark.django_db
def test_it_lets_a_candidate_in_by_token_only(world, candidate, other_candidate):
    client = Client()
    own = client.get(f"/take/{candidate.token}/exam/")
    assert own.status_code == 200
    assert b"You are being proctored" in own.content
    # The other candidate's token opens the other candidate's session, never this one.
    other = client.get(f"/take/{other_candidate.token}/")
    assert other.status_code == 200 and b"History midterm" in other.content
    assert client.get("/take/not-a-real-token/").status_code == 404


@pytest.mark.django_db
def test_it_refuses_an_expired_token_with_a_clear_message(candidate):
    import time
    from datetime import timedelta

    from django.core.cache import cache
    from django.utils import timezone

    from exams.models import AuditEntry

    exam = candidate.exam
    exam.opens_at = timezone.now() - timedelta(days=2)
    exam.closes_at = timezone.now() - timedelta(days=1)
    exam.save()
    # Refusals are audited once a minute per kind: start this minute's count afresh.
    cache.delete_many(
        [f"limit:refused:link_refused:expired_token:{int(time.time() // 60) + i}" for i in (0, 1)]
    )
    response = Client().get(f"/take/{candidate.token}/")
    assert response.status_code == 410
    assert b"exam has closed" in response.content
    assert AuditEntry.objects.filter(action="link_refused", details__reason="expired_token").exists()


# ---------------------------------------------------------------- websockets


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "actor, allowed",
    [
        ("anonymous", False),
        ("outsider", False),
        ("other_proctor", False),
        ("reviewer", False),
        ("proctor", True),
    ],
)
async def test_it_guards_the_proctor_socket(world, actor, allowed):
    from asgiref.sync import sync_to_async

    headers = [(b"origin", b"http://127.0.0.1")]
    if actor != "anonymous":
        client = await sync_to_async(_client)(world, actor)
        cookie = client.cookies["sessionid"].value
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/proctor/exams/{world['exam'].code}/", headers=headers
    )
    connected, _ = await communicator.connect()
    try:
        assert connected is allowed
        if allowed:
            snapshot = await communicator.receive_json_from(timeout=5)
            assert snapshot["type"] == "snapshot"
            assert [s["candidate"] for s in snapshot["sessions"]] == ["Barack Obama"]
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("token_of, code", [("candidate", None), ("nobody", "unknown_token")])
async def test_it_guards_the_candidate_socket(world, candidate, token_of, code):
    token = candidate.token if token_of == "candidate" else "x" * 43
    communicator = WebsocketCommunicator(
        application, f"/ws/take/{token}/", headers=[(b"origin", b"http://127.0.0.1")]
    )
    connected, _ = await communicator.connect()
    assert connected  # accepted, so that a refusal can say why
    message = await communicator.receive_json_from(timeout=5)
    try:
        if code is None:
            assert message["type"] == "status" and message["state"] == "in_progress"
        else:
            assert message == {"type": "error", "code": code, "message": message["message"], "fatal": True}
            assert (await communicator.receive_output(timeout=5))["type"] == "websocket.close"
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_a_socket_from_a_foreign_origin(world, candidate):
    communicator = WebsocketCommunicator(
        application, f"/ws/take/{candidate.token}/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["deactivated", "removed_from_exam"])
async def test_it_closes_an_open_proctor_socket_once_access_is_gone(world, change, monkeypatch):
    """Access is checked again while the socket is open, not only when it connects."""
    from asgiref.sync import sync_to_async

    from exams import consumers

    monkeypatch.setattr(consumers, "PROCTOR_RECHECK_SECONDS", 0.2)
    proctor = world["users"]["proctor"]
    client = await sync_to_async(_client)(world, "proctor")
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]
    communicator = WebsocketCommunicator(
        application, f"/ws/proctor/exams/{world['exam'].code}/", headers=headers
    )
    connected, _ = await communicator.connect()
    assert connected
    try:
        assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
        assert await communicator.receive_nothing(timeout=0.5), "still allowed: nothing happens"
        if change == "deactivated":
            proctor.is_active = False
            await proctor.asave(update_fields=["is_active"])
        else:
            await sync_to_async(world["exam"].proctors.remove)(proctor)
        closed = await communicator.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": consumers.CLOSE_REFUSED}
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_batches_tile_updates_but_sends_alerts_at_once(world):
    from asgiref.sync import sync_to_async

    from exams import consumers, live

    client = await sync_to_async(_client)(world, "proctor")
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"origin", b"http://127.0.0.1"), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(
        application, f"/ws/proctor/exams/{world['exam'].code}/", headers=headers
    )
    connected, _ = await communicator.connect()
    assert connected
    session, event = world["session"], world["event"]
    try:
        assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
        started = time.monotonic()
        for _ in range(20):  # a burst of frames analysed for one candidate
            await sync_to_async(live.session_changed)(session)
        await sync_to_async(live.session_changed)(session, events=[event])
        # At most one batch per window the burst spanned (a loaded machine spreads it), plus one.
        windows = 1 + int((time.monotonic() - started) / consumers.GRID_PUSH_SECONDS)
        messages = []
        while not await communicator.receive_nothing(timeout=consumers.GRID_PUSH_SECONDS * 3):
            messages.append(await communicator.receive_json_from(timeout=5))
        kinds = [m["type"] for m in messages]
        assert kinds.count("event") == 1
        batches = [m for m in messages if m["type"] == "sessions"]
        assert 1 <= len(batches) <= windows + 1, kinds  # 21 updates, at most one batch per window
        assert all(len(b["sessions"]) == 1 for b in batches)  # one tile, its latest state
    finally:
        await communicator.disconnect()
