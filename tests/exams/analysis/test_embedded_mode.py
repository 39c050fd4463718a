"""Embedded mode (no Redis): frames go through the in-memory queue and the
web process's thread pool, and alerts reach proctors over the in-memory
channel layer, without blocking the event loop."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from exams import live
from exams.analysis import queue
from exams.presence import presence
from tests.detection.detection_photos import jpeg, photo, side_by_side

# PostgreSQL: the thread pool writes while the test reads; in-memory SQLite locks.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.services]


@pytest.fixture
def embedded(settings):
    settings.EMBEDDED = True
    settings.REDIS_URL = ""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    queue.frame_queue.cache_clear()
    presence.cache_clear()
    yield
    channel_layers.backends.clear()
    queue.frame_queue.cache_clear()
    presence.cache_clear()


async def test_it_analyses_in_process_and_alerts_the_proctor(embedded, live_session):
    from proctor.asgi import application

    exam = live_session.exam
    exam.frame_interval = 0.5
    await exam.asave()
    layer = channel_layers["default"]
    listener = await layer.new_channel()
    await layer.group_add(live.exam_group(exam.code), listener)

    scene = side_by_side(photo("obama.jpg"), photo("biden.jpg"), height=480)
    rng = np.random.default_rng(0)
    communicator = WebsocketCommunicator(
        application, f"/ws/take/{live_session.candidate.token}/", headers=[(b"origin", b"http://127.0.0.1")]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "status"
    alert = None
    try:
        for _ in range(16):
            noisy = np.clip(scene + rng.normal(0, 2.0, scene.shape), 0, 255).astype(np.uint8)
            await communicator.send_to(bytes_data=jpeg(noisy))
            try:
                while alert is None:
                    message = await asyncio.wait_for(layer.receive(listener), timeout=0.6)
                    if message["payload"].get("type") == "event":
                        alert = message["payload"]["event"]
            except TimeoutError:
                pass
            if alert is not None:
                break
    finally:
        await communicator.disconnect()
    assert alert is not None, "no alert reached the proctors' group"
    assert alert["type"] in ("multiple_faces", "prohibited_object")
