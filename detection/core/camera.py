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

A picture judged dark, flat or covered only *may* be a blocked camera: a dim
room, or darker skin in poor light, gives a dark picture with a face plainly
in it. ``analyse_frame`` and ``analyse_stream`` therefore run the face check on
such a picture and call the camera blocked only when no face is found in it
(see ``PICTURE_REASONS``); a frozen feed stays blocked with a face in it (a
still photo played into a virtual camera shows one). On a dark picture the
face checks look at a brightened copy (``lift_dark``): a linear gain, by a
lookup table, that takes the 99th percentile of the thumbnail's grey to
``LIFT_TO`` and is at most ``MAX_LIFT``. Measured with
``python -m detection analyse --dim 15`` on the committed photos (see
docs/detection.md): HOG unaided finds fewer faces as the picture darkens; on
the lifted copy it finds them all down to a mean of 4. The gain works on the
percentile, not the mean, so black bars round the face (a letterboxed
picture, a dark room behind a lit face) do not push the face into
saturation; CLAHE and a gamma lift were tried and each lost faces at a mean
of 15 that the gain kept.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from .types import CameraState

DARK_MEAN = 30.0
FLAT_STD = 8.0
COVERED_BLUR = 8.0
# The reasons a face found in the picture overrides: the picture is poor, not the camera stopped.
PICTURE_REASONS = ("dark", "flat", "covered")
LIFT_PERCENTILE = 99.0
LIFT_TO = 220.0  # grey level the percentile is taken to
MAX_LIFT = 16.0  # largest gain: a black frame's noise is not made into a picture
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


def is_dark(thumb: np.ndarray) -> bool:
    """Whether a grey thumbnail's mean is below ``DARK_MEAN``."""
    return float(thumb.mean()) < DARK_MEAN


def lift_gain(thumb: np.ndarray) -> float:
    """The gain ``lift_dark`` applies for a picture with this grey thumbnail (1.0 when not dark)."""
    if not is_dark(thumb):
        return 1.0
    top = float(np.percentile(thumb, LIFT_PERCENTILE))
    return float(min(MAX_LIFT, LIFT_TO / max(top, 1.0)))


def apply_gain(image: np.ndarray, gain: float) -> np.ndarray:
    """``image`` (uint8, any channels) multiplied by ``gain``, clipped, through a lookup table."""
    if gain == 1.0:
        return image
    lut = np.clip(np.arange(256, dtype=np.float32) * gain, 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def lift_dark(image: np.ndarray, *, thumb: np.ndarray | None = None) -> np.ndarray:
    """A brightened copy of a dark RGB frame for the face checks; the frame itself when not dark."""
    if thumb is None:
        thumb = gray_thumbnail(image)
    return apply_gain(image, lift_gain(thumb))


def frame_digest(thumb: np.ndarray) -> str:
    """Digest of an 80x60 grey thumbnail derived from ``thumb``."""
    small = cv2.resize(thumb, _DIGEST_THUMB, interpolation=cv2.INTER_AREA)
    return hashlib.blake2b(small.tobytes(), digest_size=8).hexdigest()
