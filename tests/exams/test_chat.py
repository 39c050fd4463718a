"""The conversation between a candidate and the proctors: over the sockets, stored, shown and exported."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from exams import reports, services
from exams.consumers import CHAT_BURST
from exams.models import IllegalTransition, Message
from proctor.asgi import application
from tests.conftest import advance

ORIGIN = (b"origin", b"http://127.0.0.1")


async def _candidate_socket(session) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, f"/ws/take/{session.candidate.token}/", headers=[ORIGIN]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "status"
    return communicator


async def _proctor_socket(session, proctor) -> WebsocketCommunicator:
    client = Client()
    await sync_to_async(client.force_login)(proctor)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application, f"/ws/proctor/exams/{session.exam.code}/", headers=[ORIGIN, (b"cookie", cookie)]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
    return communicator


async def _next_of(communicator, kind: str) -> dict:
    """The next message of ``kind``, skipping the session updates the grid also gets."""
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == kind:
            return message


@pytest.mark.django_db(transaction=True)
async def test_the_candidate_writes_and_every_proctor_reads_it_live(live_session, proctor):
    grid = await _proctor_socket(live_session, proctor)
    candidate = await _candidate_socket(live_session)

    await candidate.send_to(
        text_data=json.dumps({"type": "chat", "text": "  My camera froze, restarting it.  "})
    )
    ack = await candidate.receive_json_from(timeout=5)
    assert ack["type"] == "chat_ack" and ack["message"]["text"] == "My camera froze, restarting it."
    own_line = await _next_of(candidate, "chat")
    assert own_line["message"] | {"id": 0, "at": ""} == {
        "id": 0,
        "at": "",
        "sender": "candidate",
        "kind": "message",
        "speaker": "You",
        "text": "My camera froze, restarting it.",
    }
    pushed = await _next_of(grid, "chat")
    assert pushed["message"] | {"id": 0, "at": ""} == {
        "id": 0,
        "at": "",
        "session": str(live_session.public_id),
        "session_url": f"/proctor/sessions/{live_session.public_id}/",
        "candidate": "Barack Obama",
        "sender": "candidate",
        "kind": "message",
        "author": "",
        "speaker": "Barack Obama",
        "text": "My camera froze, restarting it.",
    }

    await sync_to_async(services.proctor_act)(
        session=live_session, actor=proctor, action="message", text="Thanks, take your time."
    )
    assert await candidate.receive_json_from(timeout=5) == {
        "type": "message",
        "text": "Thanks, take your time.",
        "from": "proctor",
    }
    answer = (await _next_of(candidate, "chat"))["message"]
    # The candidate is not told which proctor wrote.
    assert answer["speaker"] == "Proctor" and answer["sender"] == "proctor" and "author" not in answer
    proctor_line = await _next_of(grid, "chat")
    assert proctor_line["message"]["sender"] == "proctor" and proctor_line["message"]["author"] == "proctor"
    assert proctor_line["message"]["speaker"] == "Proctor"  # the user "proctor", named once

    await sync_to_async(services.proctor_act)(session=live_session, actor=proctor, action="warn", text="")
    assert (await _next_of(candidate, "chat"))["message"]["speaker"] == "Proctor (warning)"
    assert (await _next_of(grid, "chat"))["message"]["speaker"] == "Proctor (warning)"

    stored = [(m.sender, m.author_id, m.text) async for m in Message.objects.filter(session=live_session)]
    assert stored == [
        ("candidate", None, "My camera froze, restarting it."),
        ("proctor", proctor.pk, "Thanks, take your time."),
        ("proctor", proctor.pk, services.DEFAULT_WARNING),
    ]
    await candidate.disconnect()
    await grid.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_bad_or_flooding_messages_and_keeps_the_connection(live_session):
    candidate = await _candidate_socket(live_session)
    for bad in (
        {"type": "chat"},
        {"type": "chat", "text": 42},
        {"type": "chat", "text": "   "},
        {"type": "chat", "text": "x" * 501},
    ):
        await candidate.send_to(text_data=json.dumps(bad))
        answer = await candidate.receive_json_from(timeout=5)
        assert (
            answer["type"] == "error" and answer["code"] == "bad_chat" and "1 to 500" in answer["message"]
        ), bad
    assert not await Message.objects.aexists()

    for n in range(CHAT_BURST):
        await candidate.send_to(text_data=json.dumps({"type": "chat", "text": f"line {n}"}))
        # The acknowledgement, and the line itself for the conversation.
        answers = [await candidate.receive_json_from(timeout=5) for _ in range(2)]
        assert sorted(a["type"] for a in answers) == ["chat", "chat_ack"]
    await candidate.send_to(text_data=json.dumps({"type": "chat", "text": "one too many"}))
    flood = await candidate.receive_json_from(timeout=5)
    assert flood["code"] == "too_fast" and "send it again" in flood["message"]
    assert await Message.objects.acount() == CHAT_BURST
    await candidate.send_to(text_data=json.dumps({"type": "heartbeat"}))  # still connected and served
    assert await candidate.receive_nothing(timeout=0.3)
    await candidate.disconnect()


@pytest.mark.django_db
def test_proctor_messages_need_text_and_a_live_exam(live_session, proctor):
    with pytest.raises(ValueError, match="Write the message first"):
        services.proctor_act(session=live_session, actor=proctor, action="message", text="  ")
    services.proctor_act(session=live_session, actor=proctor, action="warn", text="")
    warning = Message.objects.get()
    assert warning.kind == "warn" and warning.text == services.DEFAULT_WARNING and warning.author == proctor

    advance(live_session, "submitted")
    with pytest.raises(IllegalTransition, match="not in progress"):
        services.proctor_act(session=live_session, actor=proctor, action="message", text="Hello?")
    with pytest.raises(IllegalTransition):
        services.message_from_candidate(session=live_session, text="Am I done?")
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_the_conversation_shows_on_every_page_and_in_the_reports(live_session, proctor, reviewer):
    services.message_from_candidate(session=live_session, text="Can I drink <water>?")
    services.proctor_act(session=live_session, actor=proctor, action="warn", text="Keep your face in view.")

    candidate_page = Client().get(f"/take/{live_session.candidate.token}/exam/").content.decode()
    assert "You" in candidate_page and "Can I drink &lt;water&gt;?" in candidate_page
    assert "Proctor (warning)" in candidate_page and "proctor proctor" not in candidate_page.lower()

    for user, url in (
        (proctor, f"/proctor/sessions/{live_session.public_id}/"),
        (reviewer, f"/review/sessions/{live_session.public_id}/"),
    ):
        client = Client()
        client.force_login(user)
        page = client.get(url).content.decode()
        assert "Barack Obama" in page and "Can I drink &lt;water&gt;?" in page, url
        assert (
            "Proctor (warning)" in page
            and "Proctor proctor" not in page
            and "Keep your face in view." in page
        ), url

    exported = json.loads(reports.report_json(live_session.exam))["sessions"][0]["messages"]
    assert [(m["sender"], m["author"], m["kind"], m["text"]) for m in exported] == [
        ("candidate", "", "message", "Can I drink <water>?"),
        ("proctor", "proctor", "warn", "Keep your face in view."),
    ]
