"""A scripted webcam stream, composed from the committed test photos.

Used by ``python -m detection bench`` to measure the cascade, and by the
tests to check that the cascade raises the same events as analysing every
frame in full. It is synthetic: one still portrait with per-frame jitter
(a shift of up to 4 px, +-1% scale, +-3% exposure, sensor noise, JPEG q80)
stands in for a candidate sitting still, and whole photos are swapped in for
the scripted episodes. Real webcam footage moves differently; see
docs/detection.md for what this can and cannot show.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detection.core import crop_to

FRAME_SIZE = (640, 480)
INTERVAL = 2.0

Episode = tuple[float, float, str]
# A ten-minute exam: (start second, end second, episode); the candidate sits
# still outside them. This is the "typical stream" of the bench.
EPISODES: tuple[Episode, ...] = (
    (60, 68, "looking_away"),
    (150, 158, "second_person"),
    (240, 248, "no_face"),
    (330, 338, "impostor"),
    (420, 426, "camera_covered"),
    (510, 516, "phone_like_object"),
)
DURATION = 600.0
# The same episodes packed into 90 s, for tests.
SHORT_EPISODES: tuple[Episode, ...] = (
    (10, 18, "looking_away"),
    (26, 34, "second_person"),
    (42, 50, "no_face"),
    (58, 66, "impostor"),
    (74, 80, "camera_covered"),
)
SHORT_DURATION = 90.0
# What each episode should raise (phone_like_object is a dark rectangle: the
# SSD is not expected to call it a phone; it only tests that the cascade looks).
EXPECTED_EVENT = {
    "looking_away": "looking_away",
    "second_person": "multiple_faces",
    "no_face": "no_face",
    "impostor": "identity_mismatch",
    "camera_covered": "camera_blocked",
}


@dataclass(frozen=True)
class ReplayFrame:
    t: float
    episode: str  # "still" or one of EPISODES
    jpeg: bytes


def _read(photos: Path, name: str) -> np.ndarray:
    bgr = cv2.imread(str(photos / name), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(photos / name)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def scenes(photos: Path) -> dict[str, np.ndarray]:
    """The still pictures of the script, 640x480 RGB."""
    obama = _read(photos, "obama.jpg")
    candidate = crop_to(obama, FRAME_SIZE, 0.25)
    biden = crop_to(_read(photos, "biden.jpg"), FRAME_SIZE, 0.17)
    half = (FRAME_SIZE[0] // 2, FRAME_SIZE[1])
    pair = np.hstack([crop_to(obama, half, 0.25), crop_to(_read(photos, "biden.jpg"), half, 0.17)])
    # The curtains and flag left of the portrait: a room with nobody in it.
    room = cv2.resize(obama[0:400, 0:320], FRAME_SIZE, interpolation=cv2.INTER_AREA)
    away = crop_to(_read(photos, "obama_partial_face2.jpg"), FRAME_SIZE, 0.23)
    phone = candidate.copy()
    cv2.rectangle(phone, (470, 260), (530, 380), (20, 20, 25), -1)  # a dark slab held up at the side
    return {
        "still": candidate,
        "looking_away": away,
        "second_person": np.ascontiguousarray(pair),
        "no_face": room,
        "impostor": biden,
        "camera_covered": np.full((480, 640, 3), 8, np.uint8),
        "phone_like_object": phone,
    }


def episode_at(t: float, episodes: tuple[Episode, ...] = EPISODES) -> str:
    for start, end, name in episodes:
        if start <= t < end:
            return name
    return "still"


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A still subject seen by a webcam 2 s later: sway, exposure drift, noise."""
    dx, dy = rng.integers(-4, 5, 2)
    scale = 1.0 + rng.uniform(-0.01, 0.01)
    matrix = np.array([[scale, 0, dx + (1 - scale) * 320], [0, scale, dy + (1 - scale) * 240]], np.float32)
    moved = cv2.warpAffine(image, matrix, FRAME_SIZE, borderMode=cv2.BORDER_REFLECT)
    gain = 1.0 + rng.uniform(-0.03, 0.03)
    noisy = moved.astype(np.float32) * gain + rng.normal(0, 2.0, moved.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def scripted_stream(
    photos: Path, *, seed: int = 0, episodes: tuple[Episode, ...] = EPISODES, duration: float = DURATION
) -> Iterator[ReplayFrame]:
    """Frames every 2 s as JPEG bytes, the way the browser sends them."""
    rng = np.random.default_rng(seed)
    pictures = scenes(photos)
    t = 0.0
    while t < duration:
        episode = episode_at(t, episodes)
        picture = pictures[episode]
        frame = picture if episode == "camera_covered" else jitter(picture, rng)
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        yield ReplayFrame(t=t, episode=episode, jpeg=data.tobytes())
        t += INTERVAL


@dataclass(frozen=True)
class ReplayCost:
    """What analysing a replayed stream through the cascade cost, per frame."""

    frames: int
    wall_ms: float  # elapsed, decoding included
    cpu_ms: float  # this process's CPU time (every thread), decoding included
    checks_run: dict[str, int]  # frames on which each check ran


def replay_cost(
    photos: Path, *, reference: np.ndarray, duration: float = DURATION, full: bool = False
) -> ReplayCost:
    """Decode and analyse every frame of ``scripted_stream`` as a worker would:
    through ``analyse_stream`` (the cascade), or ``analyse_frame`` if ``full``.
    The stream is built first and not counted."""
    import time
    from collections import Counter

    from detection.core import CheckConfig, analyse_frame, analyse_stream, decode_image

    config = CheckConfig()
    frames = list(scripted_stream(photos, seed=0, duration=duration))
    state = None
    ran: Counter[str] = Counter()
    wall, cpu = time.perf_counter(), time.process_time()
    for item in frames:
        image = decode_image(item.jpeg)
        if full:
            analysis = analyse_frame(image, references=[reference], config=config)
        else:
            analysis, state = analyse_stream(
                image, references=[reference], config=config, state=state, now=item.t
            )
        ran.update(analysis.checks_run)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return ReplayCost(
        frames=len(frames),
        wall_ms=wall * 1000 / len(frames),
        cpu_ms=cpu * 1000 / len(frames),
        checks_run={k: ran[k] for k in sorted(ran)},
    )
