"""Every check on one frame (``analyse_frame``) and the live-stream cascade
(``analyse_stream``).

The cascade
-----------
A live stream sends a frame about every 2 s, and most frames show the same
candidate sitting still. ``analyse_stream`` therefore runs, per frame:

- always: the camera checks (dark / flat / covered, and frozen from a digest
  kept in the state), about 1 ms;
- faces, head pose and objects when the picture changed since they last ran
  (see ``scene_change``), or when their last run is older than
  ``FACES_MAX_AGE`` / ``OBJECTS_MAX_AGE``;
- identity when faces ran and the face count changed, the candidate's face
  moved or resized a lot since the last identity check, no identity is known
  yet, or the last check is older than ``IDENTITY_MAX_AGE``.

A stream's first frame runs every check, except that a caller short of
capacity may put the first identity check off (``first_identity_within``):
it then comes on the first frame analysed at least one interval and at most
that many seconds later (by a hash of the first picture), so the identity
encodings of an exam hall that connects together at 9:00, the dearest check
by far, spread over those seconds instead of queuing in the same few. Until
then the stream has no identity finding, as before its first frame. Its
first safety-net re-run is spread by up to half a max age (by the same kind
of hash), so that hall does not re-run every check together every max age
for the rest of the exam.

The max ages count in analysed frames as well as in seconds: a check is due
again once it is that many seconds old *and* that many seconds' worth of
frames (at the stream's nominal ``interval``) were analysed since. At the
nominal pace the two agree. When the server is overloaded and analyses a
session's frames further apart, the seconds alone would make every analysed
frame a full re-run, so each frame would cost the most exactly when capacity
is shortest; counting frames keeps the cost per frame what it is at the
nominal pace, and the safety net's period grows with the overload instead.

A dark, flat or covered picture is not yet a blocked camera: the camera
checks never override a face that is found. Such a frame goes through the
cascade like any other (scene change judged on the brightened picture when it
is dark, see ``camera.lift_dark``), and faces run on it when the picture
changed or their max age came (even with every face check off, for the
camera's sake); the camera is called blocked only when the face count, fresh
or carried, is 0. A still dark picture therefore costs no face check per
frame, and the first frame after a change is looked at. A blocked frame runs
no object detection. A frozen feed runs nothing else (the rules report only
the blocked camera then) and keeps the reference picture, so the first live
frame after it is re-analysed. Values not recomputed are carried from the
``StreamState``; ``checks_run`` names what ran. Thresholds are re-applied to
carried values on every frame, so a changed exam configuration takes effect at
once. ``analyse_stream`` decides what is due and leaves the work to one
function per phase: ``_camera``, ``_scene``, ``_faces_and_identity`` (with the
head pose), ``_objects_in_view``, then ``_stream_analysis`` for the thresholds.

Why that keeps every condition that lasts 4 s: a condition appears with a
change in the picture (a face leaves, a phone or a second person enters, the
head turns, another person sits down), so the frame that first shows it is
analysed in full, and the following frames carry the finding while the picture
stays as it is. A frame that changes again is analysed again. The max ages are
a safety net for changes too slow or small for ``scene_change``.
"""

from __future__ import annotations

import base64
import logging
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from .camera import (
    PICTURE_REASONS,
    apply_gain,
    camera_state,
    frame_digest,
    gray_thumbnail,
    lift_dark,
    lift_gain,
)
from .config import CheckConfig
from .faces import Face, detect_frame_faces, identity_of
from .image import prepare_image
from .objects import object_detector, prohibited_objects
from .pose import head_pose, is_looking_away
from .types import Box, CameraState, DetectedObject, FrameAnalysis, HeadPose, IdentityResult

logger = logging.getLogger(__name__)

# With several faces in view, identity is the best match among the largest few:
# "is the candidate in the picture"; the others raise multiple_faces anyway.
MAX_FACES_ENCODED = 3
FACE_CHECKS = ("faces", "identity", "head_pose")

