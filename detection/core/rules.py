"""Turn per-frame findings into debounced events.

A frame says what it sees now; an event says what lasted. ``debounce`` is a
pure function over a small JSON-serialisable state, so any worker can take
any frame of a session.

Timing model: each analysed frame stands for one frame interval of time. A
condition seen on consecutive frames from ``first_seen`` to ``now`` has lasted
about ``now - first_seen + interval``. It becomes an event once that reaches
its minimum duration, and the event's start is backdated to ``first_seen``.
With the default 2 s interval, any condition that lasts 4 s or more is seen on
at least two frames and so is flagged.

looking_away is held to more: the head must be past the exam's yaw or pitch
threshold on consecutive frames for ``CheckConfig.looking_away_seconds``
(6 s by default, three frames at 2 s), and an open event ends only once the
head is back within the threshold less ``pose.RELEASE_MARGIN`` for
``CLOSE_AFTER_SECONDS``. So a candidate reading at an angle, or an estimate
hovering about the threshold, raises no event, and a long turn is one event,
not a string of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import CheckConfig
from .pose import is_looking_away, is_still_looking_away
from .types import FrameAnalysis

EVENT_TYPES = (
    "no_face",
    "multiple_faces",
    "identity_mismatch",
    "prohibited_object",
    "looking_away",
    "camera_blocked",
    "tab_hidden",
    "fullscreen_exit",
    "copy_paste",
    "connection_lost",
    "duplicate_session",
    "camera_silent",
)

SEVERITY = {
    "no_face": "medium",
    "multiple_faces": "high",
    "identity_mismatch": "high",
    "prohibited_object": "high",
    "looking_away": "low",
    "camera_blocked": "high",
    "tab_hidden": "medium",
    "fullscreen_exit": "low",
    "copy_paste": "medium",
    "connection_lost": "low",
    "duplicate_session": "high",
    # Set by the server, not seen in a frame: a connected page whose camera sent
    # no analysable frame for CAMERA_SILENT_INTERVALS intervals (exams.services.events).
    "camera_silent": "high",
}

# Seconds a condition must last before it becomes an event. At the default
# 2 s interval, 3 s means two consecutive frames: one misdetection alone never
# raises an event, and anything lasting 4 s does.
MIN_SECONDS = {
    "no_face": 3.0,
    "multiple_faces": 3.0,
    "identity_mismatch": 3.0,
    "prohibited_object": 3.0,
    "camera_blocked": 3.0,
}

# An open event closes once its condition has been absent this long, so that
# one missed detection does not split a condition into two events.
CLOSE_AFTER_SECONDS = 3.0


@dataclass(frozen=True)
class Condition:
    """Something wrong in one frame. ``key`` separates e.g. a phone from a book."""

    type: str
    key: str
    confidence: float
    details: dict[str, Any] = field(default_factory=dict)
    # False: the condition keeps an open event open but does not start one
    # (a head turned between the release level and the threshold, see ``conditions_from``).
    opens: bool = True


@dataclass(frozen=True)
class EventAction:
    """``open`` a new event, ``extend`` an open one, or ``close`` it."""

    kind: str
    key: str
    type: str
    started_at: float
    ended_at: float
    confidence: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def conditions_from(analysis: FrameAnalysis, config: CheckConfig) -> list[Condition]:
    """The conditions one analysed frame shows, by the exam's configuration."""
    found: list[Condition] = []
    if config.is_enabled("camera") and analysis.camera.blocked:
        found.append(
            Condition(
                "camera_blocked",
                "camera_blocked",
                1.0,
                {"reason": analysis.camera.reason, "brightness": round(analysis.camera.brightness, 1)},
            )
        )
        # A covered camera also hides the face; report the cause only.
        return found
    if config.is_enabled("faces"):
        if analysis.faces == 0:
            found.append(Condition("no_face", "no_face", 1.0, {"faces": 0}))
        elif analysis.faces > 1:
            found.append(Condition("multiple_faces", "multiple_faces", 1.0, {"faces": analysis.faces}))
    identity = analysis.identity
    if config.is_enabled("identity") and identity is not None and not identity.match and analysis.faces >= 1:
        confidence = min(
            1.0, max(0.0, (identity.distance - identity.threshold) / max(identity.threshold, 1e-6) + 0.5)
        )
        found.append(
            Condition(
                "identity_mismatch",
                "identity_mismatch",
                round(confidence, 3),
                {"distance": round(identity.distance, 4), "threshold": identity.threshold},
            )
        )
    pose = analysis.head_pose
    thresholds = {"yaw_threshold": config.yaw_threshold, "pitch_threshold": config.pitch_threshold}
    if config.is_enabled("head_pose") and is_still_looking_away(pose, **thresholds):
        assert pose is not None
        found.append(
            Condition(
                "looking_away",
                "looking_away",
                1.0,
                {"yaw": round(pose.yaw, 1), "pitch": round(pose.pitch, 1), **thresholds},
                opens=is_looking_away(pose, **thresholds),
            )
        )
    if config.is_enabled("objects"):
        best: dict[str, float] = {}
        for obj in analysis.objects:
            if obj.label in config.prohibited_labels and obj.score >= config.object_min_score:
                best[obj.label] = max(best.get(obj.label, 0.0), obj.score)
        if analysis.faces > 1:
            # The second person's face already raised multiple_faces; a "person"
            # object is for someone whose face is not in view.
            best.pop("person", None)
        for label, score in sorted(best.items()):
            found.append(
                Condition(
                    "prohibited_object", f"prohibited_object:{label}", round(score, 3), {"label": label}
                )
            )
    return found


