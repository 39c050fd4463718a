"""How far behind live analysis runs, and how much slower every page should send.

Each session's own signal (a frame replaced while it waited, see
``exams.analysis.queue``) only fires once a frame has waited a whole frame
interval, 2 s: by then the proctor is told seconds late. This is the early,
system-wide signal. A worker reports, for each frame it takes, how long the
frame waited since the server received it. A smoothed wait above
``SLOW_DOWN_WAIT`` multiplies one pace factor shared by every page by
``STEP_UP``; a smoothed wait below ``SPEED_UP_WAIT`` divides it by
``STEP_DOWN``, at most once per ``ADJUST_SECONDS`` either way. The candidate
socket asks its page for a frame every ``interval * factor`` seconds (or its
own slower pace), so the frames offered follow the analysis capacity instead
of queuing: fewer frames per candidate, none waiting long.

It slows down faster than it speeds up, so a burst (every candidate's first
frame at 9:00 runs every check) is absorbed in a few seconds and the pace
comes back gently. The factor is capped at ``intake.SLOWEST_PACE`` and forgets
itself after ``FORGET_SECONDS`` without a report, so an idle server starts at
the exam's own pace.

Redis holds the state in services mode (one factor for every worker and web
process); a process-local copy serves embedded mode.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from functools import lru_cache

from django.conf import settings

from exams.analysis import intake

SLOW_DOWN_WAIT = 0.5  # seconds: frames wait longer than this on average -> slower
# Frames wait less than this on average -> faster again. Not much lower than
# SLOW_DOWN_WAIT: one full analysis (about 0.25 s) in front of a frame is normal
# at any load, and a speed-up mark below it held every page at the slowest pace
# with the machine half idle (50 candidates, measured).
SPEED_UP_WAIT = 0.25
SMOOTHING = 0.2  # weight of the newest wait in the running average
STEP_UP, STEP_DOWN = 1.25, 1.15
ADJUST_SECONDS = 1.0
FORGET_SECONDS = 60
# A web process reads the shared factor at most this often.
READ_EVERY_SECONDS = 0.5


@dataclass
class _State:
    wait: float = 0.0
    factor: float = 1.0
    adjusted_at: float = 0.0
    reported_at: float = 0.0


def next_factor(state: _State, wait: float, now: float, *, slowest: float) -> _State:
    """The state after a worker reports a frame that waited ``wait`` seconds (pure; both backends use it)."""
    if now - state.reported_at > FORGET_SECONDS:
        state = _State()
    smoothed = state.wait + SMOOTHING * (wait - state.wait)
    factor, adjusted_at = state.factor, state.adjusted_at
    if now - state.adjusted_at >= ADJUST_SECONDS:
        if smoothed > SLOW_DOWN_WAIT and factor < slowest:
            factor, adjusted_at = min(factor * STEP_UP, slowest), now
        elif smoothed < SPEED_UP_WAIT and factor > 1.0:
            factor, adjusted_at = max(factor / STEP_DOWN, 1.0), now
    return _State(wait=smoothed, factor=factor, adjusted_at=adjusted_at, reported_at=now)


class RedisPacing:
    KEY = "proctor:frame-pacing"

    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self._read_at, self._factor = 0.0, 1.0

    def report(self, wait: float) -> float:
        # Read, step, write: not atomic. Two workers reporting at once may lose
        # one wait from the running average, which only smooths it a little more.
        raw = {k.decode(): float(v) for k, v in self.redis.hgetall(self.KEY).items()}
        state = next_factor(_State(**raw), wait, time.time(), slowest=intake.SLOWEST_PACE)
        pipe = self.redis.pipeline()
        pipe.hset(self.KEY, mapping=asdict(state))
        pipe.expire(self.KEY, FORGET_SECONDS)
        pipe.execute()
        return state.factor

    def factor(self) -> float:
        now = time.monotonic()
        if now - self._read_at >= READ_EVERY_SECONDS:
            raw = self.redis.hget(self.KEY, "factor")
            self._factor, self._read_at = float(raw) if raw is not None else 1.0, now
        return self._factor


class MemoryPacing:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()

    def report(self, wait: float) -> float:
        with self._lock:
            self._state = next_factor(self._state, wait, time.time(), slowest=intake.SLOWEST_PACE)
            return self._state.factor

    def factor(self) -> float:
        with self._lock:
            if time.time() - self._state.reported_at > FORGET_SECONDS:
                return 1.0
            return self._state.factor


@lru_cache(maxsize=1)
def pacing() -> RedisPacing | MemoryPacing:
    if settings.REDIS_URL:
        return RedisPacing(settings.REDIS_URL)
    return MemoryPacing()
