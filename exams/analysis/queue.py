"""Latest-wins hand-off of frames from the websocket to the analysers.

Each session has at most one frame waiting per kind ("frame" for the live
stream, "verify" for the identity check). A new frame replaces the waiting
one, so a slow worker never builds a backlog: the queue is bounded by the
number of live sessions. A per-session "busy" flag makes sure only one
analysis of a session runs at a time, which keeps its stream state ordered.

Only ids travel through the Celery broker; the frame bytes sit here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

FRAME_TTL_SECONDS = 120
# A worker that died mid-analysis leaves the busy flag behind; it expires.
BUSY_TTL_SECONDS = 30


@dataclass(frozen=True)
class QueuedFrame:
    session_id: str
    seq: int
    received_at: float
    data: bytes


class RedisFrameQueue:
    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url)

    @staticmethod
    def _keys(kind: str, session_id: str) -> tuple[str, str]:
        return f"proctor:{kind}:{session_id}", f"proctor:{kind}-busy:{session_id}"

    def put(self, kind: str, frame: QueuedFrame) -> bool:
        """Store the frame; True if the caller must schedule an analysis."""
        data_key, busy_key = self._keys(kind, frame.session_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(data_key, mapping={"seq": frame.seq, "at": repr(frame.received_at), "data": frame.data})
        pipe.expire(data_key, FRAME_TTL_SECONDS)
        pipe.set(busy_key, 1, nx=True, ex=BUSY_TTL_SECONDS)
        return bool(pipe.execute()[2])

    def take(self, kind: str, session_id: str) -> QueuedFrame | None:
        data_key, _ = self._keys(kind, session_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(data_key)
        pipe.delete(data_key)
        raw = pipe.execute()[0]
        if not raw:
            return None
        return QueuedFrame(session_id, int(raw[b"seq"]), float(raw[b"at"]), raw[b"data"])

    def idle(self, kind: str, session_id: str) -> bool:
        """No frame of the session is waiting, and none is being analysed."""
        return not self.redis.exists(*self._keys(kind, session_id))

    def release(self, kind: str, session_id: str) -> bool:
        """Drop the busy flag; True if a frame arrived meanwhile and must be scheduled."""
        data_key, busy_key = self._keys(kind, session_id)
        self.redis.delete(busy_key)
        if self.redis.exists(data_key):
            return bool(self.redis.set(busy_key, 1, nx=True, ex=BUSY_TTL_SECONDS))
        return False


class MemoryFrameQueue:
    """The same contract inside one process, for embedded mode and tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames: dict[tuple[str, str], QueuedFrame] = {}
        self._busy: set[tuple[str, str]] = set()

    def put(self, kind: str, frame: QueuedFrame) -> bool:
        key = (kind, frame.session_id)
        with self._lock:
            self._frames[key] = frame
            if key in self._busy:
                return False
            self._busy.add(key)
            return True

    def take(self, kind: str, session_id: str) -> QueuedFrame | None:
        with self._lock:
            return self._frames.pop((kind, session_id), None)

    def idle(self, kind: str, session_id: str) -> bool:
        key = (kind, session_id)
        with self._lock:
            return key not in self._frames and key not in self._busy

    def release(self, kind: str, session_id: str) -> bool:
        key = (kind, session_id)
        with self._lock:
            if key in self._frames:
                return True
            self._busy.discard(key)
            return False


@lru_cache(maxsize=1)
def frame_queue() -> RedisFrameQueue | MemoryFrameQueue:
    if settings.REDIS_URL:
        return RedisFrameQueue(settings.REDIS_URL)
    return MemoryFrameQueue()
