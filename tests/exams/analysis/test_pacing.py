"""The server-wide pace: frames that wait before analysis slow every page down,
frames that do not wait let them speed up again, and a page is told."""

from __future__ import annotations

import pytest

from exams.analysis import intake, pacing
from exams.analysis.pacing import MemoryPacing, RedisPacing, _State, next_factor

SLOW = pacing.SLOW_DOWN_WAIT * 4  # a frame that waited well past the target
QUICK = 0.0


def _reports(state: _State, waits: list[float], *, start: float, every: float) -> _State:
    for number, wait in enumerate(waits):
        state = next_factor(state, wait, start + number * every, slowest=intake.SLOWEST_PACE)
    return state


def test_it_slows_down_when_frames_wait_and_speeds_up_when_they_do_not():
    slowed = _reports(_State(), [SLOW] * 10, start=1000.0, every=pacing.ADJUST_SECONDS)
    assert slowed.factor > 2.0
    recovered = _reports(slowed, [QUICK] * 60, start=1010.0, every=pacing.ADJUST_SECONDS)
    assert recovered.factor == 1.0


def test_it_changes_the_factor_at_most_once_per_adjust_period():
    # 50 slow reports within one adjust period: one step, not fifty.
    state = _reports(_State(), [SLOW] * 50, start=1000.0, every=pacing.ADJUST_SECONDS / 100)
    assert state.factor == pytest.approx(pacing.STEP_UP)


def test_it_never_asks_for_slower_than_the_slowest_pace():
    state = _reports(_State(), [SLOW] * 100, start=1000.0, every=pacing.ADJUST_SECONDS)
    assert state.factor == intake.SLOWEST_PACE


def test_it_forgets_the_factor_once_nothing_is_reported():
    slowed = _reports(_State(), [SLOW] * 10, start=1000.0, every=pacing.ADJUST_SECONDS)
    later = next_factor(slowed, QUICK, 1010.0 + pacing.FORGET_SECONDS + 1, slowest=intake.SLOWEST_PACE)
    assert later.factor == 1.0


def test_it_ignores_one_slow_frame_among_quick_ones():
    state = _reports(_State(), [QUICK] * 5 + [SLOW] + [QUICK] * 5, start=1000.0, every=pacing.ADJUST_SECONDS)
    assert state.factor == 1.0


@pytest.fixture(params=["redis", "memory"])
def shared(request, settings):
    if request.param == "memory":
        return MemoryPacing()
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    return RedisPacing(settings.REDIS_URL)


def _next_period(shared) -> None:
    """Pretend the last step was an adjust period ago, so the next report may step again."""
    if isinstance(shared, MemoryPacing):
        shared._state.adjusted_at -= pacing.ADJUST_SECONDS
    else:
        shared.redis.hincrbyfloat(RedisPacing.KEY, "adjusted_at", -pacing.ADJUST_SECONDS)


def test_it_shares_the_factor_with_every_reader(shared, settings):
    assert shared.factor() == 1.0
    for _ in range(3):
        factor = shared.report(SLOW)
        _next_period(shared)
    assert factor > 1.0
    # Another process (a web process, say) reads the same factor.
    reader = RedisPacing(settings.REDIS_URL) if isinstance(shared, RedisPacing) else shared
    assert reader.factor() == pytest.approx(factor)
