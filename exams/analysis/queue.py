"""Latest-wins hand-off of frames from the websocket to the analysers.

Each session has at most one frame waiting per kind ("frame" for the live
stream, "verify" for the identity check). A new frame replaces the waiting
one, so a slow worker never builds a backlog: the queue is bounded by the
number of live sessions. A per-session "busy" flag makes sure only one
analysis of a session runs at a time, which keeps its stream state ordered.

Only ids travel through the Celery broker; the frame bytes sit here.

Nothing is dropped silently. The queue counts, per kind: ``received``
frames, frames ``replaced`` by a newer one before any analyser took them
(latest wins), frames ``taken`` by an analyser, and frames ``lost`` because
the analyser that took them failed (the database was down) or stopped before
it finished (a worker killed mid-frame); ``stats`` reports them with the
queue's depth and lag.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings

log = logging.getLogger(__name__)

FRAME_TTL_SECONDS = 120
# A worker that died mid-analysis leaves the busy flag behind; it expires.
# The analysis tasks' hard time limit is below this, so a flag outlives its
# owner only when the owner's process died.
BUSY_TTL_SECONDS = 30

# Taking a frame is one step: read and delete the waiting frame, notice a
# frame whose analyser died mid-analysis (its in-flight mark is still there:
# counted lost), and mark the taken one in flight. One round trip per frame,
# which the worker pays for every analysed frame.
_TAKE = """
local raw = redis.call('HGETALL', KEYS[1])
local dead = redis.call('GET', KEYS[2])
if dead then
    redis.call('HINCRBY', KEYS[3], 'lost', 1)
end
if #raw == 0 then
    redis.call('DEL', KEYS[2])
    return {dead}
end
redis.call('DEL', KEYS[1])
local frame = {}
for i = 1, #raw, 2 do
    frame[raw[i]] = raw[i + 1]
end
redis.call('SET', KEYS[2], frame['seq'], 'EX', ARGV[1])
redis.call('HINCRBY', KEYS[3], 'taken', 1)
return {dead, frame['seq'], frame['at'], frame['data']}
"""

# Releasing is one step too. The analyser's in-flight mark goes (counted lost
# if it failed). The busy flag holds its owner's token: only that owner
# releases it, and in the same step hands it to a new owner if a frame came in
# meanwhile. A stale analyser (its flag expired and another took over) changes
# nothing more. If the flag is gone altogether, a waiting frame is claimed, so
# it is never stranded.
_RELEASE = """
redis.call('DEL', KEYS[3])
if ARGV[4] == '1' then
    redis.call('HINCRBY', KEYS[4], 'lost', 1)
end
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
    return ''
end
if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
    return ARGV[2]
end
if current then
    redis.call('DEL', KEYS[1])
end
return ''
"""


# A session whose analysis may have been lost (its status poll asks): while the
# busy flag stands an analysis is queued or running, and while the in-flight
# mark stands one is running (it may outlast the flag, which counts from the
# frame's arrival); a frame waiting without either had its task lost (the flag
# expired), so it is claimed for a new one; with none, nothing will ever answer.
_RECLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then
    return 'busy'
end
if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return 'claimed'
end
return 'idle'
"""

BUSY, CLAIMED, IDLE = "busy", "claimed", "idle"


@dataclass(frozen=True)
class Reclaim:
    outcome: str  # BUSY: wait; CLAIMED: schedule an analysis handing it ``owner``; IDLE: nothing is coming
    owner: str = ""


