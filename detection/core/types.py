"""Typed results of the detection core.

Everything here is a frozen dataclass of plain values so that results can be
logged, serialised to JSON and compared in tests. Nothing in ``detection.core``
imports Django, Celery or Channels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class DetectionError(ValueError):
    """Base class for input the core refuses, with a message fit for a user."""


class InvalidImage(DetectionError):
    """The bytes or array are not an image the core can analyse."""


class FaceCountError(DetectionError):
    """A reference photo must show exactly one face."""

    def __init__(self, faces: int) -> None:
        self.faces = faces
        if faces == 0:
            message = "no face found in the photo"
        else:
            message = f"{faces} faces found in the photo; a reference must show exactly one"
        super().__init__(message)


@dataclass(frozen=True)
class Box:
    """A rectangle in pixel coordinates of the analysed image."""

    top: int
    right: int
    bottom: int
    left: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def as_list(self) -> list[int]:
        return [self.top, self.right, self.bottom, self.left]


@dataclass(frozen=True)
class IdentityResult:
    distance: float
    threshold: float
    match: bool


@dataclass(frozen=True)
class HeadPose:
    yaw: float
    pitch: float


@dataclass(frozen=True)
class DetectedObject:
    label: str
    score: float
    box: Box


@dataclass(frozen=True)
class CameraState:
    blocked: bool
    reason: str = ""  # "dark", "flat", "covered", "frozen", "" when not blocked
    brightness: float = 0.0
    blur: float = 0.0  # variance of the Laplacian; low means blurred
    # The picture was dark, flat or covered but a face was found in it, so the
    # camera is not called blocked (the face checks ran on a brightened copy when dark).
    face_seen: bool = False


@dataclass(frozen=True)
class FrameAnalysis:
    """What the core knows about one frame.

    Fields a cascade did not recompute for this frame carry the last measured
    value; ``checks_run`` names the checks that really ran on this frame.
    """

    faces: int
    boxes: tuple[Box, ...] = ()
    identity: IdentityResult | None = None
    head_pose: HeadPose | None = None
    looking_away: bool = False
    objects: tuple[DetectedObject, ...] = ()
    camera: CameraState = field(default_factory=lambda: CameraState(blocked=False))
    checks_run: frozenset[str] = frozenset()
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["boxes"] = [b.as_list() for b in self.boxes]
        data["objects"] = [
            {"label": o.label, "score": round(o.score, 3), "box": o.box.as_list()} for o in self.objects
        ]
        data["checks_run"] = sorted(self.checks_run)
        data["timings_ms"] = {k: round(v, 2) for k, v in self.timings_ms.items()}
        return data
