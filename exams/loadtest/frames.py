"""The pictures the simulated candidates send, and when each one changes scene.

Scenes come from ``detection.core.replay.scenes`` (the bench's script): the
candidate sitting still, the candidate with a second person beside them, and
the room with nobody in it. Each frame is one of those with the replay's
webcam jitter (a sway of up to 4 px, +-1% scale, +-3% exposure, sensor noise)
encoded as a JPEG at the browser's quality.

Encoding a JPEG per frame per candidate would spend CPU that the server, on
the same machine, needs. So every scene gets a pool of distinct frames made
once, at least as many as one candidate sends of it in the whole run, and each
candidate walks the pool from its own offset. Two consecutive frames of a
candidate are then never the same bytes or the same pixels (the server reads
identical frames as a frozen camera), and no candidate sends one twice.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detection.core import decode_image
from detection.tools.replay import jitter, scenes

STILL = "still"
# Scene name (as ``replay.scenes`` calls it) -> the event type it must raise.
EPISODE_EVENTS = {"second_person": "multiple_faces", "no_face": "no_face"}
# Seconds into a scripted candidate's stream. Two still frames come first, so
# the server has the candidate's face and picture before anything changes; the
# episodes are 8 s apart, so the first has closed (3 s grace) before the next.
EPISODE_SCRIPT: tuple[tuple[float, str], ...] = ((4.0, "second_person"), (20.0, "no_face"))
EPISODE_SECONDS = 8.0
# Seconds into a scripted stream when its last episode is over.
SCRIPT_END_SECONDS = max(start for start, _ in EPISODE_SCRIPT) + EPISODE_SECONDS
# canvas.toBlob(..., "image/jpeg", 0.7) in static/js/camera.js.
JPEG_QUALITY = 70


@dataclass(frozen=True)
class Episode:
    """A scripted scene from ``start`` to ``end`` seconds into a candidate's stream."""

    scene: str
    start: float
    end: float

    @property
    def expected_event(self) -> str:
        return EPISODE_EVENTS[self.scene]


def episodes_for(stream_seconds: float, interval: float) -> tuple[Episode, ...]:
    """The scripted episodes that fit whole into a stream of ``stream_seconds``
    and show on at least two frames (the debounce needs two)."""
    chosen = []
    for start, scene in EPISODE_SCRIPT:
        end = start + EPISODE_SECONDS
        shown = sum(1 for k in range(frames_in(stream_seconds, interval)) if start <= k * interval < end)
        if end <= stream_seconds and shown >= 2:
            chosen.append(Episode(scene, start, end))
    return tuple(chosen)


def scene_at(t: float, episodes: tuple[Episode, ...]) -> str:
    for episode in episodes:
        if episode.start <= t < episode.end:
            return episode.scene
    return STILL


def frames_in(seconds: float, interval: float) -> int:
    """How many frames a stream sends in ``seconds`` (one at 0, then one per interval)."""
    return int(math.floor(seconds / interval + 1e-9)) + 1


def pool_sizes(duration: float, interval: float) -> dict[str, int]:
    """Frames each scene's pool needs so that no candidate sends one twice in a run."""
    sizes = {STILL: frames_in(duration, interval) + 1}
    for scene in EPISODE_EVENTS:
        sizes[scene] = frames_in(EPISODE_SECONDS, interval) + 1
    return sizes


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def build_pools(photos: Path, sizes: dict[str, int], *, seed: int = 0) -> dict[str, list[bytes]]:
    """``sizes[scene]`` distinct noisy JPEGs of each scene.

    Raises ValueError if two frames of a pool decode to the same pixels, which
    noise over 640x480x3 values makes practically impossible; a walk through
    the pool relies on it.
    """
    rng = np.random.default_rng(seed)
    pictures = scenes(photos)
    pools: dict[str, list[bytes]] = {}
    for scene, size in sizes.items():
        pool = [encode_jpeg(jitter(pictures[scene], rng)) for _ in range(size)]
        digests = {hashlib.blake2b(decode_image(data).tobytes(), digest_size=16).digest() for data in pool}
        if len(digests) != len(pool):
            raise ValueError(f"the {scene!r} pool has frames with identical pixels")
        pools[scene] = pool
    return pools


class FrameWalk:
    """One candidate's path through the pools: each scene from its own offset."""

    def __init__(self, pools: dict[str, list[bytes]], offset: int, episodes: tuple[Episode, ...]) -> None:
        self.pools = pools
        self.episodes = episodes
        self.next_index = {scene: offset % len(pool) for scene, pool in pools.items()}

    def frame(self, t: float) -> tuple[str, bytes]:
        """The scene and JPEG to send at ``t`` seconds into the stream; each call takes a new frame."""
        scene = scene_at(t, self.episodes)
        pool = self.pools[scene]
        index = self.next_index[scene]
        self.next_index[scene] = (index + 1) % len(pool)
        return scene, pool[index]
