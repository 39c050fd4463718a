"""Failure drills: the product in services mode loses one of its parts in the
middle of an exam, and comes back by itself.

Each drill runs daphne and a prefork Celery worker on a PostgreSQL cluster and
a redis-server of its own (tests/drills/conftest.py), drives them with the
load test's simulated candidates (exams.loadtest.runner, which reconnect and
follow the server's pace as the exam page does) and one proctor socket, and
then breaks something:

1. kill -9 the worker's pool process in the middle of a frame (its main
   process forks a new one), then kill -9 the whole worker in the middle of a
   frame and start a new one;
2. restart Redis;
3. stop PostgreSQL for PG_DOWN_SECONDS;
4. restart daphne on the same port.

Each drill strikes while a scripted second person's event is open. After it,
every candidate must stream again and have fresh frames analysed, the proctor
must be told again (and alerted of an empty seat shown once the server is
back), no event may be stored twice or left open, and every frame
the server took for analysis must be analysed or counted lost. Every wait is
bounded by the code's own timeouts (RECOVERY_SECONDS). The measured outcome
of each drill is printed as one JSON line (run pytest with -s to see it), and
written to $DRILL_RESULTS/<drill>.json when that variable names a folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from detection.core.rules import CLOSE_AFTER_SECONDS
from exams.analysis import intake
from exams.analysis.queue import BUSY_TTL_SECONDS, RedisFrameQueue
from exams.consumers import PROCTOR_RECHECK_SECONDS
from exams.loadtest import cpu, frames
from exams.loadtest.data import LoadCandidate, LoadExam
from exams.loadtest.harness import DEFAULT_PHOTOS
from exams.loadtest.runner import HANDSHAKE_TIMEOUT, LONGEST_WAIT_SECONDS, EpisodeRun, LoadRun, Plan
from tests.conftest import process_stop, until
from tests.drills.conftest import Stack

pytestmark = [pytest.mark.services, pytest.mark.slow]

CANDIDATES = 4
INTERVAL = 2.0
SCRIPTED = (0, 2)  # a second person before the drill, an empty seat once the server is back
PG_DOWN_SECONDS = 10
# The slowest way back once a service is up again: a page that lost its socket
# dials within one backoff step and gets its status within a handshake; a
# proctor socket rejoins its exam's group (which a Redis restart forgets) within
# PROCTOR_RECHECK_SECONDS; an analysis that never finished leaves a busy flag
# for BUSY_TTL_SECONDS; a claim of a socket that died lives on for
# HEARTBEAT_TIMEOUT_SECONDS (only another tab waits for it). Then the next frame
# comes at the page's pace, which the server slows down to SLOWEST_PACE times the
# interval while a session's frames wait, and takes up to an interval to be
# analysed and pushed.
RECOVERY_SECONDS = (
    max(
        LONGEST_WAIT_SECONDS + HANDSHAKE_TIMEOUT,
        PROCTOR_RECHECK_SECONDS,
        BUSY_TTL_SECONDS,
        settings.HEARTBEAT_TIMEOUT_SECONDS,
    )
    + intake.SLOWEST_PACE * INTERVAL
    + INTERVAL
)
# An episode's event has closed once a frame the server received this long after
# the episode's last frame (its end, give or take an interval) has been analysed.
SETTLED_SECONDS = CLOSE_AFTER_SECONDS + INTERVAL
DETECTED_EVENTS = set(frames.EPISODE_EVENTS.values())


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


@dataclass
class Drill:
    """One load run against a stack, with the drill's actions in the middle of it."""

    stack: Stack
    pools: dict[str, list[bytes]]
    encoding: list[float]
    load: LoadExam | None = None
    run: LoadRun | None = None
    queue: RedisFrameQueue | None = None
    phases: list[dict] = field(default_factory=list)
    # The queue's frame counters over this run, summed across Redis restarts.
    counters: Counter = field(default_factory=Counter)
    _counted: Counter = field(default_factory=Counter)  # the Redis hash as last read

    def setup(self) -> None:
        spec = json.dumps({"candidates": CANDIDATES, "interval": INTERVAL, "encoding": self.encoding})
        made = json.loads(self.stack.services.python("-m", "tests.drills.probe", "create", stdin=spec))
        self.load = LoadExam(**{**made, "candidates": tuple(LoadCandidate(**c) for c in made["candidates"])})
        self.queue = RedisFrameQueue(self.stack.services.redis.url)
        walks = [
            frames.FrameWalk(
                self.pools,
                offset=7 * i,
                # The script's first episode only: a second person from 4 s to 12 s.
                episodes=frames.episodes_for(20, INTERVAL)[:1] if i in SCRIPTED else (),
            )
            for i in range(CANDIDATES)
        ]
        plan = Plan(
            base_url=self.stack.url,
            load=self.load,
            walks=walks,
            duration=3600,  # the drill ends the run
            interval=INTERVAL,
            ramp=INTERVAL,
            proctors=1,
            drain=BUSY_TTL_SECONDS,
        )
        self.run = LoadRun(plan, drained=self._drained, progress=lambda line: None)
        self._counted = self._read_counters()

    # ---------------------------------------------------------------- measures

    def _drained(self) -> bool:
        return all(self.queue.idle(intake.FRAME, sid) for sid in self.load.session_ids)

    def _read_counters(self) -> Counter:
        return Counter(self.queue.stats(intake.FRAME).counters)

    def count_frames(self) -> None:
        """Add what the queue counted since the last read."""
        now = self._read_counters()
        self.counters.update(now - self._counted)
        self._counted = now

    def redis_restarted(self) -> None:
        """A restarted Redis counts from zero (it keeps nothing: --save "")."""
        self._counted = Counter()

    def _wall(self, index: int, script_seconds: float) -> float:
        """The wall time at which candidate ``index`` is ``script_seconds`` into its script."""
        loop = asyncio.get_running_loop()
        return time.time() - loop.time() + self.run.pages[index].started + script_seconds

    def analysed_after(self, session_id: str, received_after: float) -> float | None:
        """When the proctor was told of the first frame of the session received after a time."""
        for session, received, at in self.run.obs.analysed_pushes:
            if session == session_id and received > received_after:
                return at
        return None

    def all_analysed_after(self, received_after: float) -> bool:
        return all(self.analysed_after(sid, received_after) is not None for sid in self.load.session_ids)

    # ---------------------------------------------------------------- the run

    async def start(self) -> asyncio.Task:
        """Start the run; return once every candidate streams and the scripted second
        person has been alerted: the drill strikes while that event is open."""
        task = asyncio.create_task(self.run.run())
        obs = self.run.obs
        await until(lambda: obs.connected == CANDIDATES, within=RECOVERY_SECONDS, what="all connected")
        await until(
            lambda: self.all_analysed_after(0), within=RECOVERY_SECONDS, what="every session analysed"
        )
        await self._alerted(list(obs.episodes), "the second person")
        return task

    async def _alerted(self, runs: list[EpisodeRun], what: str) -> None:
        end = max(self._wall(run.candidate, run.episode.end) for run in runs)
        await until(
            lambda: all(run.alerted_at for run in runs),
            within=max(0.0, end - time.time()) + RECOVERY_SECONDS,
            what=f"{what} alerted",
        )

    async def _closed(self, runs: list[EpisodeRun], what: str) -> None:
        """Until a frame received long enough after each episode's end has been
        analysed and pushed: its event has closed by then."""
        end = max(self._wall(run.candidate, run.episode.end) for run in runs)
        await until(
            lambda: all(self.analysed_after(run.session_id, end + SETTLED_SECONDS) for run in runs),
            within=max(0.0, end + SETTLED_SECONDS - time.time()) + RECOVERY_SECONDS,
            what=f"{what}: its event closed",
        )

    async def phase(self, name: str, action: Callable[[], Awaitable[tuple[float, float]]]) -> dict:
        """Run ``action`` (it returns the wall times its service went down and was
        back) and wait until every session has a frame received after that
        analysed and pushed. Times in the outcome count from the service going down."""
        obs = self.run.obs
        reconnects, proctor_reconnects = Counter(obs.reconnects), Counter(obs.proctor_failures)
        slowed = set(obs.slowed_down)
        errors = Counter(obs.server_errors)
        await asyncio.to_thread(self.count_frames)
        began = time.time()
        down, back = await action()
        await until(
            lambda: self.all_analysed_after(back),
            within=RECOVERY_SECONDS,
            what=f"{name}: every candidate streams again and its frames are analysed and pushed",
        )
        dropped = {i for i, at, _ in obs.candidate_closed if at >= began}
        reopened = {
            i: min(at for j, at in obs.candidate_opened if j == i and at >= began)
            for i in dropped
            if any(j == i and at >= began for j, at in obs.candidate_opened)
        }
        analysed_again = [self.analysed_after(sid, back) for sid in self.load.session_ids]
        proctor_back = [at for _, at in obs.proctor_opened if at >= began]
        outcome = {
            "phase": name,
            "service_down_s": _rounded(back - down),
            "candidates_dropped": len(dropped),
            "candidates_back": len(reopened),
            "candidates_back_after_s": _rounded(max(reopened.values()) - down) if reopened else None,
            "reconnects": dict(Counter(obs.reconnects) - reconnects),
            "all_analysed_again_after_s": _rounded(max(analysed_again) - down),
            "all_analysed_again_after_back_s": _rounded(max(analysed_again) - back),
            "proctor_reconnects": dict(Counter(obs.proctor_failures) - proctor_reconnects),
            "proctor_back_after_s": _rounded(min(proctor_back) - down) if proctor_back else None,
            "proctor_first_push_after_back_s": _rounded(
                min(at for _, _, at in obs.analysed_pushes if at >= back) - back
            ),
            "server_errors": dict(Counter(obs.server_errors) - errors),
            "candidates_slowed_down": len(obs.slowed_down - slowed),
        }
        assert reopened.keys() == dropped, f"{name}: every candidate whose socket closed came back"
        await asyncio.to_thread(self.count_frames)
        self.phases.append(outcome)
        return outcome

    async def finish(self, task: asyncio.Task) -> dict:
        """See the second person's event close, show an empty seat on the scripted
        candidates and see it alerted and closed, end the run and gather the figures."""
        obs = self.run.obs
        await self._closed(list(obs.episodes), "the second person")
        episodes = [self.run.play(i, "no_face", after=INTERVAL) for i in SCRIPTED]
        await self._alerted(episodes, "the empty seat after the drill")
        await self._closed(episodes, "the empty seat after the drill")
        self.run.stop_streaming.set()
        await task
        await asyncio.to_thread(self.count_frames)
        report = json.loads(self.stack.services.python("-m", "tests.drills.probe", "report", self.load.code))
        analysed = sum(s["frames_analysed"] for s in report.values())
        return {
            "frames": {
                "sent": obs.frames_sent,
                "received": self.counters["received"],
                "replaced": self.counters["replaced"],
                "taken": self.counters["taken"],
                "lost": self.counters["lost"],
                "analysed": analysed,
                "analysed_share": round(analysed / obs.frames_sent, 3),
                "skipped_while_disconnected": obs.frames_skipped_disconnected,
            },
            "events": _event_counts(report),
            "episodes": len(obs.episodes),
            "episodes_alerted": sum(1 for run in obs.episodes if run.alerted_at),
            "slowed_down": len(obs.slowed_down),
            "max_interval_asked": obs.max_interval_asked,
            "drained": obs.drained,
            "sessions": report,
        }


