"""Websocket consumers. They authenticate in ``connect``, validate every
message, hand work on, and run no computer vision.

Candidate protocol (``/ws/take/<token>/?resume=<per-tab id>``):
  client → server  binary message: one JPEG frame
                   {"type": "heartbeat"}
                   {"type": "signal", "name": "tab_hidden"|"fullscreen_exit"|"copy_paste", "active": bool}
                   {"type": "chat", "text": "1 to 500 characters"}
                       (at most CHAT_BURST per CHAT_WINDOW_SECONDS)
  server → client  {"type": "status", "state", "interval", "busy", "paused"}   (on connect, with
                       "deadline" (when the attempt ends, ISO 8601, extra time included; null before
                       the start), and whenever the server asks for frames every "interval" s: "busy"
                       under overload)
                   {"type": "deadline", "deadline"}   (a proctor gave extra time: the new deadline)
                   {"type": "error", "code", "message"}   (the connection stays open unless it says "fatal")
                   Every message spends one budget per connection (BUDGET_MESSAGES per
                   BUDGET_WINDOW_SECONDS); over it they are dropped ("too_fast"), and after
                   FLOOD_DROPS drops a fatal "flooding" and close 4420. Too many connects on one token,
                   or a refused token from an address over the refused-token limit, in a minute:
                   "too_many_requests" and close 4429 (the page retries).
                   A same-tab reconnect (same resume id) takes the session over; the old socket
                   gets a fatal "taken_over". Another tab or device gets a non-fatal
                   "duplicate_session" and close 4409, and may retry (the proctors get one
                   alert per session that counts the attempts, see services.connection_refused).
                   Bad messages are audited up to services.MAX_AUDITED_SOCKET_ERRORS per session.
                   {"type": "warn"|"message"|"pause"|"resume", "text"} and {"type": "ended", "text"}
                   {"type": "deadline", "deadline": "<ISO 8601>"}   (extra time moved the end)
                   {"type": "chat_ack", "message": {"id", "text", "at"}}   (the candidate's message is stored)
                   {"type": "chat", "message": {"id", "sender", "kind", "speaker", "text", "at"}}
                       (a line of the conversation, either side, labelled for the candidate)
Proctor protocol (``/ws/proctor/exams/<code>/``): server → client only,
  on connect {"type": "snapshot", "sessions": [{...}, ...], "feed": [...]} (every session of the
  exam, and the feed so far: the recent and the still open alerts and candidates' messages, oldest
  first, each as the "event" or "chat" message that pushed it), then
  {"type": "sessions", "sessions": [{...}, ...]} (the tiles that changed, at most one batch
  per GRID_PUSH_SECONDS; a tile carries "thumbnail", a small JPEG data URL, when its picture
  changed), {"type": "event", "event": {...}} (a new alert, or a change to one: closed, or
  acknowledged by a proctor) and {"type": "chat", "message": {...}} (either side of any
  candidate's conversation), both sent at once.
  The socket closes with 4403 as soon as its user logs out of this browser session,
  is deactivated, loses the proctor role or is removed from the exam
  (``exams.services.revocation``), and at the latest at the next periodic recheck.
  The payloads are built in ``exams.live``; they carry the URLs and labels pages show.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
import uuid
from collections import deque
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404
from django.utils import timezone
from PIL import Image

from exams import limits, live, services
from exams.access import TokenRefused, get_candidate_for_token, get_exam_for_proctor, staff_session_current
from exams.analysis import intake
from exams.analysis.pacing import pacing
from exams.models import ExamSession, IllegalTransition
from exams.presence import HELD, TAKEN_OVER, presence

log = logging.getLogger(__name__)

SIGNALS = ("tab_hidden", "fullscreen_exit", "copy_paste")
MAX_TEXT_BYTES = 4096
# Bad messages are audited, but a broken client must not flood the audit log:
# at most services.MAX_AUDITED_SOCKET_ERRORS per session (not per connection).
CHAT_BURST, CHAT_WINDOW_SECONDS = 5, 30
# The page sends a signal when the tab hides or shows, full screen changes, or
# text is copied: a few a minute. A toggling script made 150 events from 300.
SIGNAL_BURST, SIGNAL_WINDOW_SECONDS = 10, 10
# The page sends a heartbeat every 5 s.
HEARTBEAT_BURST, HEARTBEAT_WINDOW_SECONDS = 3, 5
# Per kind of text message: (window seconds, messages allowed in it).
MESSAGE_LIMITS = {
    "signal": (SIGNAL_WINDOW_SECONDS, SIGNAL_BURST),
    "heartbeat": (HEARTBEAT_WINDOW_SECONDS, HEARTBEAT_BURST),
}
# One budget for every message of a connection (frames, signals, heartbeats, chat),
# on top of the limits per kind: a page at the fastest exam interval sends about
# one frame a second plus a heartbeat every 5 s, far below this.
BUDGET_WINDOW_SECONDS, BUDGET_MESSAGES = 10, 60
# A client that keeps sending over budget is not a page: after this many dropped
# messages the socket is closed (CLOSE_FLOODING) and that is audited once.
FLOOD_DROPS = 100

CLOSE_REFUSED = 4403
CLOSE_DUPLICATE = 4409  # the page retries: it gets in once the other tab or device is gone
CLOSE_TAKEN_OVER = 4410  # this socket was replaced by a newer one from the same tab
CLOSE_TRY_AGAIN = 4503  # the server failed while connecting; the page retries
CLOSE_ENDED = 4000
CLOSE_FLOODING = 4420  # far over the connection's message budget; fatal, audited once
CLOSE_RATE_LIMITED = 4429  # this token's budget, or its address's refused tokens, spent; the page retries

OVER_BUDGET = f"Over {BUDGET_MESSAGES} messages in {BUDGET_WINDOW_SECONDS} s; messages are being dropped."
FLOODING = "This connection sent far too many messages and was closed. Reload the page to continue."
TOO_MANY_SOCKETS = "Too many connections for this exam link; retrying in a moment…"
DUPLICATE_MESSAGE = (
    "This exam is open in another tab or on another device. Close the other one; this page "
    "connects by itself once it is closed. The attempt was recorded for the proctor."
)
FRAME_FORMATS = ("JPEG", "PNG")
MAX_SIDE = 1280  # the page sends 640x480
RESUME_ID = re.compile(r"[A-Za-z0-9-]{8,64}")
# Overload: each step slows a lagging stream by PACE_STEP, down to
# intake.SLOWEST_PACE times the exam's interval; CALM_FRAMES frames that found
# no frame waiting speed it up one step again.
PACE_STEP, CALM_FRAMES = 1.5, 10
# The page is told a new pace only when it changes by more than this fraction.
PACE_CHANGE = 0.05
# How often an open proctor socket is authorised again and rejoins its group.
PROCTOR_RECHECK_SECONDS = 15
# A proctor's grid gets at most one batch of tile updates per this many seconds,
# however many candidates change (latency against message count: see docs/performance.md).
GRID_PUSH_SECONDS = 0.25


def _submit_frame(session: ExamSession, data: bytes) -> tuple[bool, float]:
    """Queue a camera frame; whether it replaced a waiting one, and the server's pace factor."""
    return intake.submit(intake.FRAME, session=session, data=data), pacing().factor()


