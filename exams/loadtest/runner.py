"""The load itself: candidate sockets that stream frames, proctor sockets that
listen, and what each saw. Runs on one asyncio loop and touches no database;
the caller passes in what it needs (``Plan``) and a ``drained`` check.

Timing: all candidates connect within ``ramp`` seconds of the start, spread
evenly, and stream until ``duration`` seconds after the start; then their
sockets close, and the proctor sockets keep listening until the server has
analysed what it was sent (``drained``, polled) or ``drain`` seconds pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus, WebSocketException

from exams.loadtest.data import LoadExam
from exams.loadtest.frames import STILL, Episode, FrameWalk

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # seconds from dialling to the server's "status"
HEARTBEAT_SECONDS = 5.0  # static/js/take_exam.js
# static/js/take_exam.js skips a frame while this much is still unsent.
MAX_BUFFERED = 256 * 1024
PROGRESS_SECONDS = 5.0
DRAIN_POLL_SECONDS = 0.5
# After the queue is idle, pushes of the last frames may still be on their way:
# the drain ends once no push has arrived for this long.
DRAIN_SETTLE_SECONDS = 3.0


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

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    @property
    def origin(self) -> str:
        return self.base_url


@dataclass
class EpisodeRun:
    candidate: int
    session_id: str
    episode: Episode
    started_at: float | None = None  # wall clock when its first frame went out
    alerted_at: float | None = None  # wall clock when the first proctor got the event


@dataclass
class Observations:
    connect_ms: list[float] = field(default_factory=list)
    handshake_failures: Counter[str] = field(default_factory=Counter)
    disconnects: Counter[str] = field(default_factory=Counter)  # closed by the server mid-run
    proctor_failures: Counter[str] = field(default_factory=Counter)
    frames_sent: int = 0
    frames_skipped_buffered: int = 0
    frames_skipped_late: int = 0
    heartbeats_sent: int = 0
    latency_ms: list[float] = field(default_factory=list)
    pushes_analysed: int = 0  # distinct (session, last_frame_at) pushes seen by the first proctor
    events_opened: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    client_errors: Counter[str] = field(default_factory=Counter)
    episodes: list[EpisodeRun] = field(default_factory=list)
    connected: int = 0
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
        for candidate, walk in zip(plan.load.candidates, plan.walks, strict=True):
            for episode in walk.episodes:
                run = EpisodeRun(candidate.index, candidate.session_id, episode)
                self.obs.episodes.append(run)
                self.by_session.setdefault(candidate.session_id, []).append(run)

    def _dial(self, path: str, headers: dict[str, str] | None = None) -> connect:
        return connect(
            self.plan.ws_url + path,
            origin=self.plan.origin,
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
        headers = {"Cookie": self.plan.load.session_cookie}
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                ws = await self._dial(f"/ws/proctor/exams/{self.plan.load.code}/", headers)
                first = json.loads(await ws.recv())
            if first.get("type") != "snapshot":
                raise HandshakeRefused(f"first_message_{first.get('type')}")
        except (TimeoutError, HandshakeRefused, InvalidStatus, ConnectionClosed, OSError) as exc:
            self.obs.proctor_failures[getattr(exc, "reason", type(exc).__name__)] += 1
            ready.set()
            if ws is not None:
                await ws.close()
            return
        for session in first.get("sessions", []):
            if session.get("last_frame_at"):
                self.seen_frame[number][session["id"]] = session["last_frame_at"]
        ready.set()
        listener = asyncio.create_task(self._listen(number, ws))
        await self.stop_listening.wait()
        await ws.close()
        with contextlib.suppress(ConnectionClosed):
            await listener

    async def _listen(self, number: int, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                at = time.time()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "sessions":  # tile updates, batched by the server
                    for session in message["sessions"]:
                        self._session_push(number, session, at)
                elif kind == "event":
                    self._event_push(message["event"], at)
        except ConnectionClosed as exc:
            if not self.stop_listening.is_set():
                self.obs.proctor_failures[f"closed_{exc.rcvd.code if exc.rcvd else 'abnormally'}"] += 1

    def _session_push(self, number: int, session: dict, at: float) -> None:
        frame_at = session.get("last_frame_at")
        # Connects and disconnects push the session too, with an unchanged frame time.
        if not frame_at or self.seen_frame[number].get(session["id"]) == frame_at:
            return
        self.seen_frame[number][session["id"]] = frame_at
        self.obs.latency_ms.append((at - _iso_seconds(frame_at)) * 1000.0)
        if number == 0:
            self.obs.pushes_analysed += 1

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
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start_at - loop.time()))
        if self.stop_streaming.is_set():
            return
        token = self.plan.load.candidates[index].token
        dialled = time.perf_counter()
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                ws = await self._dial(f"/ws/take/{token}/")
                await self._await_status(ws)
        except TimeoutError:
            self.obs.handshake_failures[f"no_status_within_{HANDSHAKE_TIMEOUT:g}s"] += 1
        except HandshakeRefused as exc:
            self.obs.handshake_failures[exc.reason] += 1
        except InvalidStatus as exc:
            self.obs.handshake_failures[f"rejected_http_{exc.response.status_code}"] += 1
        except InvalidMessage as exc:
            # The server hung up before answering the upgrade. daphne does that to a
            # socket its application has not accepted within --websocket_connect_timeout.
            closed = isinstance(exc.__cause__, EOFError)
            self.obs.handshake_failures["closed_during_http_upgrade" if closed else "InvalidMessage"] += 1
        except ConnectionClosed as exc:
            self.obs.handshake_failures[
                f"closed_before_status_{exc.rcvd.code if exc.rcvd else 'abnormally'}"
            ] += 1
        except (OSError, WebSocketException) as exc:
            self.obs.handshake_failures[type(exc).__name__] += 1
        else:
            self.obs.connect_ms.append((time.perf_counter() - dialled) * 1000.0)
            self.obs.connected += 1
            try:
                await self._stream(index, ws)
            finally:
                await ws.close()
            return
        if ws is not None:
            await ws.close()

    async def _await_status(self, ws: ClientConnection) -> None:
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == "status":
                return
            if message.get("type") == "error":
                self.obs.server_errors[str(message.get("code"))] += 1
                if message.get("fatal"):
                    raise HandshakeRefused(f"error_{message.get('code')}")

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                message = json.loads(raw)
                if message.get("type") == "error":
                    self.obs.server_errors[str(message.get("code"))] += 1
        except ConnectionClosed as exc:
            if not self.stop_streaming.is_set():
                self.obs.disconnects[str(exc.rcvd.code if exc.rcvd else "abnormal")] += 1

    async def _stream(self, index: int, ws: ClientConnection) -> None:
        """Frames every interval from now, on a fixed schedule, and heartbeats."""
        loop = asyncio.get_running_loop()
        walk = self.plan.walks[index]
        episodes = self.by_session.get(self.plan.load.candidates[index].session_id, [])
        reader = asyncio.create_task(self._read(ws))
        stream_start = loop.time()
        frame_no = 0
        next_beat = stream_start + HEARTBEAT_SECONDS
        try:
            while not self.stop_streaming.is_set() and not reader.done():
                now = loop.time()
                next_frame = stream_start + frame_no * self.plan.interval
                wake = min(next_frame, next_beat)
                if wake > now:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop_streaming.wait(), wake - now)
                    continue
                if next_beat <= now:
                    await ws.send(json.dumps({"type": "heartbeat"}))
                    self.obs.heartbeats_sent += 1
                    next_beat += HEARTBEAT_SECONDS
                if next_frame <= now:
                    late = int((now - next_frame) // self.plan.interval)
                    if late:  # a stalled loop sends one frame now, not a burst of old ones
                        self.obs.frames_skipped_late += late
                        frame_no += late
                    t = frame_no * self.plan.interval
                    frame_no += 1
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
            pass  # the reader counts it
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

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
                f"(failed {failures}, dropped {sum(obs.disconnects.values())}) "
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