def _token() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class QueueStats:
    """A snapshot of one kind's queue: sessions with a frame waiting, analyses
    running or queued, the age of the oldest waiting frame, and the counters."""

    waiting: int
    busy: int
    oldest_wait_seconds: float
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Put:
    scheduled: bool  # the caller must schedule an analysis, handing it ``owner``
    replaced: bool  # a frame of the session was still waiting: analysis lags behind this stream
    owner: str = ""  # the busy flag's token, when scheduled


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
        self._take = self.redis.register_script(_TAKE)
        self._release = self.redis.register_script(_RELEASE)
        self._reclaim = self.redis.register_script(_RECLAIM)

    @staticmethod
    def _keys(kind: str, session_id: str) -> tuple[str, str]:
        return f"proctor:{kind}:{session_id}", f"proctor:{kind}-busy:{session_id}"

    @staticmethod
    def _inflight(kind: str, session_id: str) -> str:
        return f"proctor:{kind}-inflight:{session_id}"

    @staticmethod
    def _counters(kind: str) -> str:
        return f"proctor:{kind}-counters"

    def put(self, kind: str, frame: QueuedFrame) -> Put:
        """Store the frame, replacing a waiting one."""
        data_key, busy_key = self._keys(kind, frame.session_id)
        owner = _token()
        pipe = self.redis.pipeline(transaction=True)
        pipe.exists(data_key)
        pipe.hset(data_key, mapping={"seq": frame.seq, "at": repr(frame.received_at), "data": frame.data})
        pipe.expire(data_key, FRAME_TTL_SECONDS)
        pipe.set(busy_key, owner, nx=True, ex=BUSY_TTL_SECONDS)
        pipe.hincrby(self._counters(kind), "received", 1)
        replaced, *_, scheduled, _ = pipe.execute()
        if replaced:
            self.redis.hincrby(self._counters(kind), "replaced", 1)
        return Put(scheduled=bool(scheduled), replaced=bool(replaced), owner=owner if scheduled else "")

    def take(self, kind: str, session_id: str) -> QueuedFrame | None:
        data_key, _ = self._keys(kind, session_id)
        keys = [data_key, self._inflight(kind, session_id), self._counters(kind)]
        dead, *raw = self._take(keys=keys, args=[FRAME_TTL_SECONDS])
        if dead is not None:
            log.warning(
                "%s %s of session %s was lost: its analyser stopped mid-analysis",
                kind,
                dead.decode(),
                session_id,
            )
        if not raw:
            return None
        seq, at, data = raw
        return QueuedFrame(session_id, int(seq), float(at), data)

    def forget(self, kind: str, session_id: str) -> None:
        """Drop whatever the queue holds for a session that no longer exists (not counted)."""
        self.redis.delete(*self._keys(kind, session_id), self._inflight(kind, session_id))

    def stats(self, kind: str) -> QueueStats:
        now, oldest, waiting, busy = time.time(), 0.0, 0, 0
        for key in self.redis.scan_iter(match=f"proctor:{kind}:*", count=500):
            at = self.redis.hget(key, "at")
            if at is not None:
                waiting += 1
                oldest = max(oldest, now - float(at))
        busy = sum(1 for _ in self.redis.scan_iter(match=f"proctor:{kind}-busy:*", count=500))
        counters = {k.decode(): int(v) for k, v in self.redis.hgetall(self._counters(kind)).items()}
        return QueueStats(waiting, busy, round(oldest, 3), counters)

    def idle(self, kind: str, session_id: str) -> bool:
        """No frame of the session is waiting, and none is being analysed."""
        return not self.redis.exists(*self._keys(kind, session_id))

    def reclaim(self, kind: str, session_id: str) -> Reclaim:
        """Is an analysis of the session coming? See _RECLAIM; one step, so two
        polls at once claim a waiting frame once."""
        data_key, busy_key = self._keys(kind, session_id)
        owner = _token()
        keys = [busy_key, data_key, self._inflight(kind, session_id)]
        outcome = self._reclaim(keys=keys, args=[owner, BUSY_TTL_SECONDS]).decode()
        return Reclaim(outcome, owner if outcome == CLAIMED else "")

    def release(self, kind: str, session_id: str, owner: str, *, failed: bool = False) -> str:
        """``owner`` finished the frame it took (``failed``: count it as lost):
        clear its in-flight mark, then drop its busy flag or, if a frame arrived
        meanwhile, hand the flag to a new owner and return its token (the caller
        schedules an analysis with it). A flag held by another owner is left
        alone: "". One Lua script, so no other analyser can slip in between."""
        data_key, busy_key = self._keys(kind, session_id)
        keys = [busy_key, data_key, self._inflight(kind, session_id), self._counters(kind)]
        new = self._release(keys=keys, args=[owner, _token(), BUSY_TTL_SECONDS, "1" if failed else "0"])
        return new.decode() if isinstance(new, bytes) else (new or "")


class MemoryFrameQueue:
    """The same contract inside one process, for embedded mode and tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames: dict[tuple[str, str], QueuedFrame] = {}
        self._busy: dict[tuple[str, str], str] = {}
        self._counters: dict[str, Counter] = {}

    def put(self, kind: str, frame: QueuedFrame) -> Put:
        key = (kind, frame.session_id)
        with self._lock:
            counters = self._counters.setdefault(kind, Counter())
            counters["received"] += 1
            replaced = key in self._frames
            counters["replaced"] += replaced
            self._frames[key] = frame
            if key in self._busy:
                return Put(scheduled=False, replaced=replaced)
            self._busy[key] = owner = _token()
            return Put(scheduled=True, replaced=replaced, owner=owner)

    def take(self, kind: str, session_id: str) -> QueuedFrame | None:
        with self._lock:
            frame = self._frames.pop((kind, session_id), None)
            if frame is not None:
                self._counters.setdefault(kind, Counter())["taken"] += 1
            return frame

    def forget(self, kind: str, session_id: str) -> None:
        with self._lock:
            self._frames.pop((kind, session_id), None)
            self._busy.pop((kind, session_id), None)

    def stats(self, kind: str) -> QueueStats:
        now = time.time()
        with self._lock:
            waits = [now - f.received_at for (k, _), f in self._frames.items() if k == kind]
            busy = sum(1 for k, _ in self._busy if k == kind)
            counters = dict(self._counters.get(kind, Counter()))
        return QueueStats(len(waits), busy, round(max(waits, default=0.0), 3), counters)

    def idle(self, kind: str, session_id: str) -> bool:
        key = (kind, session_id)
        with self._lock:
            return key not in self._frames and key not in self._busy

    def reclaim(self, kind: str, session_id: str) -> Reclaim:
        key = (kind, session_id)
        with self._lock:
            if key in self._busy:
                return Reclaim(BUSY)
            if key in self._frames:
                self._busy[key] = owner = _token()
                return Reclaim(CLAIMED, owner)
            return Reclaim(IDLE)

    def release(self, kind: str, session_id: str, owner: str, *, failed: bool = False) -> str:
        key = (kind, session_id)
        with self._lock:
            if failed:
                self._counters.setdefault(kind, Counter())["lost"] += 1
            current = self._busy.get(key)
            if current is not None and current != owner:
                return ""
            if key in self._frames:
                self._busy[key] = new = _token()
                return new
            self._busy.pop(key, None)
            return ""


@lru_cache(maxsize=1)
def frame_queue() -> RedisFrameQueue | MemoryFrameQueue:
    if settings.REDIS_URL:
        return RedisFrameQueue(settings.REDIS_URL)
    return MemoryFrameQueue()