# Cascade settings (seconds, grey levels, cells); see the module docstring.
FACES_MAX_AGE = 30.0
OBJECTS_MAX_AGE = 30.0
IDENTITY_MAX_AGE = 30.0
SIG_SIZE = (32, 24)  # one cell is 20x20 px of a 640x480 frame
CELL_CHANGE = 20.0  # grey levels, after a 3x3 blur and a best-fit shift of the cell grid
CHANGED_CELLS = 2  # this many changed cells make a scene change
FACE_CHANGED = 0.3  # this fraction of changed cells under the candidate's face re-checks identity
FACE_MOVED = 0.5  # centre shift, as a fraction of the face width
FACE_RESIZED = 1.4  # width ratio either way
STATE_VERSION = 1
MAX_CARRIED_OBJECTS = 10  # the state keeps the best-scored detections only, to stay small


class _Timer:
    """Milliseconds per stage of one frame, and the names of the checks that ran."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.checks_run: set[str] = set()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0

    @contextmanager
    def check(self, name: str) -> Iterator[None]:
        """Time the check ``name`` and record that it ran."""
        with self(name):
            yield
        self.checks_run.add(name)


def _best_identity(
    image: np.ndarray, faces: Sequence[Face], references: Sequence[np.ndarray], threshold: float
) -> tuple[IdentityResult, Face]:
    results = [(identity_of(image, face, references, threshold), face) for face in faces[:MAX_FACES_ENCODED]]
    return min(results, key=lambda r: r[0].distance)


def _objects(image: np.ndarray) -> tuple[DetectedObject, ...]:
    return object_detector().detect(image)


def analyse_frame(
    image: np.ndarray, *, references: Sequence[np.ndarray], config: CheckConfig, lift: bool = True
) -> FrameAnalysis:
    """Run every enabled check on ``image`` (RGB uint8, or anything ``prepare_image`` accepts).

    Identity runs only when references are given and a face is in view. The face
    checks look at a dark picture brightened (``camera.lift_dark``); ``lift=False``
    turns that off, only to measure what it does (``python -m detection analyse --no-lift``).
    """
    timer = _Timer()
    with timer("prepare"):
        image = prepare_image(image)
        thumb = gray_thumbnail(image)
        face_image = lift_dark(image, thumb=thumb) if lift else image
    camera = CameraState(blocked=False)
    if config.is_enabled("camera"):
        with timer.check("camera"):
            camera = camera_state(image, thumb=thumb)
    faces: tuple[Face, ...] = ()
    if any(config.is_enabled(c) for c in FACE_CHECKS) or _poor_picture(camera):
        with timer.check("faces"):
            faces = detect_frame_faces(face_image)
    camera = _face_overrides(camera, len(faces))
    identity = None
    candidate = faces[0] if faces else None
    if config.is_enabled("identity") and len(references) and faces:
        with timer.check("identity"):
            identity, candidate = _best_identity(face_image, faces, references, config.identity_threshold)
    pose = None
    if config.is_enabled("head_pose") and candidate is not None:
        with timer.check("head_pose"):
            pose = head_pose(face_image, candidate.box)
    objects: tuple[DetectedObject, ...] = ()
    if config.is_enabled("objects"):
        with timer.check("objects"):
            detections = _objects(image)
        objects = _prohibited(detections, config, candidate.box if candidate is not None else None)
    return FrameAnalysis(
        faces=len(faces),
        boxes=tuple(f.box for f in faces),
        identity=identity,
        head_pose=pose,
        looking_away=_away(pose, config),
        objects=objects,
        camera=camera,
        checks_run=frozenset(timer.checks_run),
        timings_ms=timer.ms,
    )


def _poor_picture(camera: CameraState) -> bool:
    """Blocked for a reason a face in the picture overrides (dark, flat, covered; not frozen)."""
    return camera.blocked and camera.reason in PICTURE_REASONS


def _face_overrides(camera: CameraState, faces: int) -> CameraState:
    """The camera checks never override a face that is found: a poor picture
    with a face in it is not blocked."""
    if faces and _poor_picture(camera):
        return replace(camera, blocked=False, reason="", face_seen=True)
    return camera


def _prohibited(
    detections: tuple[DetectedObject, ...], config: CheckConfig, candidate: Box | None
) -> tuple[DetectedObject, ...]:
    return prohibited_objects(
        detections,
        labels=config.prohibited_labels,
        min_score=config.object_min_score,
        candidate_face=candidate,
    )


def _away(pose: HeadPose | None, config: CheckConfig) -> bool:
    return is_looking_away(pose, yaw_threshold=config.yaw_threshold, pitch_threshold=config.pitch_threshold)


# ---------------------------------------------------------------- stream


def scene_signature(thumb: np.ndarray) -> np.ndarray:
    """A 32x24 grey picture of the frame, from its 160x120 thumbnail."""
    return cv2.resize(thumb, SIG_SIZE, interpolation=cv2.INTER_AREA)


_SHIFTS = [(dx, dy) for dx in (-0.3, -0.15, 0.0, 0.15, 0.3) for dy in (-0.3, -0.15, 0.0, 0.15, 0.3)]


def scene_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The cells of the 32x24 signature that changed (a boolean grid).

    Both grids are blurred over 3x3 cells, ``before`` is shifted by up to
    0.3 cell (6 px at 640x480) to best fit ``after``, and the median
    difference is taken off: a candidate swaying by a few pixels, sensor noise
    and the webcam's exposure drifting then leave every cell within about 13
    grey levels (measured on the replay stream), while a 60x120 px dark object
    held up changes about 17 cells by more than ``CELL_CHANGE``. The outer
    ring of cells is not judged (the shift makes it up).
    """
    a = cv2.GaussianBlur(before.astype(np.float32), (3, 3), 0)
    b = cv2.GaussianBlur(after.astype(np.float32), (3, 3), 0)
    best: np.ndarray | None = None
    best_error = float("inf")
    for dx, dy in _SHIFTS:
        shifted = (
            a
            if dx == dy == 0.0
            else cv2.warpAffine(
                a, np.float32([[1, 0, dx], [0, 1, dy]]), SIG_SIZE, borderMode=cv2.BORDER_REPLICATE
            )
        )
        diff = (b - shifted)[1:-1, 1:-1]
        diff = np.abs(diff - float(np.median(diff)))
        error = float(diff.sum())
        if error < best_error:
            best, best_error = diff, error
    assert best is not None
    changed = np.zeros(a.shape, bool)
    changed[1:-1, 1:-1] = best > CELL_CHANGE
    return changed


