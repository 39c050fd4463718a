"""Who holds a candidate's session right now: a claim with a time to live.

A candidate's exam page holds its session through one websocket. The claim
lives in Redis (or in memory in embedded mode), not in the database, so that
keeping it alive costs no database write per frame or heartbeat, and it
expires by itself when a connection dies without a close frame (Wi-Fi change,
laptop lid, server restart) after ``HEARTBEAT_TIMEOUT_SECONDS``.

Each exam page sends a resume id of its own (one per browser tab). A
connection with the same resume id as the current holder is the same tab
coming back after a network drop: it takes the session over, and the old
connection is told and closed. A different resume id while the claim is alive
is a second tab or device: it is refused until the holder goes away.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

CLAIMED, TAKEN_OVER, HELD = "claimed", "taken_over", "held"

# Atomically: take a free or expired claim, take over our own, or report the holder.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
    local sep = string.find(current, ' ', 1, true)
    local resume, channel = string.sub(current, 1, sep - 1), string.sub(current, sep + 1)
    if resume ~= ARGV[2] then
        return {'held', channel}
    end
    redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[1], 'EX', ARGV[3])
    if channel == ARGV[1] then
        return {'claimed', ''}
    end
    return {'taken_over', channel}
end
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[1], 'EX', ARGV[3])
return {'claimed', ''}
"""
# Extend or drop the claim only while this channel still holds it.
_REFRESH = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, string.find(current, ' ', 1, true) + 1) == ARGV[1] then
    if ARGV[2] == '0' then
        return redis.call('DEL', KEYS[1])
    end
    return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True)
class Claim:
    outcome: str  # CLAIMED, TAKEN_OVER (``previous`` must be closed) or HELD (refused)
    previous: str = ""  # the channel that held the session before


def _ttl() -> int:
    return settings.HEARTBEAT_TIMEOUT_SECONDS


def _key(session_id: str) -> str:
    return f"proctor:claim:{session_id}"


class RedisPresence:
    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.sync = redis.Redis.from_url(url)
        # redis.asyncio clients belong to the event loop that made them.
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _client(self):
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = redis.asyncio.Redis.from_url(self.url)
        return client

    async def claim(self, session_id: str, channel: str, resume: str) -> Claim:
        outcome, previous = await self._client().eval(_CLAIM, 1, _key(session_id), channel, resume, _ttl())
        return Claim(outcome.decode(), previous.decode())

    async def refresh(self, session_id: str, channel: str) -> bool:
        return bool(await self._client().eval(_REFRESH, 1, _key(session_id), channel, _ttl()))

    async def release(self, session_id: str, channel: str) -> None:
        await self._client().eval(_REFRESH, 1, _key(session_id), channel, 0)

    async def first_refusal(self, session_id: str, resume: str) -> bool:
        """True the first time this resume id is refused within a claim's lifetime (record it once)."""
        return bool(await self._client().set(f"proctor:refused:{session_id}:{resume}", 1, nx=True, ex=_ttl()))

    def held(self, session_id: str) -> bool:
        return bool(self.sync.exists(_key(session_id)))


class MemoryPresence:
    """The same contract inside one process, for embedded mode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claims: dict[str, tuple[str, str, float]] = {}  # session -> (resume, channel, expires)
        self._refused: dict[tuple[str, str], float] = {}

    def _live(self, session_id: str) -> tuple[str, str, float] | None:
        claim = self._claims.get(session_id)
        if claim is not None and claim[2] < time.monotonic():
            del self._claims[session_id]
            return None
        return claim

    async def claim(self, session_id: str, channel: str, resume: str) -> Claim:
        with self._lock:
            current = self._live(session_id)
            if current is not None and current[0] != resume:
                return Claim(HELD, current[1])
            self._claims[session_id] = (resume, channel, time.monotonic() + _ttl())
            if current is None or current[1] == channel:
                return Claim(CLAIMED)
            return Claim(TAKEN_OVER, current[1])

    async def refresh(self, session_id: str, channel: str) -> bool:
        with self._lock:
            current = self._live(session_id)
            if current is None or current[1] != channel:
                return False
            self._claims[session_id] = (current[0], channel, time.monotonic() + _ttl())
            return True

    async def release(self, session_id: str, channel: str) -> None:
        with self._lock:
            current = self._live(session_id)
            if current is not None and current[1] == channel:
                del self._claims[session_id]

    async def first_refusal(self, session_id: str, resume: str) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._refused.get((session_id, resume), 0.0) > now:
                return False
            self._refused[(session_id, resume)] = now + _ttl()
            return True

    def held(self, session_id: str) -> bool:
        with self._lock:
            return self._live(session_id) is not None


@lru_cache(maxsize=1)
def presence() -> RedisPresence | MemoryPresence:
    if settings.REDIS_URL:
        return RedisPresence(settings.REDIS_URL)
    return MemoryPresence()
