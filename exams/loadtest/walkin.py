"""``manage.py loadtest --walk-in``: candidates walk into the exam through the real
pages, all from this one address, as an exam hall behind one NAT does at 9:00.

Each simulated candidate does what a browser on the candidate's pages does:
opens its link (the consent page, which sets the CSRF cookie), consents (a form
POST with the CSRF token, as the browser sends it), opens the verification page,
uploads a verification picture (static/js/take_verify.js: a JPEG POST with
X-CSRFToken), polls its status as the page does (``poll_delay``) until it is verified (a result
that is not a pass, or a page that gave up, takes another picture), opens the
exam page (which starts the attempt) and connects the exam socket, which then
sends frames at the server's pace and heartbeats until the run ends. Static
files (CSS, JS) are not fetched: whitenoise serves them outside every limit.

A step that answers an unexpected status (429, 500, ...) is counted by step and
status and tried again after a person's pause (RETRY_SECONDS), until the run's
deadline. The optional neighbour sends made-up tokens from the same address,
pages and sockets in turn, at ``neighbour_per_minute``.

One asyncio loop, no database access: the caller passes the tokens in.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus, WebSocketException

from exams.loadtest.runner import HANDSHAKE_TIMEOUT, HEARTBEAT_SECONDS, frame_delay, reconnect_delay

log = logging.getLogger(__name__)

POLL_GIVE_UP_SECONDS = 90.0  # take_verify.js: then "taking longer than expected. Try again."


def poll_delay(attempt: int) -> float:
    """take_verify.js's pollDelay: 0.5 s at first, growing to every 2 s."""
    return min(0.5 * 1.5 ** (attempt // 2), 2.0)


RETRY_SECONDS = (2.0, 5.0)  # a person reading an error page, then reloading
HTTP_TIMEOUT = 60.0  # seconds a browser waits for an answer before it shows an error
STAGES = (
    "consent_page",
    "consented",
    "verify_page",
    "photo_accepted",
    "verified",
    "in_progress",
    "socket_open",
)
CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, list[str]]  # lower-case names
    body: bytes

    def header(self, name: str) -> str:
        return (self.headers.get(name.lower()) or [""])[-1]

    def json(self) -> dict:
        return json.loads(self.body or b"{}")


def _dechunk(body: bytes) -> bytes:
    out, rest = bytearray(), body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out)