def _changed_within(changed: np.ndarray, box: Box | None, frame_size: tuple[int, int]) -> float:
    """Fraction of the signature cells under ``box`` that changed."""
    if box is None:
        return 1.0
    width, height = frame_size
    cols, rows = SIG_SIZE
    x0, x1 = int(box.left * cols / width), int(np.ceil(box.right * cols / width))
    y0, y1 = int(box.top * rows / height), int(np.ceil(box.bottom * rows / height))
    cells = changed[max(0, y0) : max(y0 + 1, y1), max(0, x0) : max(x0 + 1, x1)]
    return float(cells.mean()) if cells.size else 1.0


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _box(data: Any) -> Box | None:
    if isinstance(data, list) and len(data) == 4 and all(isinstance(v, (int, float)) for v in data):
        return Box(*(int(v) for v in data))
    return None


def _items(data: Any) -> list[Any]:
    return data if isinstance(data, list) else []


def _signature(data: Any) -> bytes | None:
    if not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except ValueError:
        return None
    return raw if len(raw) == SIG_SIZE[0] * SIG_SIZE[1] else None


def _pose(data: Any) -> HeadPose | None:
    if not (isinstance(data, list) and len(data) == 2):
        return None
    try:
        return HeadPose(float(data[0]), float(data[1]))
    except (TypeError, ValueError):
        return None


def _detection(data: Any) -> DetectedObject | None:
    if not (isinstance(data, list) and len(data) == 3):
        return None
    box = _box(data[2])
    try:
        score = float(data[1])
    except (TypeError, ValueError):
        return None
    return DetectedObject(str(data[0]), score, box) if box is not None else None


