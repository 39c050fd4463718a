"""Fake webcam clips for Chromium's ``--use-file-for-fake-video-capture``.

Chromium plays a Y4M file in a loop as the camera. The clips are built from
the committed test photos with numpy and OpenCV, never committed themselves.

Every frame carries a little sensor noise and a slow sway: the detection core
flags a feed whose consecutive frames are bit-identical as a frozen camera
(``detection/core/camera.py``), which is exactly what a still photo played in
a loop would be.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detection.core import crop_to

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
WIDTH, HEIGHT = 640, 480
FPS = 5

# Vertical centre of the face in each portrait, as a fraction of its height.
FACE_CENTRE_Y = {"obama.jpg": 0.25, "biden.jpg": 0.17}


def photo(name: str) -> np.ndarray:
    """A committed test photo as RGB uint8."""
    bgr = cv2.imread(str(PHOTOS / name), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(PHOTOS / name)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def framed(name: str, size: tuple[int, int]) -> np.ndarray:
    """``name`` cropped to the aspect of ``size`` (w, h) around its face and scaled to it."""
    return crop_to(photo(name), size, FACE_CENTRE_Y.get(name, 0.3))


def scene(*names: str) -> np.ndarray:
    """A 640x480 webcam picture: one portrait, or several people side by side."""
    part = (WIDTH // len(names), HEIGHT)
    return np.ascontiguousarray(np.hstack([framed(n, part) for n in names]))


def rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 Y, Cb, Cr planes in video range (Y 16-235), as Chromium reads Y4M;
    chroma averaged over 2x2 blocks."""
    r, g, b = (rgb[..., i].astype(np.float32) / 255 for i in range(3))
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b

    def quarter(plane: np.ndarray) -> np.ndarray:
        h, w = plane.shape
        return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    def u8(plane: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(plane), 0, 255).astype(np.uint8)

    return u8(y), u8(quarter(cb)), u8(quarter(cr))


def live_frames(
    image: np.ndarray, count: int, *, rng: np.random.Generator, phase: int = 0, period: int = 50
) -> list[np.ndarray]:
    """``count`` frames of ``image`` with sensor noise and a slow sway of a few pixels."""
    frames = []
    for i in range(phase, phase + count):
        dx = 3.0 * np.sin(2 * np.pi * i / period)
        dy = 2.0 * np.cos(2 * np.pi * i / period)
        moved = cv2.warpAffine(
            image,
            np.float32([[1, 0, dx], [0, 1, dy]]),
            (image.shape[1], image.shape[0]),
            borderMode=cv2.BORDER_REFLECT,
        )
        noisy = moved.astype(np.int16) + rng.normal(0, 3, moved.shape).astype(np.int16)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return frames


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """Write RGB uint8 frames (all the same even size) as a 4:2:0 YUV4MPEG2 clip."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for frame in frames:
            if frame.shape[:2] != (height, width):
                raise ValueError("all frames of a clip must have the same size")
            fh.write(b"FRAME\n")
            for plane in rgb_to_yuv420(frame):
                fh.write(plane.tobytes())
    return path


def write_clip(path: Path, *segments: tuple[float, tuple[str, ...]], fps: int = FPS) -> Path:
    """A looping clip: ``(seconds, people)`` segments one after the other, e.g.
    ``(5, ("obama.jpg",)), (6, ("obama.jpg", "biden.jpg"))``.

    Each time a page opens the camera Chromium plays the clip from its start.
    Keep the loop length off a whole number of seconds, so pictures taken once
    a second do not land on the same frame twice in a row.
    """
    rng = np.random.default_rng(0)
    counts = [max(1, round(seconds * fps)) for seconds, _ in segments]
    frames: list[np.ndarray] = []
    for count, (_, people) in zip(counts, segments, strict=True):
        frames += live_frames(scene(*people), count, rng=rng, phase=len(frames), period=sum(counts))
    return write_y4m(path, frames, fps)