def _event_counts(report: dict) -> dict[str, int]:
    return dict(Counter(event["type"] for session in report.values() for event in session["events"]))


def _check_events(load: LoadExam, report: dict) -> None:
    """No event stored twice: per session and key, events never overlap, and each
    scripted episode is exactly one event, closed once the episode is over (the
    first one spans the drill, or, where the drill cut the candidate's connection,
    ends there and goes on as a continued event after the reconnect: no alert
    spans a lost connection)."""
    for candidate in load.candidates:
        events = report[candidate.session_id]["events"]
        by_key: dict[str, list[dict]] = {}
        for event in events:
            by_key.setdefault(event["key"], []).append(event)
        for key, same in by_key.items():
            for before, after in zip(same, same[1:], strict=False):
                assert not before["open"] and before["ended_at"] <= after["started_at"], (
                    f"candidate {candidate.index}: two {key} events at once: {before} {after}"
                )
        detected = Counter(
            e["type"] for e in events if e["type"] in DETECTED_EVENTS and not e.get("continued")
        )
        expected = {t: 1 for t in DETECTED_EVENTS} if candidate.index in SCRIPTED else {}
        assert detected == expected, (
            f"candidate {candidate.index}: {dict(detected)} events, expected {expected}"
        )
        assert not any(e["type"] == "duplicate_session" for e in events), "the same tab was never refused"


