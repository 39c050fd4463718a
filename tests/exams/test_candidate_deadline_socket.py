"""The candidate socket carries the deadline: in the status on connect, and as
a "deadline" push when a proctor grants extra time."""

from datetime import datetime

import pytest
from channels.layers import get_channel_layer

from exams import live
from exams.models import ExamSession
from tests.exams.test_candidate_socket import _connect

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_sends_the_deadline_with_the_status_on_connect(live_session):
    communicator, status = await _connect(live_session.candidate.token)
    await communicator.disconnect()
    assert datetime.fromisoformat(status["deadline"]) == live_session.deadline


async def test_it_forwards_extra_time_and_a_reconnect_gets_the_new_deadline(live_session):
    token = live_session.candidate.token
    communicator, before = await _connect(token, resume="tab-one-123")
    try:
        await ExamSession.objects.filter(pk=live_session.pk).aupdate(extra_minutes=10)
        session = await ExamSession.objects.select_related("candidate__exam").aget(pk=live_session.pk)
        payload = {"type": "deadline", "deadline": session.deadline.isoformat()}
        await get_channel_layer().group_send(
            live.session_group(session.public_id), {"type": "push", "payload": payload}
        )
        assert await communicator.receive_json_from(timeout=5) == payload
    finally:
        await communicator.disconnect()
    again, after = await _connect(token, resume="tab-one-123")
    await again.disconnect()
    assert datetime.fromisoformat(after["deadline"]) == session.deadline
    assert datetime.fromisoformat(after["deadline"]) > datetime.fromisoformat(before["deadline"])