async def _pace_factor() -> float:
    return await sync_to_async(pacing().factor, thread_sensitive=False)()


@database_sync_to_async
def _candidate_session(token: str) -> ExamSession:
    candidate = get_candidate_for_token(token)
    session = services.session_for_candidate(candidate)
    return ExamSession.objects.select_related("candidate__exam").get(pk=session.pk)


@database_sync_to_async
def _reload(session: ExamSession) -> ExamSession:
    return ExamSession.objects.select_related("candidate__exam").get(pk=session.pk)


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def _resume_id(query_string: bytes) -> str:
    """The page's per-tab resume id (``?resume=``), or a fresh one: a page without
    one is treated as a new tab."""
    values = parse_qs(query_string.decode("latin-1")).get("resume", [])
    if values and RESUME_ID.fullmatch(values[0]):
        return values[0]
    return uuid.uuid4().hex


def _admit(times: deque[float], window: float, burst: int) -> bool:
    """``_has_room`` now, and if so count this message."""
    now = time.monotonic()
    if not _has_room(times, now, window, burst):
        return False
    times.append(now)
    return True


def _has_room(times: deque[float], now: float, window: float, burst: int) -> bool:
    """Sliding-window rate limit: forget the times older than ``window`` seconds, and
    say whether fewer than ``burst`` remain. The caller appends ``now`` once it
    counts the message."""
    while times and now - times[0] > window:
        times.popleft()
    return len(times) < burst