@dataclass(frozen=True)
class StreamState:
    """What ``analyse_stream`` keeps from one frame of a stream for the next.

    It crosses a process boundary: the worker stores ``to_json()`` (about
    1.5 KB) and whichever worker takes the next frame rebuilds it with
    ``from_json``. The times are the ``now`` of the frame on which something
    last ran, None if it never did.
    """

    frame_at: float | None = None  # the last frame analysed
    digest: str | None = None  # its ``frame_digest``, to tell a frozen feed
    signature: bytes | None = None  # ``scene_signature`` of the last changed picture, uint8 row by row
    faces_at: float | None = None
    identity_at: float | None = None
    objects_at: float | None = None
    # Frames analysed since each check last ran (None: unknown, e.g. a state stored before these).
    faces_frames: int | None = None
    identity_frames: int | None = None
    objects_frames: int | None = None
    # The last findings, carried to the frames on which their check does not run.
    faces: int = 0
    boxes: tuple[Box, ...] = ()
    candidate: Box | None = None  # the candidate's face, one of ``boxes``
    distance: float | None = None  # the candidate's identity distance
    pose: HeadPose | None = None  # the candidate's head pose
    detections: tuple[DetectedObject, ...] = ()  # every object found, before the prohibited filter
    identity_after: float | None = None  # the first identity check is put off until this time

    def __post_init__(self) -> None:
        size = SIG_SIZE[0] * SIG_SIZE[1]
        if self.signature is not None and len(self.signature) != size:
            raise ValueError(f"a scene signature is {size} bytes, got {len(self.signature)}")
        if self.faces < 0:
            raise ValueError(f"faces must not be negative, got {self.faces}")

    @property
    def signature_grid(self) -> np.ndarray | None:
        """The signature as a read-only 24x32 grey picture."""
        if self.signature is None:
            return None
        return np.frombuffer(self.signature, np.uint8).reshape(SIG_SIZE[1], SIG_SIZE[0])

    def to_json(self) -> dict[str, Any]:
        """The stored form: the keys of ``STATE_VERSION`` 1, as written before this class existed.

        The times, digest and signature are left out until they have a value.
        """
        data: dict[str, Any] = {"v": STATE_VERSION}
        optional = {
            "t": self.frame_at,
            "digest": self.digest,
            "sig": None if self.signature is None else base64.b64encode(self.signature).decode("ascii"),
            "t_faces": self.faces_at,
            "t_identity": self.identity_at,
            "t_objects": self.objects_at,
            "n_faces": self.faces_frames,
            "n_identity": self.identity_frames,
            "n_objects": self.objects_frames,
            "identity_after": self.identity_after,
        }
        data.update((key, value) for key, value in optional.items() if value is not None)
        data.update(
            faces=self.faces,
            boxes=[b.as_list() for b in self.boxes],
            candidate=self.candidate.as_list() if self.candidate is not None else None,
            identity=self.distance,
            pose=[self.pose.yaw, self.pose.pitch] if self.pose is not None else None,
            objects=[[d.label, d.score, d.box.as_list()] for d in self.detections],
        )
        return data

    @classmethod
    def from_json(cls, data: Any) -> StreamState:
        """Rebuild a stored state; never raises.

        None, anything that is not a dict of ``STATE_VERSION``, or a state
        that fails validation gives a fresh state (the next frame is then
        analysed in full). In a state of this version, a damaged value falls
        back to its default and the others are kept.
        """
        if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
            return cls()
        faces = data.get("faces")
        try:
            return cls(
                frame_at=_number(data.get("t")),
                digest=data["digest"] if isinstance(data.get("digest"), str) else None,
                signature=_signature(data.get("sig")),
                faces_at=_number(data.get("t_faces")),
                identity_at=_number(data.get("t_identity")),
                objects_at=_number(data.get("t_objects")),
                faces_frames=_count(data.get("n_faces")),
                identity_frames=_count(data.get("n_identity")),
                objects_frames=_count(data.get("n_objects")),
                identity_after=_number(data.get("identity_after")),
                faces=int(faces) if isinstance(faces, int) else 0,
                boxes=tuple(b for b in map(_box, _items(data.get("boxes"))) if b is not None),
                candidate=_box(data.get("candidate")),
                distance=_number(data.get("identity")),
                pose=_pose(data.get("pose")),
                detections=tuple(d for d in map(_detection, _items(data.get("objects"))) if d is not None),
            )
        except (TypeError, ValueError) as exc:
            logger.warning("stream state refused, starting afresh: %s", exc)
            return cls()


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _later(frames: int | None) -> int | None:
    return None if frames is None else frames + 1