def _min_seconds(event_type: str, config: CheckConfig) -> float:
    if event_type == "looking_away":
        return config.looking_away_seconds
    return MIN_SECONDS.get(event_type, 0.0)


def debounce(
    state: dict[str, Any] | None,
    conditions: list[Condition],
    *,
    now: float,
    interval: float,
    config: CheckConfig,
) -> tuple[list[EventAction], dict[str, Any]]:
    """Advance the debounce state by one frame taken at ``now`` (epoch seconds).

    Returns the event actions to persist and the new state. Frames older than
    the last one seen are ignored, which makes a redelivered frame harmless.
    """
    state = state or {}
    last = state.get("last")
    if last is not None and now <= float(last):
        return [], state
    pending: dict[str, list[Any]] = {k: list(v) for k, v in state.get("pending", {}).items()}
    opened: dict[str, list[Any]] = {k: list(v) for k, v in state.get("open", {}).items()}
    actions: list[EventAction] = []
    # A condition that may only keep an event open is absent for an event not open.
    present = {c.key: c for c in conditions if c.opens or c.key in opened}

    for key, cond in present.items():
        if key in opened:
            started, _ = opened[key]
            opened[key] = [started, now]
            actions.append(EventAction("extend", key, cond.type, started, now, cond.confidence, cond.details))
            continue
        first_seen = pending.get(key, [now])[0]
        # A gap longer than the close grace means the condition went away in between.
        if key in pending and now - pending[key][1] > CLOSE_AFTER_SECONDS + interval:
            first_seen = now
        pending[key] = [first_seen, now]
        if now - first_seen + interval >= _min_seconds(cond.type, config):
            del pending[key]
            opened[key] = [first_seen, now]
            actions.append(
                EventAction("open", key, cond.type, first_seen, now, cond.confidence, cond.details)
            )

    for key in list(opened):
        if key in present:
            continue
        started, last_seen = opened[key]
        if now - last_seen >= CLOSE_AFTER_SECONDS:
            del opened[key]
            event_type = key.split(":", 1)[0]
            actions.append(EventAction("close", key, event_type, started, last_seen))
    for key in list(pending):
        if key not in present:
            del pending[key]

    return actions, {"last": now, "pending": pending, "open": opened}