def _looks_like_a_frame(data: bytes) -> bool:
    """A JPEG or PNG of a sane size, judged from its header alone by Pillow.

    Decoding the whole frame here cost daphne 11-14 ms of CPU per frame
    (measured with manage.py loadtest), a fifth of the server at 10
    candidates; the worker decodes it anyway and drops a frame that fails."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return image.format in FRAME_FORMATS and 0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


class CandidateConsumer(AsyncWebsocketConsumer):
    session: ExamSession | None = None

    async def connect(self) -> None:
        live.remember_server_loop()
        self.session = None
        self.deadline = None
        self.ended = False
        self.claimed = False
        self.audit_errors = True
        self.frame_times: deque[float] = deque()
        self.chat_times: deque[float] = deque()
        self.message_times: dict[str, deque[float]] = {}
        self.budget_times: deque[float] = deque()
        self.dropped = 0
        self.refreshed_at = 0.0
        self.resume = _resume_id(self.scope.get("query_string", b""))
        await self.accept()
        try:
            await self.open_session()
        except Exception:
            # The database or Redis failed under us: the page must come back, not die.
            log.exception("candidate socket: connect failed")
            await self.release()
            await self.send_json(
                {"type": "error", "code": "unavailable", "message": "The server is busy; reconnecting…"}
            )
            await self.close(code=CLOSE_TRY_AGAIN)

    async def open_session(self) -> None:
        token = self.scope["url_route"]["kwargs"]["token"]
        ip = limits.scope_ip(self.scope)
        try:
            session = await _candidate_session(token)
        except TokenRefused as exc:
            # Counted against the address; once it is over the limit, its refused
            # tokens are told to wait (4429) rather than answered.
            if await sync_to_async(limits.token_refused, thread_sensitive=False)(ip):
                await self.send_json(
                    {"type": "error", "code": "too_many_requests", "message": TOO_MANY_SOCKETS}
                )
                await self.close(code=CLOSE_RATE_LIMITED)
                return
            await database_sync_to_async(services.audit_anonymous_refusal)(
                action="websocket_refused", reason=exc.code
            )
            await self.fatal(exc.code, exc.reason, CLOSE_REFUSED)
            return
        # A valid token spends its own budget only, whatever its address did. Redis only, so
        # off the one thread that every socket's database calls queue on.
        if await sync_to_async(limits.token_over_budget, thread_sensitive=False)(session.candidate_id):
            await self.send_json({"type": "error", "code": "too_many_requests", "message": TOO_MANY_SOCKETS})
            await self.close(code=CLOSE_RATE_LIMITED)
            return
        if await self.out_of_time(session):
            return
        if session.state != ExamSession.State.IN_PROGRESS:
            message = (
                "This exam has finished."
                if session.is_finished
                else "Start the exam from your exam link first."
            )
            await self.fatal("not_in_progress", message, CLOSE_REFUSED)
            return
        session_id = str(session.public_id)
        claim = await presence().claim(session_id, self.channel_name, self.resume)
        if claim.outcome == HELD:
            if await presence().first_refusal(session_id, self.resume):
                await database_sync_to_async(services.connection_refused)(session=session)
            # Not fatal: the page keeps retrying and gets in once the other tab or device is gone.
            await self.send_json({"type": "error", "code": "duplicate_session", "message": DUPLICATE_MESSAGE})
            await self.close(code=CLOSE_DUPLICATE)
            return
        self.claimed = True
        self.session = session
        if claim.outcome == TAKEN_OVER:
            # The same tab came back (a dropped network); its old socket may still look open.
            await self.channel_layer.send(claim.previous, {"type": "session.taken_over"})
        await database_sync_to_async(services.connection_open)(
            session=session, channel_name=self.channel_name
        )
        self.interval = self.own_pace = session.exam.frame_interval
        # A page that connects while the server is behind starts at the slower pace.
        self.pace = max(self.interval, self.interval * await _pace_factor())
        self.calm, self.pace_changed_at = 0, time.monotonic()
        await self.channel_layer.group_add(live.session_group(session.public_id), self.channel_name)
        await self.send_status(with_deadline=True)

    async def out_of_time(self, session: ExamSession) -> bool:
        """Past the attempt's deadline: submit it now (the beat task may not have
        run yet), tell the page and close. False if time is left, or the
        deadline moved (extra time was granted); ``self.deadline`` is updated."""
        self.deadline = session.deadline
        if not session.is_live or self.deadline is None or timezone.now() < self.deadline:
            return False
        await database_sync_to_async(services.session_time_up)(session=session)
        session = await _reload(session)
        self.deadline = session.deadline
        if session.is_live:
            return False
        self.ended = True
        await self.send_json(
            {"type": "ended", "state": session.state, "text": "Time is up: your exam was submitted."}
        )
        await self.close(code=CLOSE_ENDED)
        return True

    async def disconnect(self, code: int) -> None:
        if self.session is None:
            return
        try:
            await self.channel_layer.group_discard(
                live.session_group(self.session.public_id), self.channel_name
            )
            await database_sync_to_async(services.connection_close)(
                session=self.session, channel_name=self.channel_name
            )
        except Exception:
            log.exception("candidate socket: disconnect bookkeeping failed for %s", self.session.public_id)
        finally:
            await self.release()

    async def release(self) -> None:
        if self.claimed and self.session is not None:
            self.claimed = False
            try:
                await presence().release(str(self.session.public_id), self.channel_name)
            except Exception:  # the claim expires by itself within HEARTBEAT_TIMEOUT_SECONDS
                log.exception("candidate socket: could not release the claim")

    async def session_taken_over(self, event: dict) -> None:
        """The same tab reconnected on a new socket; this one is stale."""
        self.claimed = False  # the claim is the new socket's now
        await self.fatal("taken_over", "This exam continued on a newer connection.", CLOSE_TAKEN_OVER)

    async def keep_alive(self) -> None:
        """Extend the claim, at most a few times per time-to-live: no database write."""
        now = time.monotonic()
        if now - self.refreshed_at < settings.HEARTBEAT_TIMEOUT_SECONDS / 4:
            return
        self.refreshed_at = now
        session_id = str(self.session.public_id)
        if await presence().refresh(session_id, self.channel_name):
            return
        # The claim vanished (Redis restarted) or expired while the socket lived: take it again.
        claim = await presence().claim(session_id, self.channel_name, self.resume)
        if claim.outcome == HELD:
            self.claimed = False
            await self.fatal("taken_over", "This exam continued in another tab or device.", CLOSE_TAKEN_OVER)
            return
        # Redis may have restarted and forgotten the session's group too.
        await self.channel_layer.group_add(live.session_group(self.session.public_id), self.channel_name)
        await database_sync_to_async(services.connection_open)(
            session=self.session, channel_name=self.channel_name
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is None:
            return
        if not _admit(self.budget_times, BUDGET_WINDOW_SECONDS, BUDGET_MESSAGES):
            await self.over_budget()
            return
        try:
            await self.handle(text_data, bytes_data)
        except Exception:
            # Whatever went wrong, the candidate keeps the connection and the exam.
            log.exception("candidate socket: message handler failed for %s", self.session.public_id)
            await self.send_json(
                {"type": "error", "code": "server_error", "message": "The server could not handle that."}
            )

    async def handle(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if self.ended:
            return  # time ran out; the socket is closing
        if self.deadline is not None and timezone.now() >= self.deadline:
            if await self.out_of_time(self.session):
                return
        if bytes_data is not None:
            await self.receive_frame(bytes_data)
            return
        if text_data is None or len(text_data) > MAX_TEXT_BYTES:
            await self.refuse("malformed", "Message too large or empty.")
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.refuse("malformed", "Message is not valid JSON.")
            return
        if not isinstance(message, dict):
            await self.refuse("malformed", "Message must be a JSON object.")
            return
        kind = message.get("type")
        limited = MESSAGE_LIMITS.get(kind)
        if limited and not _admit(self.message_times.setdefault(kind, deque()), *limited):
            await self.refuse("too_fast", f"Too many {kind} messages; this one was dropped.")
            return
        if kind == "heartbeat":
            await self.keep_alive()
        elif kind == "signal":
            name, active = message.get("name"), message.get("active", True)
            if name not in SIGNALS or not isinstance(active, bool):
                await self.refuse("malformed", f"Unknown signal {str(name)[:40]!r}.")
                return
            await database_sync_to_async(services.signal_record)(
                session=self.session, signal=name, active=active
            )
        elif kind == "chat":
            await self.receive_chat(message.get("text"))
        else:
            await self.refuse("unknown_type", f"Unknown message type {str(kind)[:40]!r}.")

    async def receive_frame(self, data: bytes) -> None:
        if len(data) > settings.FRAME_MAX_BYTES:
            await self.refuse(
                "frame_too_large",
                f"Frame of {len(data)} bytes is over the {settings.FRAME_MAX_BYTES} byte limit.",
            )
            return
        # Up to FRAME_BURST frames per interval: a client sending one per interval
        # never hits this, whatever its timer jitter.
        if not _admit(self.frame_times, self.interval, settings.FRAME_BURST):
            await self.refuse(
                "too_fast", f"Frames arrive faster than one every {self.interval:g} s; frame dropped."
            )
            return
        if not _looks_like_a_frame(data):
            await self.refuse(
                "not_an_image", f"Frame is not a JPEG or PNG image of at most {MAX_SIDE}x{MAX_SIDE} pixels."
            )
            return
        lagging, factor = await database_sync_to_async(_submit_frame, thread_sensitive=False)(
            self.session, data
        )
        await self.keep_alive()
        await self.adjust_pace(lagging, factor)

    async def adjust_pace(self, lagging: bool, factor: float = 1.0) -> None:
        """Under overload, ask the page for fewer frames rather than let them queue.

        Two signals: the whole server's (``factor``, from how long frames wait
        before analysis, see ``exams.analysis.pacing``), and this stream's own
        (slower while its frames are replaced before analysis, back to the
        exam's interval once it keeps up). The slower of the two wins. The rate
        limit stays at the exam's interval."""
        own = self.own_pace
        if lagging:
            self.calm = 0
            if time.monotonic() - self.pace_changed_at >= own:
                own = min(own * PACE_STEP, self.interval * intake.SLOWEST_PACE)
        else:
            self.calm += 1
            if self.calm >= CALM_FRAMES:
                own, self.calm = max(self.interval, own / PACE_STEP), 0
        if own != self.own_pace:
            self.own_pace, self.pace_changed_at = own, time.monotonic()
        pace = max(own, self.interval * factor)
        if abs(pace - self.pace) > PACE_CHANGE * self.pace:
            self.pace = pace
            await self.send_status()

    async def send_status(self, *, with_deadline: bool = False) -> None:
        await self.send_json(
            {
                "type": "status",
                "state": self.session.state,
                "interval": round(self.pace, 2),
                "busy": self.pace > self.interval,
                "paused": self.session.paused,
            }
            # Only on connect, from the session just read: a page that reconnects
            # after extra time was granted gets the new end. Later statuses (pace
            # changes) leave it out rather than repeat a deadline read long ago.
            | ({"deadline": _iso(self.session.deadline)} if with_deadline else {})
        )

    async def receive_chat(self, text) -> None:
        now = time.monotonic()
        if not _has_room(self.chat_times, now, CHAT_WINDOW_SECONDS, CHAT_BURST):
            await self.refuse(
                "too_fast",
                f"At most {CHAT_BURST} messages every {CHAT_WINDOW_SECONDS} s; "
                "wait a moment and send it again.",
            )
            return
        try:
            sent = await database_sync_to_async(services.message_from_candidate)(
                session=self.session, text=text
            )
        except (ValueError, IllegalTransition) as exc:
            await self.refuse("bad_chat", str(exc))
            return
        self.chat_times.append(now)
        await self.send_json(
            {
                "type": "chat_ack",
                "message": {"id": sent.pk, "text": sent.text, "at": sent.created_at.isoformat()},
            }
        )

    async def push(self, event: dict) -> None:
        if self.ended:
            return  # this socket already said so and is closing
        payload = event["payload"]
        await self.send_json(payload)
        if payload.get("type") == "ended":
            await self.close(code=CLOSE_ENDED)
        elif payload.get("type") in ("pause", "resume", "deadline") and self.session is not None:
            self.session = await _reload(self.session)

    async def over_budget(self) -> None:
        """Drop the message unaudited; close the socket once the client keeps at it."""
        self.dropped += 1
        if self.dropped < FLOOD_DROPS:
            if self.dropped == 1 or self.dropped % 10 == 0:
                await self.send_json({"type": "error", "code": "too_fast", "message": OVER_BUDGET})
            return
        if self.dropped > FLOOD_DROPS:  # closing already; audited once
            return
        await database_sync_to_async(services.socket_error_audit)(
            session=self.session,
            action="socket_flooding",
            details={"dropped": self.dropped, "budget": f"{BUDGET_MESSAGES} per {BUDGET_WINDOW_SECONDS} s"},
        )
        await self.fatal("flooding", FLOODING, CLOSE_FLOODING)

    async def refuse(self, code: str, message: str) -> None:
        """A bad message: tell the client, audit it (up to a cap per session), keep the connection."""
        if self.audit_errors:  # once the session's cap is reached, no more round trips for it
            self.audit_errors = await database_sync_to_async(services.socket_error_audit)(
                session=self.session, action="bad_message", details={"code": code, "message": message}
            )
        await self.send_json({"type": "error", "code": code, "message": message})

    async def fatal(self, code: str, message: str, close_code: int) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, "fatal": True})
        await self.close(code=close_code)

    async def send_json(self, payload: dict) -> None:
        await self.send(text_data=json.dumps(payload))


