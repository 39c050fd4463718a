"""Face detection, encodings and identity, on dlib through face_recognition.

Detection is dlib's HOG frontal face detector (``face_recognition`` model
"hog"). Its window is 80x80 pixels: with no upsampling it finds faces down to
about 70 px wide, with one upsampling down to about 37 px, at four times the
cost. Images are first shrunk (never enlarged) so their longer side is at
most ``max_side``; boxes are mapped back to the caller's pixel coordinates.

Encodings are dlib's 128-d ResNet descriptor. Before encoding, the face is
cut out with a margin and scaled so it is about ``ENCODE_FACE_WIDTH`` pixels
wide, so a 1000 px face in a roster photo and a 150 px face in a webcam frame
are measured alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .models import face_api
from .types import Box, DetectionError, FaceCountError, IdentityResult

logger = logging.getLogger(__name__)

# dlib scores a detection by its margin over the SVM boundary; face_recognition
# keeps everything above 0. On the evaluation set (docs/detection.md) real faces
# score above 0.5 and the false detections that upsampling produces score
# below 0.3, so a second face must clear this to count.
FACE_MIN_SCORE = 0.3
FRAME_MAX_SIDE = 640
REFERENCE_MAX_SIDE = 1024
ENCODE_FACE_WIDTH = 200


@dataclass(frozen=True)
class Face:
    box: Box
    score: float

    @property
    def area(self) -> int:
        return max(0, self.box.width) * max(0, self.box.height)


def _shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def detect_faces(
    image: np.ndarray,
    *,
    max_side: int = FRAME_MAX_SIDE,
    upsample: int = 0,
    min_score: float = FACE_MIN_SCORE,
) -> tuple[Face, ...]:
    """Faces in an RGB uint8 image, largest first, in the image's own coordinates."""
    small, scale = _shrink(image, max_side)
    if min(small.shape[:2]) < 16:
        return ()
    rects, scores, _ = face_api().face_detector.run(small, upsample, min(min_score, 0.0))
    height, width = image.shape[:2]
    faces = []
    for rect, score in zip(rects, scores, strict=True):
        if score < min_score:
            continue
        box = Box(
            top=max(0, round(rect.top() / scale)),
            right=min(width, round(rect.right() / scale)),
            bottom=min(height, round(rect.bottom() / scale)),
            left=max(0, round(rect.left() / scale)),
        )
        if box.width > 0 and box.height > 0:
            faces.append(Face(box, float(score)))
    faces.sort(key=lambda f: f.area, reverse=True)
    return tuple(faces)


def detect_frame_faces(image: np.ndarray, *, max_side: int = FRAME_MAX_SIDE) -> tuple[Face, ...]:
    """The frame detector: one pass without upsampling, a second with it only if
    the first found nothing (a small or distant face; costs about 4x)."""
    faces = detect_faces(image, max_side=max_side, upsample=0)
    if not faces:
        faces = detect_faces(image, max_side=max_side, upsample=1)
    return faces


def detect_reference_faces(image: np.ndarray) -> tuple[Face, ...]:
    """Roster photos: up to 1024 px with one upsampling, so faces down to about
    4% of the photo's longer side are found and counted."""
    faces = detect_faces(image, max_side=REFERENCE_MAX_SIDE, upsample=1)
    if not faces and max(image.shape[:2]) < 320:
        faces = detect_faces(image, max_side=REFERENCE_MAX_SIDE, upsample=2)
    return faces


def face_chip(image: np.ndarray, box: Box, *, width: int = ENCODE_FACE_WIDTH) -> tuple[np.ndarray, Box]:
    """The face with a margin of half its size, scaled so the face is ``width`` px
    wide when it is larger; returns the crop and the face box inside it."""
    height, img_width = image.shape[:2]
    margin_x, margin_y = box.width // 2, box.height // 2
    top = max(0, box.top - margin_y)
    left = max(0, box.left - margin_x)
    bottom = min(height, box.bottom + margin_y)
    right = min(img_width, box.right + margin_x)
    crop = image[top:bottom, left:right]
    inner = Box(box.top - top, box.right - left, box.bottom - top, box.left - left)
    scale = min(1.0, width / max(box.width, 1))
    if scale < 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        inner = Box(
            round(inner.top * scale),
            round(inner.right * scale),
            round(inner.bottom * scale),
            round(inner.left * scale),
        )
    return np.ascontiguousarray(crop), inner


def _rect(box: Box):  # -> dlib.rectangle
    import dlib

    return dlib.rectangle(box.left, box.top, box.right, box.bottom)


def encode_face(image: np.ndarray, box: Box) -> np.ndarray:
    """The 128-d encoding of the face in ``box`` (float64)."""
    api = face_api()
    chip, inner = face_chip(image, box)
    shape = api.pose_predictor_5_point(chip, _rect(inner))
    return np.array(api.face_encoder.compute_face_descriptor(chip, shape, 1))


def face_distance(encoding: np.ndarray, references: Sequence[np.ndarray]) -> float:
    """Smallest Euclidean distance from ``encoding`` to any reference."""
    refs = _reference_matrix(references)
    return float(np.min(np.linalg.norm(refs - np.asarray(encoding, dtype=np.float64), axis=1)))


def _reference_matrix(references: Sequence[np.ndarray]) -> np.ndarray:
    if len(references) == 0:
        raise DetectionError("no reference encoding to compare with")
    refs = np.asarray([np.asarray(r, dtype=np.float64).reshape(-1) for r in references])
    if refs.ndim != 2 or refs.shape[1] != 128 or not np.all(np.isfinite(refs)):
        raise DetectionError("reference encodings must be finite 128-d vectors")
    return refs


def identity_of(
    image: np.ndarray, face: Face, references: Sequence[np.ndarray], threshold: float
) -> IdentityResult:
    distance = face_distance(encode_face(image, face.box), references)
    return IdentityResult(distance=round(distance, 4), threshold=threshold, match=distance <= threshold)


def encode_reference(image: np.ndarray) -> np.ndarray:
    """The encoding of the one face in a reference photo.

    Raises ``FaceCountError`` when the photo shows no face or more than one.
    """
    from .image import prepare_image

    image = prepare_image(image)
    faces = detect_reference_faces(image)
    if len(faces) != 1:
        raise FaceCountError(len(faces))
    return encode_face(image, faces[0].box)


def verify_identity(
    image: np.ndarray, references: Sequence[np.ndarray], *, threshold: float
) -> IdentityResult:
    """Whether the one face in ``image`` is the person of ``references``.

    Raises ``FaceCountError`` when the image does not show exactly one face.
    """
    from .image import prepare_image

    image = prepare_image(image)
    _reference_matrix(references)  # refuse bad references before the costly part
    faces = detect_frame_faces(image)
    if len(faces) != 1:
        raise FaceCountError(len(faces))
    return identity_of(image, faces[0], references, threshold)
