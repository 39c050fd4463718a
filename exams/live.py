"""Push messages to the live dashboards and candidate pages over the channel layer."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import threading
from functools import lru_cache
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.cache import cache
from django.urls import get_script_prefix, reverse

from exams.models import Event, Message
from exams.risk import risk_of

log = logging.getLogger(__name__)


# The websocket routes are Channels', not in ROOT_URLCONF; reverse() is pointed at them.
SOCKET_URLCONF = "proctor.routing"


def socket_path(name: str, *args) -> str:
    """The path of a named websocket route, e.g. ``socket_path("proctor_socket", exam.code)``."""
    return reverse(name, urlconf=SOCKET_URLCONF, args=args)


# The latest picture of each live session, for the proctors. The grid gets a
# small thumbnail pushed over its socket (no per-tile HTTP polling), at most
# every PICTURE_EVERY_SECONDS per candidate; a proctor's page for one candidate
# fetches the full frame over HTTP.
PICTURE_EVERY_SECONDS = 3
PICTURE_TTL_SECONDS = 60
THUMBNAIL_SIZE = (160, 120)


def _picture_key(session_id: str) -> str:
    return f"picture:{session_id}"


def _thumbnail_key(session_id: str) -> str:
    return f"thumb:{session_id}"


def picture_due(last_at: Any, now: float) -> bool:
    """Whether a frame received at ``now`` brings a new picture, the last one
    having been kept at ``last_at`` (None: never). At most once per
    PICTURE_EVERY_SECONDS per session. The analyser keeps ``last_at`` in the
    session's analysis state, which it writes anyway: no round trip per frame."""
    if not isinstance(last_at, (int, float)) or isinstance(last_at, bool):
        return True
    return not 0 <= now - last_at < PICTURE_EVERY_SECONDS


def picture_keep(session_id: str, *, frame: bytes, thumbnail: bytes) -> str:
    """Keep a session's latest frame and its thumbnail; returns the thumbnail as a data URL."""
    cache.set_many(
        {_picture_key(session_id): frame, _thumbnail_key(session_id): thumbnail}, PICTURE_TTL_SECONDS
    )
    return _data_url(thumbnail)


def picture(session_id: str) -> bytes | None:
    return cache.get(_picture_key(session_id))


def thumbnails(session_ids: list[str]) -> dict[str, str]:
    """The kept thumbnails of these sessions, as data URLs."""
    found = cache.get_many([_thumbnail_key(s) for s in session_ids])
    return {s: _data_url(found[_thumbnail_key(s)]) for s in session_ids if _thumbnail_key(s) in found}


def pictures_forget(session_ids: list[str]) -> None:
    """Drop the kept frames and thumbnails of these sessions (their data is being removed)."""
    cache.delete_many([key(s) for s in session_ids for key in (_picture_key, _thumbnail_key)])


def _data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def staff_group(user_id) -> str:
    """Every proctor socket of one user, whatever the exam."""
    return f"staff_{user_id}"


def staff_changed(user_id, *, logged_out_session: str | None = None) -> None:
    """A user's rights may have changed (deactivated, removed from an exam or a
    role), or they logged out of ``logged_out_session``: their open proctor
    sockets check again now (``ProctorConsumer.staff_recheck``) instead of at
    the next periodic recheck."""
    payload = {"logged_out_session": logged_out_session} if logged_out_session else {}
    _send(staff_group(user_id), payload, handler="staff.recheck")


def exam_group(exam_code) -> str:
    return f"exam_{getattr(exam_code, 'hex', exam_code)}"


def session_group(session_public_id) -> str:
    return f"session_{getattr(session_public_id, 'hex', session_public_id)}"


_server_loop: asyncio.AbstractEventLoop | None = None
_sender: tuple[int, asyncio.AbstractEventLoop] | None = None
_sender_lock = threading.Lock()


def _sender_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process, on a thread of its own, for pushes from
    synchronous code (workers, services). async_to_sync made a new loop for
    every push, and channels-redis a new Redis connection per loop: a tenth of
    a worker's time per frame (py-spy, manage.py loadtest)."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid() or not _sender[1].is_running():
            loop = asyncio.new_event_loop()
            started = threading.Event()
            loop.call_soon(started.set)
            threading.Thread(target=loop.run_forever, name="live-push", daemon=True).start()
            started.wait(5)
            _sender = (os.getpid(), loop)  # a forked worker child makes its own
        return _sender[1]