async def http(
    base_url: str, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> Response:
    """One HTTP/1.1 request on a connection of its own (``Connection: close``)."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, content = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    if not status_line.startswith("HTTP/"):
        raise ConnectionError(f"not an HTTP answer: {status_line[:40]!r}")
    found: dict[str, list[str]] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    response = Response(int(status_line.split()[1]), found, content)
    if "chunked" in response.header("transfer-encoding").lower():
        response = Response(response.status, found, _dechunk(content))
    return response


@dataclass
class WalkPlan:
    base_url: str  # http://127.0.0.1:8101
    tokens: list[str]
    pictures: list[list[bytes]]  # per candidate: its verification pictures, then its exam frames
    ramp: float  # seconds over which the candidates arrive
    duration: float  # seconds from the first arrival until the run stops everyone
    interval: float  # the exam's frame interval
    neighbour_per_minute: float = 0.0
    more_urls: tuple[str, ...] = ()

    def url_for(self, index: int) -> str:
        urls = (self.base_url, *self.more_urls)
        return urls[index % len(urls)]


@dataclass
class WalkObservations:
    arrived: int = 0
    reached: Counter[str] = field(default_factory=Counter)  # stage -> candidates that reached it
    seconds_to: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    # Every HTTP status other than 2xx/3xx, and every socket refusal, by "step status".
    unexpected: Counter[str] = field(default_factory=Counter)
    too_many_requests: int = 0  # HTTP 429 answers to valid candidates
    sockets_4429: int = 0  # candidate sockets closed 4429
    uploads: int = 0
    uploads_by: Counter[int] = field(default_factory=Counter)  # candidate -> pictures accepted
    retakes: Counter[str] = field(default_factory=Counter)  # another picture, by why
    polls: int = 0
    frames_sent: int = 0
    client_errors: Counter[str] = field(default_factory=Counter)
    neighbour: Counter[str] = field(default_factory=Counter)  # "page 404", "socket 4429", ...
    last_in_progress_s: float | None = None
    started_at: float = 0.0
    ended_at: float = 0.0


class Refused(Exception):
    """A step's answer was not what a working page gets; the step is tried again."""


def _csrf_cookie(response: Response, current: str) -> str:
    for value in response.headers.get("set-cookie", []):
        name, _, rest = value.partition("=")
        if name.strip() == "csrftoken":
            return rest.split(";", 1)[0]
    return current


def _csrf_field(response: Response) -> str:
    found = CSRF_FIELD.search(response.body)
    if not found:
        raise Refused("no csrf field")
    return found.group(1).decode()


class WalkIn:
    def __init__(self, plan: WalkPlan, *, progress: Callable[[str], None]) -> None:
        self.plan = plan
        self.progress = progress
        self.obs = WalkObservations()
        self.stop = asyncio.Event()
        self.loop_start = 0.0

    # ------------------------------------------------------------ one candidate

    async def _step(self, index: int, name: str, request, expect: Callable[[Response], bool]) -> Response:
        """Send ``request()`` until ``expect`` holds for its answer (a person reloads after
        an error page); every other answer is counted. Raises Refused once the run stops."""
        while not self.stop.is_set():
            try:
                async with asyncio.timeout(HTTP_TIMEOUT):
                    response = await request()
            except (OSError, TimeoutError, ConnectionError) as exc:
                self.obs.unexpected[f"{name} {type(exc).__name__}"] += 1
            else:
                if expect(response):
                    return response
                if 200 <= response.status < 400:  # a working answer, but not this step's
                    self.obs.unexpected[f"{name} {response.status} unexpected"] += 1
                else:
                    self.obs.unexpected[f"{name} {response.status}"] += 1
                    self.obs.too_many_requests += response.status == 429
            await self._pause(random.uniform(*RETRY_SECONDS))
        raise Refused("stopped")

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    def _reached(self, stage: str, arrived: float) -> None:
        self.obs.reached[stage] += 1
        self.obs.seconds_to[stage].append(asyncio.get_running_loop().time() - arrived)

    async def candidate(self, index: int, arrive_at: float) -> None:
        loop = asyncio.get_running_loop()
        await self._pause(max(0.0, arrive_at - loop.time()))
        if self.stop.is_set():
            return
        self.obs.arrived += 1
        arrived = loop.time()
        try:
            await self._walk(index, arrived)
        except Refused:
            return

    async def _walk(self, index: int, arrived: float) -> None:
        base, token = self.plan.url_for(index), self.plan.tokens[index]
        origin = base
        take = f"/take/{token}"
        cookie = ""

        async def get(path: str, accept: str = "text/html") -> Response:
            headers = {"Accept": accept}
            if cookie:
                headers["Cookie"] = f"csrftoken={cookie}"
            return await http(base, "GET", path, headers=headers)

        page = await self._step(index, "consent_page", lambda: get(f"{take}/"), lambda r: r.status == 200)
        cookie = _csrf_cookie(page, cookie)
        form = _csrf_field(page)
        self._reached("consent_page", arrived)

        def consent() -> asyncio.Future:
            return http(
                base,
                "POST",
                f"{take}/",
                headers={
                    "Cookie": f"csrftoken={cookie}",
                    "Origin": origin,
                    "Referer": f"{base}{take}/",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                body=urlencode({"csrfmiddlewaretoken": form, "agree": "yes"}).encode(),
            )

        await self._step(
            index, "consent", consent, lambda r: r.status == 302 and r.header("location").endswith("/verify/")
        )
        self._reached("consented", arrived)
        page = await self._step(
            index, "verify_page", lambda: get(f"{take}/verify/"), lambda r: r.status == 200
        )
        cookie = _csrf_cookie(page, cookie)
        form = _csrf_field(page)
        self._reached("verify_page", arrived)

        pictures = itertools.cycle(self.plan.pictures[index])
        while True:
            picture = next(pictures)

            def upload(picture: bytes = picture) -> asyncio.Future:
                return http(
                    base,
                    "POST",
                    f"{take}/verify/photo",
                    headers={
                        "Cookie": f"csrftoken={cookie}",
                        "Origin": origin,
                        "X-CSRFToken": form,
                        "Content-Type": "image/jpeg",
                        "Accept": "application/json",
                    },
                    body=picture,
                )

            sent = await self._step(index, "verify_photo", upload, lambda r: r.status in (202, 409))
            if sent.status == 409:
                # take_verify.js reloads the page when the answer names a state: here a
                # result that came in after the page had been told to take another.
                self.obs.unexpected[f"verify_photo 409 {sent.json().get('state')}"] += 1
                if sent.json().get("state") == "verified":
                    break
                await self._pause(random.uniform(*RETRY_SECONDS))
                continue
            self.obs.uploads += 1
            if self.obs.uploads_by[index] == 0:
                self._reached("photo_accepted", arrived)
            self.obs.uploads_by[index] += 1
            outcome = await self._poll(index, get, take)
            if outcome == "verified":
                break
            self.obs.retakes[outcome] += 1
        self._reached("verified", arrived)

        await self._step(
            index,
            "exam_page",
            lambda: get(f"{take}/exam/"),
            lambda r: r.status == 200 and b'id="exam"' in r.body,
        )
        self._reached("in_progress", arrived)
        self.obs.last_in_progress_s = asyncio.get_running_loop().time() - self.loop_start
        await self._socket(index, token, arrived, pictures)

    async def _poll(self, index: int, get, take: str) -> str:
        """take_verify.js's poll: "verified", or why the page asks for another picture."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        polls = 0
        while loop.time() - started < POLL_GIVE_UP_SECONDS:
            await self._pause(poll_delay(polls))
            polls += 1
            status = await self._step(
                index,
                "verify_status",
                lambda: get(f"{take}/verify/status", "application/json"),
                lambda r: r.status == 200,
            )
            self.obs.polls += 1
            data = status.json()
            if data.get("state") == "verified":
                return "verified"
            if data.get("status") != "pending":
                return data.get("status") or "lost"
        return "gave_up_polling"

    async def _socket(self, index: int, token: str, arrived: float, frames) -> None:
        """The exam page's socket (socket.js): reconnects after every close that is not
        fatal, with its backoff; streams frames and heartbeats until the run stops."""
        ws_url = "ws" + self.plan.url_for(index).removeprefix("http")
        resume = f"walkin-{index:05d}-{secrets.token_hex(4)}"
        attempt, opened_once = 0, False
        while not self.stop.is_set():
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                    ws = await connect(
                        f"{ws_url}/ws/take/{token}/?resume={resume}",
                        origin=self.plan.url_for(index),
                        compression=None,
                        proxy=None,
                        open_timeout=None,
                        ping_interval=None,
                        close_timeout=2,
                    )
                    first = json.loads(await ws.recv())
            except ConnectionClosed as exc:
                self._socket_refused(exc.rcvd.code if exc.rcvd else "abnormal")
            except (TimeoutError, InvalidStatus, InvalidMessage, OSError, WebSocketException) as exc:
                self.obs.unexpected[f"socket {type(exc).__name__}"] += 1
            else:
                if first.get("type") == "status":
                    if not opened_once:
                        opened_once = True
                        self._reached("socket_open", arrived)
                    attempt = 0
                    await self._stream(ws, first, frames)
                else:
                    with contextlib.suppress(ConnectionClosed):
                        await ws.recv()
                    code = ws.close_code
                    self._socket_refused(code if code is not None else f"error_{first.get('code')}")
                    if first.get("fatal"):
                        return
                await ws.close()
            await self._pause(reconnect_delay(attempt))
            attempt += 1

    def _socket_refused(self, code) -> None:
        self.obs.unexpected[f"socket {code}"] += 1
        self.obs.sockets_4429 += code == 4429

    async def _stream(self, ws, first: dict, frames) -> None:
        interval = float(first.get("interval") or self.plan.interval)
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + HEARTBEAT_SECONDS

        async def read() -> None:
            nonlocal interval
            async for raw in ws:
                if isinstance(raw, str):
                    message = json.loads(raw)
                    if message.get("type") == "status":
                        interval = float(message.get("interval") or interval)

        reader = asyncio.create_task(read())
        try:
            next_frame = loop.time()
            while not self.stop.is_set() and not reader.done():
                now = loop.time()
                if now >= next_frame:
                    await ws.send(next(frames))
                    self.obs.frames_sent += 1
                    next_frame = now + frame_delay(interval)
                if now >= next_beat:
                    await ws.send(json.dumps({"type": "heartbeat"}))
                    next_beat = now + HEARTBEAT_SECONDS
                await self._pause(max(0.0, min(next_frame, next_beat) - loop.time()))
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader
        if not self.stop.is_set() and ws.close_code is not None:
            self._socket_refused(ws.close_code)

    # ------------------------------------------------------------ the neighbour

    async def neighbour(self) -> None:
        """Made-up tokens from the same address, a page and a socket in turn."""
        if self.plan.neighbour_per_minute <= 0:
            return
        gap = 60.0 / self.plan.neighbour_per_minute
        n = 0
        while not self.stop.is_set():
            fake = secrets.token_urlsafe(32)
            try:
                if n % 2 == 0:
                    answer = await http(
                        self.plan.base_url, "GET", f"/take/{fake}/", headers={"Accept": "text/html"}
                    )
                    self.obs.neighbour[f"page {answer.status}"] += 1
                else:
                    await self._neighbour_socket(fake)
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.obs.neighbour[type(exc).__name__] += 1
            n += 1
            await self._pause(gap)

    async def _neighbour_socket(self, fake: str) -> None:
        ws_url = "ws" + self.plan.base_url.removeprefix("http")
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                async with connect(
                    f"{ws_url}/ws/take/{fake}/", origin=self.plan.base_url, proxy=None, open_timeout=None
                ) as ws:
                    await ws.recv()
                    with contextlib.suppress(ConnectionClosed):
                        await ws.recv()
                    self.obs.neighbour[f"socket {ws.close_code}"] += 1
        except ConnectionClosed as exc:
            self.obs.neighbour[f"socket {exc.rcvd.code if exc.rcvd else 'abnormal'}"] += 1
        except (InvalidStatus, InvalidMessage, WebSocketException) as exc:
            self.obs.neighbour[f"socket {type(exc).__name__}"] += 1

    # ------------------------------------------------------------ the run

    async def _report_progress(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(5.0)
            reached = self.obs.reached
            self.progress(
                f"t={loop.time() - self.loop_start:5.1f}s arrived {self.obs.arrived} "
                + " ".join(f"{stage} {reached[stage]}" for stage in STAGES)
                + f" | 429 {self.obs.too_many_requests} 4429 {self.obs.sockets_4429}"
                + (f" other {sum(self.obs.unexpected.values())}" if self.obs.unexpected else "")
            )

    async def run(self) -> WalkObservations:
        loop = asyncio.get_running_loop()
        plan = self.plan
        self.loop_start = loop.time()
        self.obs.started_at = time.time()
        count = len(plan.tokens)
        step = plan.ramp / count if count > 1 else 0.0
        progress = asyncio.create_task(self._report_progress())
        neighbour = asyncio.create_task(self.neighbour())
        walks = [asyncio.create_task(self.candidate(i, self.loop_start + i * step)) for i in range(count)]
        deadline = self.loop_start + plan.duration
        # The walk ends at the deadline, or a little after everyone is in (their sockets open).
        while loop.time() < deadline and self.obs.reached["socket_open"] < count:
            await asyncio.sleep(0.25)
        if self.obs.reached["socket_open"] >= count:
            await self._pause(min(5.0, max(0.0, deadline - loop.time())))
        self.stop.set()
        for result in await asyncio.gather(*walks, neighbour, return_exceptions=True):
            if isinstance(result, BaseException):
                self.obs.client_errors[type(result).__name__] += 1
                log.warning("walk-in task failed", exc_info=result)
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
        self.obs.ended_at = time.time()
        return self.obs
