"""Every check on one frame (``analyse_frame``) and the live-stream cascade
(``analyse_stream``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .camera import camera_state, frame_digest, gray_thumbnail
from .config import CheckConfig
from .faces import Face, detect_frame_faces, identity_of
from .image import prepare_image
from .objects import object_detector, prohibited_objects
from .pose import head_pose, is_looking_away
from .types import Box, CameraState, DetectedObject, FrameAnalysis, IdentityResult

logger = logging.getLogger(__name__)

# With several faces in view, identity is the best match among the largest few:
# "is the candidate in the picture"; the others raise multiple_faces anyway.
MAX_FACES_ENCODED = 3
FACE_CHECKS = ("faces", "identity", "head_pose")


class _Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0


def _best_identity(
    image: np.ndarray, faces: Sequence[Face], references: Sequence[np.ndarray], threshold: float
) -> tuple[IdentityResult, Face]:
    results = [(identity_of(image, face, references, threshold), face) for face in faces[:MAX_FACES_ENCODED]]
    return min(results, key=lambda r: r[0].distance)


def analyse_frame(
    image: np.ndarray, *, references: Sequence[np.ndarray], config: CheckConfig
) -> FrameAnalysis:
    """Run every enabled check on ``image`` (RGB uint8, or anything ``prepare_image`` accepts).

    Identity runs only when references are given and a face is in view.
    """
    timer = _Timer()
    with timer("prepare"):
        image = prepare_image(image)
    checks: set[str] = set()
    camera = CameraState(blocked=False)
    if config.is_enabled("camera"):
        with timer("camera"):
            camera = camera_state(image)
        checks.add("camera")
    faces: tuple[Face, ...] = ()
    if any(config.is_enabled(c) for c in FACE_CHECKS):
        with timer("faces"):
            faces = detect_frame_faces(image)
        checks.add("faces")
    identity = None
    candidate = faces[0] if faces else None
    if config.is_enabled("identity") and len(references) and faces:
        with timer("identity"):
            identity, candidate = _best_identity(image, faces, references, config.identity_threshold)
        checks.add("identity")
    pose = None
    looking_away = False
    if config.is_enabled("head_pose") and candidate is not None:
        with timer("head_pose"):
            pose = head_pose(image, candidate.box)
        looking_away = is_looking_away(
            pose, yaw_threshold=config.yaw_threshold, pitch_threshold=config.pitch_threshold
        )
        checks.add("head_pose")
    objects: tuple[DetectedObject, ...] = ()
    if config.is_enabled("objects"):
        with timer("objects"):
            objects = prohibited_objects(
                object_detector().detect(image),
                labels=config.prohibited_labels,
                min_score=config.object_min_score,
                candidate_face=candidate.box if candidate is not None else None,
            )
        checks.add("objects")
    return FrameAnalysis(
        faces=len(faces),
        boxes=tuple(f.box for f in faces),
        identity=identity,
        head_pose=pose,
        looking_away=looking_away,
        objects=objects,
        camera=camera,
        checks_run=frozenset(checks),
        timings_ms=timer.ms,
    )


def _box_from(data: Any) -> Box | None:
    if isinstance(data, list) and len(data) == 4:
        return Box(*(int(v) for v in data))
    return None


def analyse_stream(
    image: np.ndarray,
    *,
    references: Sequence[np.ndarray],
    config: CheckConfig,
    state: dict[str, Any] | None,
    now: float,
) -> tuple[FrameAnalysis, dict[str, Any]]:
    """Analyse one frame of a live stream; returns the analysis and the new state.

    ``state`` is the dict returned for the previous frame of the same stream
    (or None); it holds only small JSON values, so any worker can take any
    frame. A frame whose ``now`` is not after the last one (a redelivery) is
    analysed but leaves the state unchanged.
    """
    state = dict(state or {})
    analysis = analyse_frame(image, references=references, config=config)
    image = prepare_image(image)
    camera = analysis.camera
    fresh = now > float(state.get("t", float("-inf")))
    if config.is_enabled("camera"):
        digest = frame_digest(gray_thumbnail(image))
        if fresh and state.get("digest") == digest and not camera.blocked:
            camera = CameraState(
                blocked=True, reason="frozen", brightness=camera.brightness, blur=camera.blur
            )
        if fresh:
            state["digest"] = digest
    if not fresh:
        return _replace(analysis, camera=camera), state
    state["t"] = now
    return _replace(analysis, camera=camera), state


def _replace(analysis: FrameAnalysis, **changes: Any) -> FrameAnalysis:
    from dataclasses import replace

    return replace(analysis, **changes)