def _due(last: float | None, now: float, max_age: float, frames: int | None, interval: float) -> bool:
    """Whether a check that last ran at ``last`` (None: never) is older than ``max_age``
    seconds and ``frames`` analysed frames at ``interval`` cover that much too."""
    if last is None:
        return True
    return now - last >= max_age and (frames is None or frames * interval >= max_age)


def _moved(before: Box | None, after: Box | None) -> bool:
    if before is None or after is None:
        return True
    width = max(before.width, 1)
    shift = abs((before.left + before.right) - (after.left + after.right)) / 2
    shift_y = abs((before.top + before.bottom) - (after.top + after.bottom)) / 2
    ratio = max(after.width, 1) / width
    return max(shift, shift_y) > FACE_MOVED * width or not (1 / FACE_RESIZED <= ratio <= FACE_RESIZED)


def _nearest(faces: Sequence[Face], box: Box | None) -> Face | None:
    if not faces:
        return None
    if box is None:
        return faces[0]
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    return min(
        faces,
        key=lambda f: abs((f.box.left + f.box.right) / 2 - cx) + abs((f.box.top + f.box.bottom) / 2 - cy),
    )


def analyse_stream(
    image: np.ndarray,
    *,
    references: Sequence[np.ndarray],
    config: CheckConfig,
    state: StreamState | None,
    now: float,
    interval: float = 2.0,
    first_identity_within: float = 0.0,
) -> tuple[FrameAnalysis, StreamState]:
    """Analyse one frame of a live stream through the cascade (see the module docstring).

    ``state`` is the state returned for the previous frame of the same stream,
    or None for the first frame; between workers it travels as
    ``StreamState.to_json()``. A frame whose ``now`` is not after the last one
    (a redelivery) is analysed against the old state and leaves it unchanged.
    ``interval`` is the stream's nominal seconds between frames; the max ages
    count in frames at that pace as well as in seconds (see the module docstring).
    ``first_identity_within`` (seconds) puts a stream's first identity check off
    when given on its first frame; 0, or less than ``interval``, does not.
    """
    timer = _Timer()
    old = state if state is not None else StreamState()
    fresh = old.frame_at is None or now > old.frame_at
    with timer("prepare"):
        image = prepare_image(image)
        thumb = gray_thumbnail(image)

    # A redelivered frame is the last frame itself: it must not look frozen.
    camera, digest = _camera(
        image, thumb, config=config, last_digest=old.digest if fresh else None, timer=timer
    )
    new = replace(
        old,
        frame_at=now,
        digest=old.digest if digest is None else digest,
        faces_frames=_later(old.faces_frames),
        identity_frames=_later(old.identity_frames),
        objects_frames=_later(old.objects_frames),
    )
    if old.frame_at is None and _checks_identity(config, references) and first_identity_within >= interval:
        new = replace(new, identity_after=now + _first_identity_delay(thumb, interval, first_identity_within))
    detections = old.detections
    poor = _poor_picture(camera)
    if not camera.blocked or poor:
        frame_size = (image.shape[1], image.shape[0])
        # A dark picture is judged brightened, for the scene change as for the faces.
        gain = lift_gain(thumb)
        face_image, scene_thumb = apply_gain(image, gain), apply_gain(thumb, gain)
        scene = _scene(
            scene_thumb,
            before=old.signature_grid,
            candidate=old.candidate,
            frame_size=frame_size,
            timer=timer,
        )
        if scene.changed:
            new = replace(new, signature=scene.signature)
        wants_faces = any(config.is_enabled(c) for c in FACE_CHECKS) or poor
        if wants_faces and (
            scene.changed
            or _due(old.faces_at, now, FACES_MAX_AGE, new.faces_frames, interval)
            or _first_identity_now(new, now)
        ):
            new = _faces_and_identity(
                face_image,
                references=references,
                config=config,
                carried=new,
                face_changed=scene.face_changed,
                now=now,
                interval=interval,
                timer=timer,
            )
        # A face found (now or carried, as the cascade carries every finding) overrides a poor picture.
        camera = _face_overrides(camera, new.faces)
        if fresh and digest is not None and digest == old.digest:
            camera = _frozen(camera)  # a frozen feed shows a face, and stays blocked
        objects_due = _due(old.objects_at, now, OBJECTS_MAX_AGE, new.objects_frames, interval)
        if config.is_enabled("objects") and not camera.blocked and (scene.changed or objects_due):
            detections = _objects_in_view(image, timer=timer)
            new = replace(new, objects_at=now, objects_frames=0)
    if old.frame_at is None:
        new = _spread_safety_net(new, thumb, interval)
    # The state keeps the best-scored few; this frame is judged on all of them.
    new = replace(new, detections=detections[:MAX_CARRIED_OBJECTS])
    analysis = _stream_analysis(new, detections=detections, camera=camera, config=config, timer=timer)
    return analysis, (new if fresh else old)


