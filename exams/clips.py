"""Evidence as a short clip: the frames just before an event opened, the frame
that opened it and the next few after it.

Every analysed frame of a live session goes into a small rolling buffer (the
last ``BEFORE`` frames, in Redis or in memory in embedded mode, expiring with
the session's silence). When an event opens, the buffer is written out as the
event's ``EventFrame`` rows, and the session notes that the event still wants
``AFTER`` more frames; the following frames are written for it as they come.

The per-frame cost is one Redis round trip (push, trim, expire and read the
pending clips, in one pipeline) and no image work: the candidate's browser
already sends a 640x480 JPEG of quality 0.7 (static/js/camera.js, 30-60 kB),
which is kept as it is. Only a frame that is not a JPEG, or is larger than
``MAX_KEPT_BYTES``, is re-encoded, smaller, by the caller's ``reencode``. At
``BEFORE`` = 4 frames of about 45 kB, 200 live candidates hold about 36 MB of
Redis, freed ``TTL_SECONDS`` after a session's last frame.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from django.conf import settings
from django.core.files.base import ContentFile

from exams.models import Event, EventFrame

log = logging.getLogger(__name__)

BEFORE = 4  # frames kept before an event, the one that opened it included
AFTER = 3  # frames written after it
TTL_SECONDS = 120
MAX_KEPT_BYTES = 120 * 1024
CLIP_SIZE = (320, 240)  # what ``reencode`` should shrink an unusual frame to

_JPEG_START = b"\xff\xd8\xff"
_STAMP = struct.Struct("!d")  # the frame's time, in front of its bytes in the buffer


@dataclass(frozen=True)
class BufferedFrame:
    taken_at: float
    jpeg: bytes

    def pack(self) -> bytes:
        return _STAMP.pack(self.taken_at) + self.jpeg

    @classmethod
    def unpack(cls, raw: bytes) -> BufferedFrame:
        return cls(_STAMP.unpack_from(raw)[0], raw[_STAMP.size :])


class RedisClipBuffer:
    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url)

    @staticmethod
    def _frames(session_id: str) -> str:
        return f"proctor:clip:{session_id}"

    @staticmethod
    def _pending(session_id: str) -> str:
        return f"proctor:clip-pending:{session_id}"

    def push(self, session_id: str, frame: BufferedFrame) -> dict[int, int]:
        """Keep ``frame`` as the newest of the session's last BEFORE frames;
        returns the events still waiting for frames after them, with how many."""
        key = self._frames(session_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(key, frame.pack())
        pipe.ltrim(key, 0, BEFORE - 1)
        pipe.expire(key, TTL_SECONDS)
        pipe.hgetall(self._pending(session_id))
        *_, pending = pipe.execute()
        return {int(k): int(v) for k, v in pending.items()}

    def recent(self, session_id: str) -> list[BufferedFrame]:
        """The buffered frames, oldest first."""
        return [
            BufferedFrame.unpack(raw) for raw in reversed(self.redis.lrange(self._frames(session_id), 0, -1))
        ]

    def wait_for(self, session_id: str, counts: dict[int, int]) -> None:
        """Set how many more frames each event waits for; 0 or less drops it."""
        key = self._pending(session_id)
        pipe = self.redis.pipeline(transaction=False)
        done = [event for event, n in counts.items() if n <= 0]
        more = {event: n for event, n in counts.items() if n > 0}
        if done:
            pipe.hdel(key, *done)
        if more:
            pipe.hset(key, mapping=more)
            pipe.expire(key, TTL_SECONDS)
        pipe.execute()

    def forget(self, session_id: str) -> None:
        self.redis.delete(self._frames(session_id), self._pending(session_id))


class MemoryClipBuffer:
    """The same contract inside one process, for embedded mode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames: dict[str, tuple[float, deque[BufferedFrame]]] = {}
        self._pending: dict[str, dict[int, int]] = {}

    def push(self, session_id: str, frame: BufferedFrame) -> dict[int, int]:
        now = time.monotonic()
        with self._lock:
            # Sessions silent for TTL_SECONDS go, as their Redis keys would.
            for sid in [s for s, (seen, _) in self._frames.items() if now - seen > TTL_SECONDS]:
                self._frames.pop(sid, None)
                self._pending.pop(sid, None)
            frames = self._frames.get(session_id, (now, deque(maxlen=BEFORE)))[1]
            frames.append(frame)
            self._frames[session_id] = (now, frames)
            return dict(self._pending.get(session_id, {}))

    def recent(self, session_id: str) -> list[BufferedFrame]:
        with self._lock:
            return list(self._frames.get(session_id, (0.0, ()))[1])

    def wait_for(self, session_id: str, counts: dict[int, int]) -> None:
        with self._lock:
            pending = self._pending.setdefault(session_id, {})
            for event, n in counts.items():
                if n > 0:
                    pending[event] = n
                else:
                    pending.pop(event, None)

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._frames.pop(session_id, None)
            self._pending.pop(session_id, None)


@lru_cache(maxsize=1)
def clip_buffer() -> RedisClipBuffer | MemoryClipBuffer:
    if settings.REDIS_URL:
        return RedisClipBuffer(settings.REDIS_URL)
    return MemoryClipBuffer()


def _small_jpeg(jpeg: bytes, reencode: Callable[[], bytes]) -> bytes:
    if jpeg.startswith(_JPEG_START) and len(jpeg) <= MAX_KEPT_BYTES:
        return jpeg
    return reencode()


def _store(event_pks: Iterable[int], frames: list[BufferedFrame]) -> int:
    """Write ``frames`` as the clip frames of each event that still exists."""
    stored = 0
    for event in Event.objects.filter(pk__in=list(event_pks)).only("pk"):
        for frame in frames:
            row = EventFrame(event=event, taken_at=datetime.fromtimestamp(frame.taken_at, tz=UTC))
            row.image.save("clip.jpg", ContentFile(frame.jpeg), save=False)
            row.save()
            stored += 1
    return stored


def clip_frame_seen(
    session_id: str,
    *,
    taken_at: float,
    jpeg: bytes,
    opened: Iterable[Event] = (),
    reencode: Callable[[], bytes],
) -> int:
    """Called once per analysed frame of a live session, after its events are
    stored. ``opened`` are the events this frame opened. Returns how many clip
    frames were written (0 on almost every frame). A failure is logged, never
    raised: the analysis itself is already stored."""
    try:
        buffer = clip_buffer()
        frame = BufferedFrame(taken_at, _small_jpeg(jpeg, reencode))
        pending = buffer.push(session_id, frame)
        stored = 0
        if pending:
            stored += _store(pending, [frame])
        opened_pks = [event.pk for event in opened]
        if opened_pks:
            stored += _store(opened_pks, buffer.recent(session_id))
        if pending or opened_pks:
            counts = {pk: n - 1 for pk, n in pending.items()}
            counts.update({pk: AFTER for pk in opened_pks})
            buffer.wait_for(session_id, counts)
        return stored
    except Exception:  # a clip is a help for the reviewer; the frame's analysis must go on
        log.exception("session %s: clip frames not kept", session_id)
        return 0


def clips_forget(session_ids: Iterable[str]) -> None:
    buffer = clip_buffer()
    for session_id in session_ids:
        buffer.forget(session_id)