def remember_server_loop() -> None:
    """Called from consumers. In embedded mode the in-memory channel layer lives
    on the server's event loop, and the analysis thread pool must send there."""
    global _server_loop
    _server_loop = asyncio.get_running_loop()


def _send(group: str, payload: dict[str, Any], *, handler: str = "push") -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": handler, "payload": payload}
    try:
        if isinstance(layer, InMemoryChannelLayer):
            # Embedded mode: the layer lives on the server's loop; send there from other threads.
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            server = _server_loop
            if server is not None and server.is_running() and running is not server:
                asyncio.run_coroutine_threadsafe(layer.group_send(group, message), server).result(timeout=5)
            else:
                async_to_sync(layer.group_send)(group, message)
            return
        # Not waited for: the analysis goes on while the push travels; a failure is logged.
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _sender_loop())
        future.add_done_callback(_log_failure)
    except Exception:  # the dashboard is best effort; the data is already stored
        log.exception("could not push to %s", group)


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("could not push to the channel layer: %r", future.exception())


def event_label(event_type: str) -> str:
    return Event.label_of(event_type)


# Before the exam starts, these states say why a candidate is not in it yet.
_WAITING_STATES = ("invited", "consented", "verified")


def waiting_reason(session) -> str:
    """Why a candidate who has not started is stuck, e.g. "Several faces, 3 tries";
    empty once the exam started or before the identity check began."""
    if session.state not in _WAITING_STATES or not session.verification_status:
        return ""
    tries = session.verification_attempts
    label = session.get_verification_status_display()
    return f"{label}, {tries} {'try' if tries == 1 else 'tries'}" if tries else label


def event_payload(event) -> dict[str, Any]:
    acknowledged_by = event.acknowledged_by.get_username() if event.acknowledged_by_id else ""
    return {
        "id": str(event.public_id),
        "session": str(event.session.public_id),
        "session_url": reverse("proctor_session", args=[event.session.public_id]),
        "ack_url": reverse("proctor_acknowledge", args=[event.public_id]),
        "candidate": event.session.candidate.name,
        "type": event.type,
        "label": event_label(event.type),
        "severity": event.severity,
        "started_at": event.started_at.isoformat(),
        "ended_at": event.ended_at.isoformat(),
        # Still going on: an alert of a finished attempt never is, whatever a row says.
        "open": event.is_open and event.session.state == "in_progress",
        "confidence": round(event.confidence, 3),
        "details": event.details,
        "acknowledged_at": event.acknowledged_at.isoformat() if event.acknowledged_at else None,
        "acknowledged_by": acknowledged_by,
    }


def _session_url(public_id) -> str:
    """A proctor's page for one session; reversed once per session and process,
    not on every tile (the worker builds one per analysed frame)."""
    return _reversed_session_url(public_id, get_script_prefix())


@lru_cache(maxsize=4096)
def _reversed_session_url(public_id, script_prefix: str) -> str:
    return reverse("proctor_session", args=[public_id])


def session_payload(session, *, thumbnail: str | None = None) -> dict[str, Any]:
    """A tile of the proctors' grid; ``thumbnail`` (a data URL) when there is a new picture.
    ``risk`` and ``open_high`` are what the grid sorts by when asked for attention."""
    # One query for the flags and the risk score.
    events = list(
        session.events.only(
            "type",
            "is_open",
            "severity",
            "confidence",
            "review_status",
            "started_at",
            "ended_at",
            "acknowledged_at",
            "details",  # the risk line counts merged repeats
        ).order_by()
    )
    open_events = [e for e in events if e.is_open]
    # A flag is handled once a proctor acknowledged every open alert of its type.
    handled = {
        t: all(e.acknowledged_at for e in open_events if e.type == t) for t in {e.type for e in open_events}
    }
    payload = {
        "id": str(session.public_id),
        "url": _session_url(session.public_id),
        "candidate": session.candidate.name,
        "state": session.state,
        "state_label": session.get_state_display(),
        "paused": session.paused,
        "faces": session.last_faces,
        "last_frame_at": session.last_frame_at.isoformat() if session.last_frame_at else None,
        "frames_analysed": session.frames_analysed,
        "deadline": session.deadline.isoformat() if session.deadline else None,
        "connected": bool(session.connection_channel),
        "waiting": waiting_reason(session),
        "open_flags": [
            {"type": t, "label": event_label(t), "acknowledged": handled[t]} for t in sorted(handled)
        ],
        "open_high": sum(1 for e in open_events if e.severity == "high" and not e.acknowledged_at),
        "risk": risk_of(events).score,
        "flags": len(events),
        "reference_unverified": session.candidate.reference_unverified,
    }
    if thumbnail:
        payload["thumbnail"] = thumbnail
    return payload