@database_sync_to_async
def _proctor_still_allowed(user, code, session_key: str | None) -> None:
    try:
        user.refresh_from_db(fields=["is_active", "is_superuser", "password"])
    except ObjectDoesNotExist:
        raise PermissionDenied("the account was deleted") from None
    if not staff_session_current(user, session_key):
        raise PermissionDenied("signed out: the password changed or the session ended")
    get_exam_for_proctor(user, code)


@database_sync_to_async
def _proctor_exam(user, code):
    exam = get_exam_for_proctor(user, code)
    sessions = list(ExamSession.objects.filter(candidate__exam=exam).select_related("candidate__exam"))
    pictures = live.thumbnails([str(s.public_id) for s in sessions])
    tiles = [live.session_payload(s, thumbnail=pictures.get(str(s.public_id))) for s in sessions]
    return exam, tiles, live.exam_feed(exam)


class ProctorConsumer(AsyncWebsocketConsumer):
    """Listens to one exam. Tile updates are coalesced: at most one "sessions"
    message per GRID_PUSH_SECONDS, carrying the latest state of each tile that
    changed; alerts and chat go out at once."""

    group: str | None = None
    staff_group: str | None = None
    watcher: asyncio.Task | None = None
    flusher: asyncio.Task | None = None

    async def connect(self) -> None:
        live.remember_server_loop()
        self.group = None
        self.pending: dict[str, dict] = {}
        self.flushed_at = 0.0
        user = self.scope.get("user")
        try:
            exam, sessions, feed = await _proctor_exam(user, self.scope["url_route"]["kwargs"]["code"])
        except (PermissionDenied, Http404):
            await self.close(code=CLOSE_REFUSED)
            return
        self.group = live.exam_group(exam.code)
        self.user, self.code = user, exam.code
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        self.staff_group = live.staff_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(self.staff_group, self.channel_name)
        await self.accept()
        await self.send(text_data=json.dumps({"type": "snapshot", "sessions": sessions, "feed": feed}))
        self.watcher = asyncio.create_task(self.watch(user, exam.code))

    async def staff_recheck(self, event: dict) -> None:
        """The user logged out (of this browser session: close), or their rights
        changed (``exams.services.revocation``): check them now, close if gone."""
        logged_out = event["payload"].get("logged_out_session")
        if logged_out:
            session = self.scope.get("session")
            if logged_out == "*" or getattr(session, "session_key", None) == logged_out:
                await self.close(code=CLOSE_REFUSED)
            return
        try:
            await _proctor_still_allowed(self.user, self.code, self.session_key)
        except (PermissionDenied, Http404):
            await self.close(code=CLOSE_REFUSED)

    async def watch(self, user, code) -> None:
        """Every PROCTOR_RECHECK_SECONDS: is this proctor still allowed to watch the
        exam (an account can be deactivated, a proctor removed from the exam)? And
        join the group again, which is a no-op unless Redis restarted and forgot it."""
        while True:
            await asyncio.sleep(PROCTOR_RECHECK_SECONDS)
            try:
                await _proctor_still_allowed(user, code, self.session_key)
            except (PermissionDenied, Http404):
                await self.close(code=CLOSE_REFUSED)
                return
            except Exception:  # the database or Redis is down: try again next round
                log.exception("proctor socket: recheck failed")
                continue
            try:
                await self.channel_layer.group_add(self.group, self.channel_name)
                await self.channel_layer.group_add(self.staff_group, self.channel_name)
            except Exception:
                log.exception("proctor socket: could not rejoin %s", self.group)

    async def disconnect(self, code: int) -> None:
        for task in (self.watcher, self.flusher):
            if task is not None:
                task.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.staff_group:
            await self.channel_layer.group_discard(self.staff_group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Proctor actions go through audited HTTP POSTs; the socket only listens.
        await self.send(
            text_data=json.dumps(
                {"type": "error", "code": "read_only", "message": "This socket only listens."}
            )
        )

    async def push(self, event: dict) -> None:
        payload = event["payload"]
        if payload.get("type") != "session":
            await self.send(text_data=json.dumps(payload))
            return
        session = payload["session"]
        kept = self.pending.get(session["id"])
        if kept is not None and "thumbnail" in kept and "thumbnail" not in session:
            session = {**session, "thumbnail": kept["thumbnail"]}  # a newer state, the same picture
        self.pending[session["id"]] = session
        if self.flusher is None:
            self.flusher = asyncio.create_task(self.flush())

    async def flush(self) -> None:
        """Send the pending tiles once GRID_PUSH_SECONDS have passed since the last batch."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.flushed_at + GRID_PUSH_SECONDS - loop.time()))
        sessions, self.pending = list(self.pending.values()), {}
        self.flushed_at, self.flusher = loop.time(), None
        await self.send(text_data=json.dumps({"type": "sessions", "sessions": sessions}))
