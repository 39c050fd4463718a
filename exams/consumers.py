"""Websocket consumers. They authenticate in ``connect``, validate every
message, hand work on, and run no computer vision.

Candidate protocol (``/ws/take/<token>/``):
  client → server  binary message: one JPEG frame
                   {"type": "heartbeat"}
                   {"type": "signal", "name": "tab_hidden"|"fullscreen_exit"|"copy_paste", "active": bool}
                   {"type": "chat", "text": "1 to 500 characters"}
                       (at most CHAT_BURST per CHAT_WINDOW_SECONDS)
  server → client  {"type": "status", "state", "interval", "paused"}
                   {"type": "error", "code", "message"}   (the connection stays open unless it says "fatal")
                   {"type": "warn"|"message"|"pause"|"resume", "text"} and {"type": "ended", "text"}
                   {"type": "chat_ack", "message": {"id", "text", "at"}}   (the candidate's message is stored)
                   {"type": "chat", "message": {"id", "sender", "kind", "speaker", "text", "at"}}
                       (a line of the conversation, either side, labelled for the candidate)
Proctor protocol (``/ws/proctor/exams/<code>/``): server → client only,
  on connect {"type": "snapshot", "sessions": [{...}, ...]} (every session of the exam), then
  {"type": "session", "session": {...}}, {"type": "event", "event": {...}} and
  {"type": "chat", "message": {...}} (either side of any candidate's conversation).
  The payloads are built in ``exams.live``; they carry the URLs and labels pages show.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404

from detection.core import DetectionError, decode_image
from exams import live, services
from exams.access import TokenRefused, get_candidate_for_token, get_exam_for_proctor
from exams.analysis import intake
from exams.models import ExamSession, IllegalTransition

log = logging.getLogger(__name__)

SIGNALS = ("tab_hidden", "fullscreen_exit", "copy_paste")
MAX_TEXT_BYTES = 4096
# Bad messages are audited, but a broken client must not flood the audit log.
MAX_AUDITED_ERRORS = 20
CHAT_BURST, CHAT_WINDOW_SECONDS = 5, 30

CLOSE_REFUSED = 4403
CLOSE_DUPLICATE = 4409
CLOSE_ENDED = 4000


@database_sync_to_async
def _candidate_session(token: str) -> ExamSession:
    candidate = get_candidate_for_token(token)
    session = services.session_for_candidate(candidate)
    return ExamSession.objects.select_related("candidate__exam").get(pk=session.pk)


@database_sync_to_async
def _reload(session: ExamSession) -> ExamSession:
    return ExamSession.objects.select_related("candidate__exam").get(pk=session.pk)


@database_sync_to_async
def _audit_refusal(action: str, details: dict, session: ExamSession | None = None) -> None:
    label = services._candidate_label(session) if session else "anonymous"
    services.audit_record(action=action, actor_label=label, session=session, details=details)


def _has_room(times: deque[float], now: float, window: float, burst: int) -> bool:
    """Sliding-window rate limit: forget the times older than ``window`` seconds, and
    say whether fewer than ``burst`` remain. The caller appends ``now`` once it
    counts the message."""
    while times and now - times[0] > window:
        times.popleft()
    return len(times) < burst


def _decodes(data: bytes) -> bool:
    try:
        decode_image(data)
    except DetectionError:
        return False
    return True


class CandidateConsumer(AsyncWebsocketConsumer):
    session: ExamSession | None = None

    async def connect(self) -> None:
        live.remember_server_loop()
        self.session = None
        self.errors = 0
        self.frame_times: deque[float] = deque()
        self.chat_times: deque[float] = deque()
        await self.accept()
        token = self.scope["url_route"]["kwargs"]["token"]
        try:
            session = await _candidate_session(token)
        except TokenRefused as exc:
            await _audit_refusal("websocket_refused", {"reason": exc.code})
            await self.fatal(exc.code, exc.reason, CLOSE_REFUSED)
            return
        if session.state != ExamSession.State.IN_PROGRESS:
            message = (
                "This exam has finished."
                if session.is_finished
                else "Start the exam from your exam link first."
            )
            await self.fatal("not_in_progress", message, CLOSE_REFUSED)
            return
        claimed = await database_sync_to_async(services.connection_open)(
            session=session, channel_name=self.channel_name
        )
        if not claimed:
            await self.fatal(
                "duplicate_session",
                "This exam is already open in another tab or on another device. Close the other one first; "
                "this attempt was recorded.",
                CLOSE_DUPLICATE,
            )
            return
        self.session = session
        self.interval = session.exam.frame_interval
        await self.channel_layer.group_add(live.session_group(session.public_id), self.channel_name)
        await self.send_json(
            {"type": "status", "state": session.state, "interval": self.interval, "paused": session.paused}
        )

    async def disconnect(self, code: int) -> None:
        if self.session is None:
            return
        await self.channel_layer.group_discard(live.session_group(self.session.public_id), self.channel_name)
        await database_sync_to_async(services.connection_close)(
            session=self.session, channel_name=self.channel_name
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is None:
            return
        if bytes_data is not None:
            await self.receive_frame(bytes_data)
            return
        if text_data is None or len(text_data) > MAX_TEXT_BYTES:
            await self.refuse("malformed", "Message too large or empty.")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self.refuse("malformed", "Message is not valid JSON.")
            return
        if not isinstance(message, dict):
            await self.refuse("malformed", "Message must be a JSON object.")
            return
        kind = message.get("type")
        if kind == "heartbeat":
            await database_sync_to_async(services.connection_seen)(
                session=self.session, channel_name=self.channel_name
            )
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
        now = time.monotonic()
        # Up to FRAME_BURST frames per interval: a client sending one per interval
        # never hits this, whatever its timer jitter.
        if not _has_room(self.frame_times, now, self.interval, settings.FRAME_BURST):
            await self.refuse(
                "too_fast", f"Frames arrive faster than one every {self.interval:g} s; frame dropped."
            )
            return
        self.frame_times.append(now)
        if not await database_sync_to_async(_decodes, thread_sensitive=False)(data):
            await self.refuse("not_an_image", "Frame is not a JPEG or PNG image that can be decoded.")
            return
        await database_sync_to_async(intake.submit, thread_sensitive=False)(
            intake.FRAME, session=self.session, data=data
        )
        await database_sync_to_async(services.connection_seen)(
            session=self.session, channel_name=self.channel_name
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
        payload = event["payload"]
        await self.send_json(payload)
        if payload.get("type") == "ended":
            await self.close(code=CLOSE_ENDED)
        elif payload.get("type") in ("pause", "resume") and self.session is not None:
            self.session = await _reload(self.session)

    async def refuse(self, code: str, message: str) -> None:
        """A bad message: tell the client, audit it, keep the connection."""
        self.errors += 1
        if self.errors <= MAX_AUDITED_ERRORS:
            await _audit_refusal("bad_message", {"code": code, "message": message}, self.session)
        await self.send_json({"type": "error", "code": code, "message": message})

    async def fatal(self, code: str, message: str, close_code: int) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, "fatal": True})
        await self.close(code=close_code)

    async def send_json(self, payload: dict) -> None:
        await self.send(text_data=json.dumps(payload))


@database_sync_to_async
def _proctor_exam(user, code):
    exam = get_exam_for_proctor(user, code)
    return exam, [
        live.session_payload(s)
        for s in ExamSession.objects.filter(candidate__exam=exam).select_related("candidate")
    ]


class ProctorConsumer(AsyncWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        live.remember_server_loop()
        self.group = None
        user = self.scope.get("user")
        try:
            exam, sessions = await _proctor_exam(user, self.scope["url_route"]["kwargs"]["code"])
        except (PermissionDenied, Http404):
            await self.close(code=CLOSE_REFUSED)
            return
        self.group = live.exam_group(exam.code)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(text_data=json.dumps({"type": "snapshot", "sessions": sessions}))

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Proctor actions go through audited HTTP POSTs; the socket only listens.
        await self.send(
            text_data=json.dumps(
                {"type": "error", "code": "read_only", "message": "This socket only listens."}
            )
        )

    async def push(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event["payload"]))
