"""Head pose (yaw, pitch) from dlib's 68 landmarks with ``cv2.solvePnP``.

A generic 3D face (the six-point model popularised by LearnOpenCV: nose tip,
chin, outer eye corners, mouth corners, in millimetre-like units) is fitted
to the matching landmarks under a pinhole camera whose focal length is the
image width and whose centre is the image centre - a webcam's field of view
is near 60 degrees, for which that guess is good enough.

Angles are in degrees in the camera's frame: yaw > 0 when the face turns
towards the image's right (the candidate's left), pitch > 0 when the face
tilts down. A generic model carries a fixed bias on real faces; the pitch
offset below was measured on the committed frontal portraits so that they
read near zero (see docs/detection.md).

Thresholds (``CheckConfig.yaw_threshold`` 45, ``looking_away_seconds`` 6, and
``RELEASE_MARGIN`` 10 here): ``python -m detection analyse --json`` on the
committed photos reads the near-frontal full faces at 2.6 to 29.5 degrees of
yaw (obama2.jpg, turned perhaps 15-20 degrees, is the 29.5; it read about 36
in issue 18's browser exam), and dimmed or inside black bars (``--dim``,
``--bars``) at most 30.2. People read at that angle all exam long, so a turn
must pass 45 on every frame for 6 s to start an event, and an open event ends
once the head is back within 35 (``release_level``), so an estimate hovering
about 45 does not toggle events. A face cut in half by the frame's edge (obama_partial_face2.jpg)
reads 41-52: its landmarks are guesses. Profile faces are not found by HOG at
all and raise no_face, not looking_away. The estimate's error against known
angles is not measured here (no licensed set with known angles is in the
repo); real-photo figures come from ``python -m detection evaluate`` on the
real set when it lands.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .models import face_api
from .types import Box, HeadPose

# dlib 68-point indices: nose tip, chin, left eye outer corner (image left),
# right eye outer corner, left mouth corner, right mouth corner.
LANDMARKS = (30, 8, 36, 45, 48, 54)
# The same points with x right, y down and z away from the camera, so that a
# face looking into the camera has the identity rotation.
MODEL_POINTS = np.array(
    [
        (0.0, 0.0, 0.0),
        (0.0, 330.0, 65.0),
        (-225.0, -170.0, 135.0),
        (225.0, -170.0, 135.0),
        (-150.0, 150.0, 125.0),
        (150.0, 150.0, 125.0),
    ],
    dtype=np.float64,
)
PITCH_OFFSET = 0.0
# Degrees below the yaw or pitch threshold at which an open looking_away ends (see the module
# docstring), but never below RELEASE_FLOOR of the threshold, so that a small threshold
# (an exam may set 10) does not keep an event open for any head in view.
RELEASE_MARGIN = 10.0
RELEASE_FLOOR = 0.75


def landmarks_68(image: np.ndarray, box: Box) -> np.ndarray:
    """The 68 (x, y) landmarks of the face in ``box``, float64 array of shape (68, 2)."""
    import dlib

    rect = dlib.rectangle(box.left, box.top, box.right, box.bottom)
    shape = face_api().pose_predictor_68_point(image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def pose_from_points(points: np.ndarray, image_size: tuple[int, int]) -> HeadPose | None:
    """Yaw and pitch from the six model landmarks (shape (6, 2)) in an image of (width, height).

    Returns None when the fit fails (degenerate landmarks).
    """
    width, height = image_size
    focal = float(width)
    camera = np.array([[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1]], dtype=np.float64)
    ok, rvec, _ = cv2.solvePnP(
        MODEL_POINTS,
        np.ascontiguousarray(points, dtype=np.float64),
        camera,
        None,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok or not np.all(np.isfinite(rvec)):
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    # R = Ry(yaw) @ Rx(pitch) @ Rz(roll) decomposition, readable for small angles.
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, rotation[0, 2]))))
    pitch = math.degrees(math.atan2(-rotation[1, 2], rotation[2, 2]))
    # Measure against the line of sight, not the optical axis: someone at the
    # edge of the picture who looks into the lens is not looking away.
    nose_x, nose_y = points[0]
    yaw -= math.degrees(math.atan((nose_x - width / 2.0) / focal))
    pitch += math.degrees(math.atan((nose_y - height / 2.0) / focal))
    if not (math.isfinite(yaw) and math.isfinite(pitch)):
        return None
    return HeadPose(yaw=round(yaw, 2), pitch=round(pitch - PITCH_OFFSET, 2))


def head_pose(image: np.ndarray, box: Box) -> HeadPose | None:
    """Head pose of the face in ``box`` of an RGB uint8 image."""
    points = landmarks_68(image, box)[list(LANDMARKS)]
    height, width = image.shape[:2]
    return pose_from_points(points, (width, height))


def is_looking_away(pose: HeadPose | None, *, yaw_threshold: float, pitch_threshold: float) -> bool:
    """Turned past a threshold: what it takes to *start* a looking_away event."""
    return pose is not None and (abs(pose.yaw) > yaw_threshold or abs(pose.pitch) > pitch_threshold)


def release_level(threshold: float) -> float:
    """The angle below which an open looking_away ends: ``threshold`` less
    ``RELEASE_MARGIN``, and at least ``RELEASE_FLOOR`` of it (45 -> 35, 25 -> 18.75)."""
    return max(threshold - RELEASE_MARGIN, threshold * RELEASE_FLOOR)


def is_still_looking_away(pose: HeadPose | None, *, yaw_threshold: float, pitch_threshold: float) -> bool:
    """Turned past a release level: what keeps an open looking_away event open.

    The hysteresis: a head whose estimate hovers about a threshold neither
    starts an event (each frame below it breaks the run) nor, once an event is
    open, ends it and starts another."""
    return is_looking_away(
        pose, yaw_threshold=release_level(yaw_threshold), pitch_threshold=release_level(pitch_threshold)
    )