def _checks_identity(config: CheckConfig, references: Sequence[np.ndarray]) -> bool:
    return config.is_enabled("identity") and len(references) > 0


def _first_identity_now(state: StreamState, now: float) -> bool:
    """The first identity check was put off, its time has come, and a face was in view."""
    return (
        state.distance is None
        and state.faces > 0
        and state.identity_after is not None
        and now >= state.identity_after
    )


def _first_identity_delay(thumb: np.ndarray, interval: float, within: float) -> float:
    """Seconds to put a stream's first identity check off: a whole number of
    intervals from one to ``within``, by a hash of its first picture."""
    steps = max(1, int(within / interval))
    return interval * (1 + zlib.crc32(thumb.tobytes()) % steps)


def _spread_safety_net(state: StreamState, thumb: np.ndarray, interval: float) -> StreamState:
    """Count a stream's first full run as up to half a max age older, by a hash
    of its first picture.

    Candidates who connect together (an exam hall at 9:00) would otherwise come
    due for the safety-net re-run together, every max age, for the whole exam:
    a burst of full analyses every 30 s with idle time in between. Spread, the
    same re-runs arrive evenly. Each stream still re-runs within the max ages."""
    steps = int(min(FACES_MAX_AGE, IDENTITY_MAX_AGE, OBJECTS_MAX_AGE) / 2 / interval)
    back = zlib.crc32(thumb.tobytes()) % (steps + 1) if steps > 0 else 0
    if not back:
        return state

    def older(at: float | None, frames: int | None) -> tuple[float | None, int | None]:
        return (None, frames) if at is None else (at - back * interval, (frames or 0) + back)

    faces_at, faces_frames = older(state.faces_at, state.faces_frames)
    identity_at, identity_frames = older(state.identity_at, state.identity_frames)
    objects_at, objects_frames = older(state.objects_at, state.objects_frames)
    return replace(
        state,
        faces_at=faces_at,
        faces_frames=faces_frames,
        identity_at=identity_at,
        identity_frames=identity_frames,
        objects_at=objects_at,
        objects_frames=objects_frames,
    )


def _camera(
    image: np.ndarray, thumb: np.ndarray, *, config: CheckConfig, last_digest: str | None, timer: _Timer
) -> tuple[CameraState, str | None]:
    """The camera checks, and this frame's digest (None when the check is off).

    A picture whose digest equals ``last_digest`` is a frozen feed.
    """
    if not config.is_enabled("camera"):
        return CameraState(blocked=False), None
    with timer.check("camera"):
        camera = camera_state(image, thumb=thumb)
        digest = frame_digest(thumb)
    if digest == last_digest:
        camera = _frozen(camera)
    return camera, digest


def _frozen(camera: CameraState) -> CameraState:
    """A repeated picture is a frozen feed, unless it is already blocked as poor (then
    ``_frozen`` is applied again once a face overrode that, see ``analyse_stream``)."""
    if camera.blocked:
        return camera
    return replace(camera, blocked=True, reason="frozen", face_seen=False)


@dataclass(frozen=True)
class _Scene:
    """How the picture changed since the last picture that changed."""

    signature: bytes  # this picture's, to keep if it changed
    changed: bool  # faces and objects run again
    face_changed: bool  # under the candidate's face: identity is checked again