def _check(drill: Drill, result: dict, *, redis_restarted: bool = False) -> None:
    obs = drill.run.obs
    assert obs.connected == CANDIDATES
    assert not any(page.finished for page in drill.run.pages), f"a page gave up: {obs.server_errors}"
    assert "taken_over" not in obs.server_errors and "duplicate_session" not in obs.server_errors
    assert result["episodes_alerted"] == result["episodes"] == 2 * len(SCRIPTED)
    _check_events(drill.load, result["sessions"])
    frames_ = result["frames"]
    # Every frame an analyser took was analysed or counted lost, never dropped silently.
    assert frames_["analysed"] + frames_["lost"] >= frames_["taken"], frames_
    if not redis_restarted:  # a restart takes the frames waiting in Redis with it, and their counts
        assert frames_["received"] == frames_["replaced"] + frames_["taken"], frames_


def _record(name: str, drill: Drill, result: dict) -> None:
    out = {
        "drill": name,
        "recovery_bound_s": RECOVERY_SECONDS,
        "phases": drill.phases,
        **{k: v for k, v in result.items() if k != "sessions"},
    }
    line = json.dumps(out)
    print(f"\nDRILL {line}")
    folder = os.environ.get("DRILL_RESULTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")


@pytest.fixture(scope="module")
def pools() -> dict[str, list[bytes]]:
    return frames.build_pools(DEFAULT_PHOTOS, frames.pool_sizes(300, INTERVAL))


