"""The load itself: candidate sockets that stream frames, proctor sockets that
listen, and what each saw. Runs on one asyncio loop and touches no database;
the caller passes in what it needs (``Plan``) and a ``drained`` check.

Timing: all candidates connect within ``ramp`` seconds of the start, spread
evenly, and stream until ``duration`` seconds after the start; then their
sockets close, and the proctor sockets keep listening until the server has
analysed what it was sent (``drained``, polled) or ``drain`` seconds pass.

A simulated candidate behaves like the exam page (static/js/take_exam.js and
socket.js): it sends a resume id of its own, follows the server's "status"
pace, and after any close that is not fatal it reconnects by itself with the
page's backoff, as many times as it takes until the run ends. Proctor sockets
reconnect the same way (static/js/proctor_live.js).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus, WebSocketException

from exams.loadtest.data import LoadExam
from exams.loadtest.frames import EPISODE_SECONDS, STILL, Episode, FrameWalk

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # seconds from dialling to the server's "status"
HEARTBEAT_SECONDS = 5.0  # static/js/take_exam.js
# static/js/take_exam.js skips a frame while this much is still unsent.
MAX_BUFFERED = 256 * 1024
# static/js/socket.js: the wait before a reconnect starts at FIRST_WAIT and
# doubles up to LONGEST_WAIT after each attempt that did not open.
FIRST_WAIT_SECONDS, LONGEST_WAIT_SECONDS = 1.0, 15.0
# static/js/take_exam.js: each frame comes up to this share of the pace early or
# late, at random. The pace is one factor for the whole server, so pages that
# learn of a change one after the other get different intervals; restarting
# their timers without jitter lined them up, until a hundred pages sent within
# half a second and then nothing for seconds (measured with 100 candidates:
# frames waited 0.3-1.2 s for a worker that was three-quarters idle on average).
FRAME_JITTER = 0.15
PROGRESS_SECONDS = 5.0
DRAIN_POLL_SECONDS = 0.5
# After the queue is idle, pushes of the last frames may still be on their way:
# the drain ends once no push has arrived for this long.
DRAIN_SETTLE_SECONDS = 3.0


def reconnect_delay(attempt: int) -> float:
    """socket.js's reconnectDelay: the ``attempt``-th wait (from 0), jittered to
    between half and all of its step, so a server restart is not met by every
    page reconnecting in the same instant."""
    step = min(FIRST_WAIT_SECONDS * 2 ** min(attempt, 16), LONGEST_WAIT_SECONDS)
    return random.uniform(step / 2, step)


def frame_delay(interval: float) -> float:
    """take_exam.js's frameDelay: the wait until the next frame, ``interval``
    give or take ``FRAME_JITTER`` of it."""
    return interval * random.uniform(1 - FRAME_JITTER, 1 + FRAME_JITTER)


@dataclass
class Plan:
    base_url: str  # http://127.0.0.1:8710
    load: LoadExam
    walks: list[FrameWalk]
    duration: float
    interval: float
    ramp: float
    proctors: int
    drain: float
    # More daphne processes of the same server (http://127.0.0.1:8711, ...):
    # candidates and proctors dial them all in turn, as a proxy in front would.
    more_urls: tuple[str, ...] = ()

    def url_for(self, index: int) -> str:
        """The server the ``index``-th candidate (or proctor) dials."""
        urls = (self.base_url, *self.more_urls)
        return urls[index % len(urls)]

    def ws_url(self, index: int = 0) -> str:
        return "ws" + self.url_for(index).removeprefix("http")


@dataclass
class EpisodeRun:
    candidate: int
    session_id: str
    episode: Episode
    started_at: float | None = None  # wall clock when its first frame went out
    alerted_at: float | None = None  # wall clock when the first proctor got the event


@dataclass
class Page:
    """One simulated exam page. Like take_exam.js, its frame timer keeps ticking
    across reconnects (frames due while no socket is open are skipped), each
    frame is jittered (``frame_delay``), and the server's "status" re-times the
    next frame from the last one."""

    index: int
    resume: str  # the tab's resume id, the same on every connection
    interval: float  # seconds between frames, as the server last asked
    started: float | None = None  # loop time of the first frame: the script's zero
    next_frame: float = 0.0  # loop time
    last_frame: float | None = None  # loop time the last frame was due
    finished: bool = False  # a fatal error or the end of the exam: never reconnect
    connections: int = 0  # connections that got their "status"
    retimed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Observations:
    connect_ms: list[float] = field(default_factory=list)
    handshake_failures: Counter[str] = field(default_factory=Counter)  # every failed dial, by reason
    disconnects: Counter[str] = field(default_factory=Counter)  # closed by the server mid-run
    reconnects: Counter[str] = field(default_factory=Counter)  # candidates' re-dials, by why they closed
    proctor_failures: Counter[str] = field(default_factory=Counter)  # each one followed by a re-dial
    frames_sent: int = 0
    frames_skipped_buffered: int = 0
    frames_skipped_late: int = 0
    frames_skipped_disconnected: int = 0  # due while the page had no open socket
    heartbeats_sent: int = 0
    latency_ms: list[float] = field(default_factory=list)
    pushes_analysed: int = 0  # distinct (session, last_frame_at) pushes seen by the first proctor
    events_opened: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    client_errors: Counter[str] = field(default_factory=Counter)
    episodes: list[EpisodeRun] = field(default_factory=list)
    connected: int = 0  # candidates that got a "status" at least once
    reconnected: int = 0  # connections after a candidate's first
    slowed_down: set[int] = field(default_factory=set)  # candidates asked for a slower pace
    max_interval_asked: float | None = None
    # Timelines (wall clock), for drills that need to know when things came back.
    candidate_opened: list[tuple[int, float]] = field(default_factory=list)  # (candidate, status received)
    candidate_closed: list[tuple[int, float, str]] = field(default_factory=list)  # (candidate, at, reason)
    proctor_opened: list[tuple[int, float]] = field(default_factory=list)  # (proctor, snapshot received)
    # (session, frame received by the server, push received) for each push of a new frame to proctor 0.
    analysed_pushes: list[tuple[str, float, float]] = field(default_factory=list)
    started_at: float = 0.0
    streaming_ended_at: float = 0.0
    drained: bool = False
    ended_at: float = 0.0


class HandshakeRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _iso_seconds(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _closed(exc: ConnectionClosed) -> str:
    return f"closed_{exc.rcvd.code if exc.rcvd else 'abnormally'}"


def _done_event(task: asyncio.Task) -> asyncio.Event:
    """An event set once ``task`` finishes, to wait for it beside other events."""
    done = asyncio.Event()
    task.add_done_callback(lambda _: done.set())
    return done


async def _first_of(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Wait until any of ``events`` is set, or ``timeout`` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class LoadRun:
    def __init__(self, plan: Plan, *, drained: Callable[[], bool], progress: Callable[[str], None]) -> None:
        self.plan = plan
        self.drained = drained
        self.progress = progress
        self.obs = Observations()
        self.stop_streaming = asyncio.Event()
        self.stop_listening = asyncio.Event()
        self.seen_frame: list[dict[str, str]] = [{} for _ in range(plan.proctors)]
        self.seen_events: set[str] = set()
        self.by_session: dict[str, list[EpisodeRun]] = {}
        # One resume id per simulated tab (static/js/take_exam.js keeps one per tab).
        run_id = random.getrandbits(32)
        self.pages = [
            Page(
                candidate.index, resume=f"loadtest-{run_id:08x}-{candidate.index:05d}", interval=plan.interval
            )
            for candidate in plan.load.candidates
        ]
        for candidate, walk in zip(plan.load.candidates, plan.walks, strict=True):
            for episode in walk.episodes:
                run = EpisodeRun(candidate.index, candidate.session_id, episode)
                self.obs.episodes.append(run)
                self.by_session.setdefault(candidate.session_id, []).append(run)

    def play(self, index: int, scene: str, *, after: float) -> EpisodeRun:
        """Show ``scene`` on candidate ``index`` for EPISODE_SECONDS, starting ``after``
        seconds from now (a drill shows one once the server is back). The candidate
        must have started streaming."""
        page = self.pages[index]
        if page.started is None:
            raise ValueError(f"candidate {index} has not started streaming")
        start = asyncio.get_running_loop().time() - page.started + after
        walk = self.plan.walks[index]
        walk.episodes = (*walk.episodes, Episode(scene, start, start + EPISODE_SECONDS))
        run = EpisodeRun(index, self.plan.load.candidates[index].session_id, walk.episodes[-1])
        self.obs.episodes.append(run)
        self.by_session.setdefault(run.session_id, []).append(run)
        return run

    def _dial(self, path: str, headers: dict[str, str] | None = None, *, via: int = 0) -> connect:
        return connect(
            self.plan.ws_url(via) + path,
            origin=self.plan.url_for(via),
            additional_headers=headers,
            compression=None,  # JPEGs do not compress; daphne does not negotiate it anyway
            proxy=None,
            open_timeout=None,  # the caller's HANDSHAKE_TIMEOUT covers it
            ping_interval=None,  # browsers never ping; daphne pings and we answer
            close_timeout=2,
            max_size=2**22,
            write_limit=MAX_BUFFERED,
        )

    # ------------------------------------------------------------ proctors

    async def proctor(self, number: int, ready: asyncio.Event) -> None:
        """One proctor's live grid: listens until the run ends, and reconnects after
        any close with the page's backoff (it must outlive a server restart)."""
        attempt = 0
        while not self.stop_listening.is_set():
            reason, opened = await self._proctor_connection(number, ready)
            ready.set()
            if self.stop_listening.is_set():
                return
            self.obs.proctor_failures[reason] += 1
            if opened:  # socket.js starts its backoff again once a socket opens
                attempt = 0
            await _first_of(self.stop_listening, timeout=reconnect_delay(attempt))
            attempt += 1

    async def _proctor_connection(self, number: int, ready: asyncio.Event) -> tuple[str, bool]:
        """One connection, from dialling to its close: (why it ended, whether it opened)."""
        headers = {"Cookie": self.plan.load.session_cookie}
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                ws = await self._dial(f"/ws/proctor/exams/{self.plan.load.code}/", headers, via=number)
                first = json.loads(await ws.recv())
            if first.get("type") != "snapshot":
                raise HandshakeRefused(f"first_message_{first.get('type')}")
        except (TimeoutError, HandshakeRefused, InvalidStatus, InvalidMessage, OSError) as exc:
            if ws is not None:
                await ws.close()
            return getattr(exc, "reason", type(exc).__name__), ws is not None
        except ConnectionClosed as exc:
            return _closed(exc), True
        self.obs.proctor_opened.append((number, time.time()))
        for session in first.get("sessions", []):
            # Frames analysed while this proctor was away arrive in the snapshot, not as pushes.
            if session.get("last_frame_at"):
                self.seen_frame[number][session["id"]] = session["last_frame_at"]
        ready.set()
        listener = asyncio.create_task(self._listen(number, ws))
        await _first_of(self.stop_listening, _done_event(listener))
        if not listener.done():
            await ws.close()
        return await listener, True

    async def _listen(self, number: int, ws: ClientConnection) -> str:
        """Take the server's messages until the socket closes; return why it closed."""
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                at = time.time()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "sessions":  # tile updates, batched by the server
                    for session in message["sessions"]:
                        self._session_push(number, session, at)
                elif kind == "event":
                    self._event_push(message["event"], at)
        return _closed(ws.close_exc)

    def _session_push(self, number: int, session: dict, at: float) -> None:
        frame_at = session.get("last_frame_at")
        # Connects and disconnects push the session too, with an unchanged frame time.
        if not frame_at or self.seen_frame[number].get(session["id"]) == frame_at:
            return
        self.seen_frame[number][session["id"]] = frame_at
        received = _iso_seconds(frame_at)
        self.obs.latency_ms.append((at - received) * 1000.0)
        if number == 0:
            self.obs.pushes_analysed += 1
            self.obs.analysed_pushes.append((session["id"], received, at))

    def _event_push(self, event: dict, at: float) -> None:
        if event["id"] in self.seen_events:
            return  # another proctor was told first, or this is its close
        self.seen_events.add(event["id"])
        if not event.get("open"):
            return
        if event["type"] == "connection_lost" and self.stop_streaming.is_set():
            return  # our own sockets closing at the end
        self.obs.events_opened[event["type"]] += 1
        for run in self.by_session.get(event["session"], []):
            if (
                run.episode.expected_event == event["type"]
                and run.started_at is not None
                and run.alerted_at is None
                and at >= run.started_at
            ):
                run.alerted_at = at
                break

    # ------------------------------------------------------------ candidates

    async def candidate(self, index: int, start_at: float) -> None:
        """One exam page from its first connect to the end of the run: after a
        close that is not fatal it waits socket.js's backoff and connects again."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start_at - loop.time()))
        page = self.pages[index]
        attempt = 0
        while not self.stop_streaming.is_set():
            reason, opened = await self._connection(page)
            self.obs.candidate_closed.append((index, time.time(), reason))
            if page.finished or self.stop_streaming.is_set():
                return
            self.obs.reconnects[reason] += 1
            if opened:  # socket.js starts its backoff again once a socket opens
                attempt = 0
            await _first_of(self.stop_streaming, timeout=reconnect_delay(attempt))
            attempt += 1

    async def _connection(self, page: Page) -> tuple[str, bool]:
        """One connection of a page, from dialling to its close: (why it ended,
        whether the socket opened). Every failed dial counts as a handshake failure."""
        token = self.plan.load.candidates[page.index].token
        dialled = time.perf_counter()
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                ws = await self._dial(f"/ws/take/{token}/?resume={page.resume}", via=page.index)
                await self._await_status(page, ws)
        except TimeoutError:
            reason = f"no_status_within_{HANDSHAKE_TIMEOUT:g}s"
        except HandshakeRefused as exc:
            reason = exc.reason
        except InvalidStatus as exc:
            reason = f"rejected_http_{exc.response.status_code}"
        except InvalidMessage as exc:
            # The server hung up before answering the upgrade. daphne does that to a
            # socket its application has not accepted within --websocket_connect_timeout.
            reason = "closed_during_http_upgrade" if isinstance(exc.__cause__, EOFError) else "InvalidMessage"
        except ConnectionClosed as exc:
            reason = f"closed_before_status_{exc.rcvd.code if exc.rcvd else 'abnormally'}"
        except (OSError, WebSocketException) as exc:
            reason = type(exc).__name__
        else:
            self.obs.connect_ms.append((time.perf_counter() - dialled) * 1000.0)
            self.obs.candidate_opened.append((page.index, time.time()))
            page.connections += 1
            if page.connections == 1:
                self.obs.connected += 1
            else:
                self.obs.reconnected += 1
            try:
                return await self._stream(page, ws), True
            finally:
                await ws.close()
        self.obs.handshake_failures[reason] += 1
        if ws is not None:
            await ws.close()
        return reason, ws is not None

    def _on_message(self, page: Page, message: dict) -> None:
        """What the exam page does with a message from the server."""
        kind = message.get("type")
        if kind == "status":
            self._follow_pace(page, float(message.get("interval") or self.plan.interval))
        elif kind == "error":
            self.obs.server_errors[str(message.get("code"))] += 1
            if message.get("fatal"):
                page.finished = True  # a new connection would be refused
        elif kind == "ended":
            page.finished = True

    def _follow_pace(self, page: Page, interval: float) -> None:
        """take_exam.js's streamEvery: a new pace re-times the next frame from the last one."""
        if interval > self.plan.interval:
            self.obs.slowed_down.add(page.index)
            self.obs.max_interval_asked = max(self.obs.max_interval_asked or 0.0, interval)
        if interval == page.interval:
            return
        page.interval = interval
        if page.started is not None:
            now = asyncio.get_running_loop().time()
            page.next_frame = max(now, (page.last_frame or now) + frame_delay(interval))
            page.retimed.set()

    async def _await_status(self, page: Page, ws: ClientConnection) -> None:
        while True:
            message = json.loads(await ws.recv())
            self._on_message(page, message)
            if message.get("type") == "status":
                return
            if page.finished:
                raise HandshakeRefused(f"error_{message.get('code') or message.get('type')}")

    async def _read(self, page: Page, ws: ClientConnection) -> str:
        """Take the server's messages until the socket closes; return why it closed."""
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                self._on_message(page, json.loads(raw))
        closed = ws.close_exc
        if not self.stop_streaming.is_set():
            self.obs.disconnects[str(closed.rcvd.code) if closed.rcvd else "abnormal"] += 1
        return _closed(closed)

    async def _stream(self, page: Page, ws: ClientConnection) -> str:
        """Frames at the page's pace and heartbeats, until the socket closes or the
        run ends; returns why it ended."""
        loop = asyncio.get_running_loop()
        walk = self.plan.walks[page.index]
        episodes = self.by_session.get(self.plan.load.candidates[page.index].session_id, [])
        reader = asyncio.create_task(self._read(page, ws))
        reader_done = _done_event(reader)
        now = loop.time()
        if page.started is None:
            page.started = page.next_frame = now
        elif page.next_frame < now:  # the ticks while no socket was open sent nothing
            missed = math.ceil((now - page.next_frame) / page.interval)
            self.obs.frames_skipped_disconnected += missed
            page.next_frame += missed * page.interval
        next_beat = now + HEARTBEAT_SECONDS
        try:
            while not self.stop_streaming.is_set() and not reader.done():
                now = loop.time()
                wake = min(page.next_frame, next_beat)
                if wake > now:
                    page.retimed.clear()
                    await _first_of(self.stop_streaming, reader_done, page.retimed, timeout=wake - now)
                    continue
                if next_beat <= now:
                    await ws.send(json.dumps({"type": "heartbeat"}))
                    self.obs.heartbeats_sent += 1
                    next_beat += HEARTBEAT_SECONDS
                if page.next_frame <= now:
                    late = int((now - page.next_frame) // page.interval)
                    if late:  # a stalled loop sends one frame now, not a burst of old ones
                        self.obs.frames_skipped_late += late
                    page.last_frame = page.next_frame + late * page.interval
                    page.next_frame = page.last_frame + frame_delay(page.interval)
                    t = page.last_frame - page.started
                    scene, data = walk.frame(t)
                    if ws.transport.get_write_buffer_size() > MAX_BUFFERED:
                        self.obs.frames_skipped_buffered += 1
                        continue
                    if scene != STILL:
                        for run in episodes:
                            if run.episode.scene == scene and run.started_at is None:
                                run.started_at = time.time()
                    await ws.send(data)
                    self.obs.frames_sent += 1
        except ConnectionClosed:
            pass  # the reader says why
        except BaseException:
            reader.cancel()
            raise
        if self.stop_streaming.is_set() and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            return "end_of_run"
        return await reader

    # ------------------------------------------------------------ the run

    async def _report_progress(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            obs = self.obs
            failures = sum(obs.handshake_failures.values())
            self.progress(
                f"t={loop.time() - started:5.1f}s connected {obs.connected}/{len(self.plan.walks)} "
                f"(failed {failures}, dropped {sum(obs.disconnects.values())}, "
                f"reconnected {obs.reconnected}) "
                f"frames sent {obs.frames_sent} analysed {obs.pushes_analysed} "
                f"alerts {sum(1 for e in obs.episodes if e.alerted_at)}/{len(obs.episodes)}"
            )

    async def _drain(self) -> None:
        """Wait until the server has analysed every frame it was sent and the
        proctor pushes have stopped arriving, or ``drain`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.plan.drain
        seen, quiet_since = -1, loop.time()
        while loop.time() < deadline:
            if not self.obs.drained:
                self.obs.drained = await asyncio.to_thread(self.drained)
            if len(self.obs.latency_ms) != seen:
                seen, quiet_since = len(self.obs.latency_ms), loop.time()
            elif self.obs.drained and loop.time() - quiet_since >= DRAIN_SETTLE_SECONDS:
                return
            await asyncio.sleep(DRAIN_POLL_SECONDS)

    async def run(self) -> Observations:
        plan = self.plan
        loop = asyncio.get_running_loop()
        ready = [asyncio.Event() for _ in range(plan.proctors)]
        proctors = [asyncio.create_task(self.proctor(i, ready[i])) for i in range(plan.proctors)]
        for event in ready:
            await event.wait()
        progress = asyncio.create_task(self._report_progress())
        self.obs.started_at = time.time()
        start = loop.time()
        count = len(plan.walks)
        step = plan.ramp / count if count > 1 else 0.0
        candidates = [asyncio.create_task(self.candidate(i, start + i * step)) for i in range(count)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_streaming.wait(), max(0.0, start + plan.duration - loop.time()))
        self.stop_streaming.set()
        self.obs.streaming_ended_at = time.time()
        for task, result in zip(
            candidates, await asyncio.gather(*candidates, return_exceptions=True), strict=True
        ):
            if isinstance(result, BaseException):
                self.obs.client_errors[type(result).__name__] += 1
                log.debug("candidate task %s failed", task.get_name(), exc_info=result)
        await self._drain()
        self.stop_listening.set()
        for result in await asyncio.gather(*proctors, return_exceptions=True):
            if isinstance(result, BaseException):
                self.obs.client_errors[type(result).__name__] += 1
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
        self.obs.ended_at = time.time()
        return self.obs