def _scene(
    thumb: np.ndarray,
    *,
    before: np.ndarray | None,
    candidate: Box | None,
    frame_size: tuple[int, int],
    timer: _Timer,
) -> _Scene:
    sig = scene_signature(thumb)
    with timer("scene"):
        cells = np.ones(sig.shape, bool) if before is None else scene_change(before, sig)
    return _Scene(
        signature=sig.tobytes(),
        changed=int(cells.sum()) >= CHANGED_CELLS,
        face_changed=_changed_within(cells, candidate, frame_size) >= FACE_CHANGED,
    )


def _faces_and_identity(
    image: np.ndarray,
    *,
    references: Sequence[np.ndarray],
    config: CheckConfig,
    carried: StreamState,
    face_changed: bool,
    now: float,
    interval: float,
    timer: _Timer,
) -> StreamState:
    """Find the faces, check identity again if it is due, and measure the candidate's head pose.

    The candidate is the best identity match when identity ran, else the face
    nearest the last candidate. Returns ``carried`` with the face findings and
    their times replaced.
    """
    with timer.check("faces"):
        faces = detect_frame_faces(image)
    tracked = _nearest(faces, carried.candidate)
    candidate = tracked.box if tracked is not None else None
    distance = carried.distance if faces else None
    identity_at, identity_frames = carried.identity_at, carried.identity_frames
    if _identity_due(
        faces,
        candidate,
        references=references,
        config=config,
        carried=carried,
        face_changed=face_changed,
        now=now,
        interval=interval,
    ):
        with timer.check("identity"):
            result, best = _best_identity(image, faces, references, config.identity_threshold)
        candidate, distance, identity_at, identity_frames = best.box, result.distance, now, 0
    pose = None
    if config.is_enabled("head_pose") and candidate is not None:
        with timer.check("head_pose"):
            pose = head_pose(image, candidate)
    return replace(
        carried,
        faces_at=now,
        faces_frames=0,
        identity_at=identity_at,
        identity_frames=identity_frames,
        faces=len(faces),
        boxes=tuple(f.box for f in faces),
        candidate=candidate,
        distance=distance,
        pose=pose,
    )


def _identity_due(
    faces: Sequence[Face],
    tracked: Box | None,
    *,
    references: Sequence[np.ndarray],
    config: CheckConfig,
    carried: StreamState,
    face_changed: bool,
    now: float,
    interval: float,
) -> bool:
    """Whether identity must be checked on these faces rather than carried (see the module docstring)."""
    if not (_checks_identity(config, references) and faces):
        return False
    if carried.distance is None and carried.identity_after is not None and now < carried.identity_after:
        return False  # the first check is put off (see the module docstring)
    return (
        carried.distance is None
        or face_changed
        or len(faces) != carried.faces
        or _moved(carried.candidate, tracked)
        or _due(carried.identity_at, now, IDENTITY_MAX_AGE, carried.identity_frames, interval)
    )


def _objects_in_view(image: np.ndarray, *, timer: _Timer) -> tuple[DetectedObject, ...]:
    with timer.check("objects"):
        return _objects(image)


def _stream_analysis(
    carried: StreamState,
    *,
    detections: tuple[DetectedObject, ...],
    camera: CameraState,
    config: CheckConfig,
    timer: _Timer,
) -> FrameAnalysis:
    """The frame's findings, fresh or carried, judged against the exam's current thresholds."""
    identity = None
    if config.is_enabled("identity") and carried.distance is not None and carried.faces:
        identity = IdentityResult(
            distance=carried.distance,
            threshold=config.identity_threshold,
            match=carried.distance <= config.identity_threshold,
        )
    pose = carried.pose if config.is_enabled("head_pose") else None
    return FrameAnalysis(
        faces=carried.faces,
        boxes=carried.boxes,
        identity=identity,
        head_pose=pose,
        looking_away=config.is_enabled("head_pose") and _away(pose, config),
        objects=_prohibited(detections, config, carried.candidate) if config.is_enabled("objects") else (),
        camera=camera,
        checks_run=frozenset(timer.checks_run),
        timings_ms=timer.ms,
    )