def session_changed(session, *, events=(), thumbnail: str | None = None) -> None:
    """Tell the exam's proctors what changed in one session."""
    group = exam_group(session.exam.code)
    _send(group, {"type": "session", "session": session_payload(session, thumbnail=thumbnail)})
    for event in events:
        _send(group, {"type": "event", "event": event_payload(event)})


def events_changed(events) -> None:
    """Tell the proctors' feeds that these alerts changed (closed, say), without
    a tile: whoever changed them pushes the session's tile itself."""
    for event in events:
        _send(exam_group(event.session.exam.code), {"type": "event", "event": event_payload(event)})


def message_payload(message) -> dict[str, Any]:
    """One line of a conversation as the proctors see it."""
    session = message.session
    return {
        "id": message.pk,
        "session": str(session.public_id),
        "session_url": reverse("proctor_session", args=[session.public_id]),
        "candidate": session.candidate.name,
        "sender": message.sender,
        "kind": message.kind,
        "author": message.author_name,
        "speaker": message.speaker,
        "text": message.text,
        "at": message.created_at.isoformat(),
    }


def candidate_message_payload(message) -> dict[str, Any]:
    """The same line as the candidate sees it: no proctor's username."""
    return {
        "id": message.pk,
        "sender": message.sender,
        "kind": message.kind,
        "speaker": message.speaker_for_candidate,
        "text": message.text,
        "at": message.created_at.isoformat(),
    }


def message_posted(message) -> None:
    """Every proctor of the exam sees every line of every conversation, and the
    candidate every line of theirs, each labelled by the model for its reader."""
    session = message.session
    _send(exam_group(session.exam.code), {"type": "chat", "message": message_payload(message)})
    _send(session_group(session.public_id), {"type": "chat", "message": candidate_message_payload(message)})


def to_candidate(session, payload: dict[str, Any]) -> None:
    _send(session_group(session.public_id), payload)


# How much of the feed a proctor's page gets when it (re)connects.
FEED_HISTORY = 50


def exam_feed(exam, *, limit: int = FEED_HISTORY) -> list[dict[str, Any]]:
    """The exam's recent feed, oldest first, as the socket pushes it: the last
    ``limit`` alerts and candidates' messages, and every alert still open however
    old, so a reload or a proctor joining late sees what the others saw."""
    events = Event.objects.filter(session__candidate__exam=exam).select_related(
        "session__candidate", "acknowledged_by"
    )
    recent = list(events.order_by("-started_at", "-id")[:limit])
    seen = {e.pk for e in recent}
    # Only a live attempt's alerts can still be going on.
    still_open = [e for e in events.filter(is_open=True, session__state="in_progress") if e.pk not in seen]
    messages = list(
        Message.objects.filter(session__candidate__exam=exam, sender=Message.Sender.CANDIDATE)
        .select_related("session__candidate", "author")
        .order_by("-created_at", "-pk")[:limit]
    )
    entries = [(e.started_at, {"type": "event", "event": event_payload(e)}) for e in recent]
    entries += [(m.created_at, {"type": "chat", "message": message_payload(m)}) for m in messages]
    entries.sort(key=lambda entry: entry[0])
    kept = [payload for _, payload in entries[-limit:]]
    opened = [{"type": "event", "event": event_payload(e)} for e in still_open]
    return sorted(opened, key=lambda p: p["event"]["started_at"]) + kept


def event_acknowledged(event) -> None:
    """Every proctor of the exam sees who handled the alert."""
    _send(exam_group(event.session.exam.code), {"type": "event", "event": event_payload(event)})
