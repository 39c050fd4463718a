"""Camera tampering: a dark, flat (covered) or frozen picture.

Dark, flat and covered are judged on one frame from a 160x120 grey thumbnail:
- dark: mean brightness below ``DARK_MEAN`` (0..255);
- flat: standard deviation below ``FLAT_STD`` - tape or a sheet of paper over
  the lens gives an almost uniform picture at any brightness;
- covered: variance of the Laplacian below ``COVERED_BLUR`` - a finger or a
  hand on the lens leaves a smooth glow with no edge at all. A normal frame
  scores in the hundreds to thousands, a webcam badly out of focus (Gaussian
  sigma 8 px at 640x480) about 24; sigma 16 px scores 3, which no one can
  proctor either.
Blur (the same Laplacian variance) is reported with every frame.

Frozen needs the stream: a live sensor never yields two frames whose 80x60
thumbnails are bit-identical, while a frozen feed (a still image played into a
virtual camera, a stuck capture) does. ``frame_digest`` gives a 16-hex-digit
digest of that thumbnail for the stream state.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from .types import CameraState

DARK_MEAN = 30.0
FLAT_STD = 8.0
COVERED_BLUR = 8.0
_THUMB = (160, 120)
_DIGEST_THUMB = (80, 60)


def gray_thumbnail(image: np.ndarray, size: tuple[int, int] = _THUMB) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def camera_state(image: np.ndarray, *, thumb: np.ndarray | None = None) -> CameraState:
    """Dark / flat / covered / blur of one RGB uint8 frame (never "frozen": see ``frame_digest``)."""
    if thumb is None:
        thumb = gray_thumbnail(image)
    mean, std = cv2.meanStdDev(thumb)
    brightness = float(mean[0, 0])
    spread = float(std[0, 0])
    blur = float(cv2.Laplacian(thumb, cv2.CV_64F).var())
    reason = ""
    if brightness < DARK_MEAN:
        reason = "dark"
    elif spread < FLAT_STD:
        reason = "flat"
    elif blur < COVERED_BLUR:
        reason = "covered"
    return CameraState(
        blocked=bool(reason), reason=reason, brightness=round(brightness, 2), blur=round(blur, 2)
    )


def frame_digest(thumb: np.ndarray) -> str:
    """Digest of an 80x60 grey thumbnail derived from ``thumb``."""
    small = cv2.resize(thumb, _DIGEST_THUMB, interpolation=cv2.INTER_AREA)
    return hashlib.blake2b(small.tobytes(), digest_size=8).hexdigest()
