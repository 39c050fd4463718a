"""Photos and composed scenes for the detection tests (plain helpers; fixtures are in conftest)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np

from detection.core import crop_to

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"


@cache
def _load(name: str) -> np.ndarray:
    bgr = cv2.imread(str(PHOTOS / name), cv2.IMREAD_COLOR)
    assert bgr is not None, name
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def photo(name: str) -> np.ndarray:
    """A committed test photo as RGB uint8 (a fresh copy each call)."""
    return _load(name).copy()


def resize_to_height(image: np.ndarray, height: int) -> np.ndarray:
    scale = height / image.shape[0]
    return cv2.resize(image, (max(1, round(image.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)


# Vertical centre of the face in each portrait, as a fraction of its height
# (read once off the photos; portraits have the head in the upper part).
FACE_CENTRE_Y = {
    "obama.jpg": 0.25,
    "obama2.jpg": 0.37,
    "obama3.jpg": 0.19,
    "biden.jpg": 0.17,
    "astronaut.png": 0.24,
    "obama_partial_face.jpg": 0.25,
    "obama_partial_face2.jpg": 0.23,
}


def webcam_photo(name: str, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A committed portrait framed like a webcam picture of someone at a desk."""
    return crop_to(photo(name), size, FACE_CENTRE_Y[name])


def side_by_side(*images: np.ndarray, height: int = 480) -> np.ndarray:
    """Several photos on one canvas: a scene with several people."""
    return np.ascontiguousarray(np.hstack([resize_to_height(im, height) for im in images]))


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return data.tobytes()