@pytest.fixture
def drill(stack, pools, obama_encoding) -> Drill:
    drill = Drill(stack, pools, obama_encoding)
    drill.setup()
    return drill


# ---------------------------------------------------------------- the drills


def _pool_children(worker_pid: int) -> set[int]:
    return set(cpu.with_descendants([worker_pid])) - {worker_pid}


def _kill_mid_frame(queue: RedisFrameQueue, pids: list[int], within: float) -> float:
    """SIGKILL ``pids`` as soon as an analyser holds a frame; returns when."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if queue.redis.keys(f"proctor:{intake.FRAME}-inflight:*"):
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            return time.time()
        time.sleep(0.005)
    pytest.fail(f"no frame was in analysis within {within:g} s")


def test_it_survives_a_worker_killed_in_the_middle_of_a_frame(drill):
    stack = drill.stack
    worker = stack.workers[0]

    async def kill_pool_process() -> tuple[float, float]:
        (child,) = _pool_children(worker.pid)
        down = await asyncio.to_thread(_kill_mid_frame, drill.queue, [child], RECOVERY_SECONDS)
        # The worker's main process forks a new pool process and requeues the task
        # (reject_on_worker_lost), which finds the frame it lost and counts it.
        back = await until(
            lambda: bool(_pool_children(worker.pid) - {child}),
            within=RECOVERY_SECONDS,
            what="the worker forked a new pool process",
        )
        return down, back

    async def kill_worker_and_start_another() -> tuple[float, float]:
        pids = [*_pool_children(worker.pid), worker.pid]
        down = await asyncio.to_thread(_kill_mid_frame, drill.queue, pids, RECOVERY_SECONDS)
        await asyncio.to_thread(worker.wait)
        # The dead worker's task stays unacknowledged in Redis (for the broker's
        # visibility timeout); its session's busy flag expires after BUSY_TTL_SECONDS.
        await asyncio.to_thread(stack.start_worker)
        return down, time.time()

    async def scenario() -> dict:
        task = await drill.start()
        lost = drill.counters["lost"]
        await drill.phase("pool process killed", kill_pool_process)
        assert drill.counters["lost"] > lost, "the frame in analysis was counted lost"
        lost = drill.counters["lost"]
        await drill.phase("whole worker killed, a new one started", kill_worker_and_start_another)
        assert drill.counters["lost"] > lost, "the frame in analysis was counted lost"
        return await drill.finish(task)

    result = asyncio.run(scenario())
    _record("worker-killed", drill, result)
    _check(drill, result)
    assert result["frames"]["lost"] >= 2


def test_it_survives_a_redis_restart(drill):
    redis = drill.stack.services.redis

    async def restart_redis() -> tuple[float, float]:
        await asyncio.to_thread(drill.count_frames)
        down = time.time()
        await asyncio.to_thread(redis.stop)
        drill.redis_restarted()
        await asyncio.to_thread(redis.start)
        return down, time.time()

    async def scenario() -> dict:
        task = await drill.start()
        await drill.phase("redis restarted", restart_redis)
        return await drill.finish(task)

    result = asyncio.run(scenario())
    _record("redis-restarted", drill, result)
    _check(drill, result, redis_restarted=True)


def test_it_survives_postgres_stopped_for_ten_seconds(drill):
    postgres = drill.stack.services.postgres

    async def stop_postgres() -> tuple[float, float]:
        down = time.time()
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(PG_DOWN_SECONDS)
        await asyncio.to_thread(postgres.start)
        return down, time.time()

    async def scenario() -> dict:
        task = await drill.start()
        await drill.phase(f"postgres stopped for {PG_DOWN_SECONDS} s", stop_postgres)
        return await drill.finish(task)

    result = asyncio.run(scenario())
    _record("postgres-stopped", drill, result)
    _check(drill, result)


def test_it_survives_a_daphne_restart(drill):
    stack = drill.stack

    async def restart_daphne() -> tuple[float, float]:
        down = time.time()
        await asyncio.to_thread(process_stop, stack.daphne)
        await asyncio.to_thread(stack.start_daphne)
        return down, time.time()

    async def scenario() -> dict:
        task = await drill.start()
        phase = await drill.phase("daphne restarted", restart_daphne)
        assert phase["candidates_dropped"] == CANDIDATES and phase["candidates_back"] == CANDIDATES
        assert phase["proctor_back_after_s"] is not None, "the proctor socket reconnected"
        return await drill.finish(task)

    result = asyncio.run(scenario())
    _record("daphne-restarted", drill, result)
    _check(drill, result)
