"""Dark is not blocked: a dim picture with a face in it is analysed, not called a blocked camera.

The dim frames are composed in code (each committed portrait, framed like a
webcam picture, its light scaled to a mean grey of 24 and 15, bare and inside
black bars). They test the code, not accuracy on real dim rooms.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from detection_photos import FACE_CENTRE_Y, PHOTOS, webcam_photo

from detection.core import CheckConfig, analyse_frame, analyse_stream
from detection.core.camera import MAX_LIFT, camera_state, lift_dark
from detection.core.image import dim_to, letterbox
from detection.core.rules import conditions_from, debounce

CONFIG = CheckConfig()
RNG = np.random.default_rng(18)
PORTRAITS = sorted(FACE_CENTRE_Y)


def _noise(image: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(image + RNG.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("mean", [24, 15])
@pytest.mark.parametrize("name", PORTRAITS)
def test_it_finds_the_face_in_a_dim_frame_and_does_not_call_the_camera_blocked(name, mean):
    frame = dim_to(webcam_photo(name), mean)
    assert camera_state(frame).reason == "dark"  # the old rule would have stopped here
    result = analyse_frame(frame, references=[], config=CONFIG)
    assert result.faces == 1
    assert not result.camera.blocked and result.camera.face_seen
    assert result.camera.brightness == pytest.approx(mean, abs=1.0)
    assert [c.type for c in conditions_from(result, CONFIG)] in ([], ["looking_away"])


@pytest.mark.parametrize("mean", [24, 15])
@pytest.mark.parametrize("name", ["obama2.jpg", "biden.jpg"])
def test_a_dim_face_inside_black_bars_is_not_a_blocked_camera(name, mean):
    frame = dim_to(letterbox(webcam_photo(name)), mean)
    result = analyse_frame(frame, references=[], config=CONFIG)
    assert result.faces == 1 and not result.camera.blocked


def test_it_checks_identity_on_a_dim_frame(obama_ref, biden_ref):
    frame = dim_to(webcam_photo("obama.jpg"), 15)
    same = analyse_frame(frame, references=[obama_ref], config=CONFIG)
    other = analyse_frame(frame, references=[biden_ref], config=CONFIG)
    assert same.identity is not None and same.identity.match
    assert other.identity is not None and not other.identity.match


def test_the_camera_check_alone_still_looks_for_a_face_in_a_dim_frame():
    camera_only = CheckConfig(enabled=("camera",))
    result = analyse_frame(dim_to(webcam_photo("obama.jpg"), 15), references=[], config=camera_only)
    assert not result.camera.blocked
    assert conditions_from(result, camera_only) == []


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((480, 640, 3), np.uint8),
        _noise(np.zeros((480, 640, 3)), 2.0),
        _noise(np.full((480, 640, 3), 6.0), 1.5),
        _noise(webcam_photo("obama.jpg") * 0.01, 1.0),
    ],
    ids=["black", "black-noise", "near-black", "lens-covered-in-the-dark"],
)
def test_a_truly_dark_frame_is_still_blocked(frame):
    result = analyse_frame(frame, references=[], config=CONFIG)
    assert result.faces == 0
    assert result.camera.blocked and result.camera.reason == "dark" and not result.camera.face_seen
    assert [c.type for c in conditions_from(result, CONFIG)] == ["camera_blocked"]


def test_a_covered_lens_is_still_blocked():
    ys, xs = np.mgrid[0:480, 0:640]
    glow = np.exp(-((xs - 320) ** 2 + (ys - 240) ** 2) / (2 * 250.0**2))[..., None]
    finger = _noise(np.array([170.0, 70.0, 50.0]) * glow + 20, 3.0)
    paper = _noise(np.full((480, 640, 3), 200.0), 3.0)
    for frame in (finger, paper):
        result = analyse_frame(frame, references=[], config=CONFIG)
        assert result.camera.blocked and result.camera.reason in ("covered", "flat")


def test_the_lift_leaves_a_lit_frame_alone_and_caps_its_gain():
    lit = webcam_photo("obama.jpg")
    assert lift_dark(lit) is lit
    speck = np.zeros((480, 640, 3), np.uint8)
    speck[::20, ::20] = 2
    assert int(lift_dark(speck).max()) == round(2 * MAX_LIFT)


def _jitter(frame: np.ndarray) -> np.ndarray:
    dx, dy = (int(v) for v in RNG.integers(-2, 3, 2))
    return _noise(np.roll(frame, (dy, dx), axis=(0, 1)), 1.0)


def _stream(frames: list[np.ndarray], config: CheckConfig = CONFIG):
    state = rules = None
    analyses, opened = [], []
    for i, frame in enumerate(frames):
        now = 1_000.0 + 2.0 * i
        analysis, state = analyse_stream(frame, references=[], config=config, state=state, now=now)
        actions, rules = debounce(
            rules, conditions_from(analysis, config), now=now, interval=2.0, config=config
        )
        analyses.append(analysis)
        opened += [a.type for a in actions if a.kind == "open"]
    return analyses, opened


@pytest.mark.parametrize("mean", [24, 15])
def test_the_stream_raises_no_camera_blocked_over_a_dim_room(mean):
    dim = dim_to(webcam_photo("obama.jpg"), mean)
    analyses, opened = _stream([_jitter(dim) for _ in range(8)])
    assert "camera_blocked" not in opened and "no_face" not in opened
    assert all(a.faces == 1 and not a.camera.blocked for a in analyses)
    # The cascade's rule holds on dim frames too: a still picture runs no face check each frame.
    assert "faces" in analyses[0].checks_run
    assert sum("faces" in a.checks_run for a in analyses[1:]) == 0


def test_the_stream_still_raises_camera_blocked_when_the_lens_goes_black():
    dim = dim_to(webcam_photo("obama.jpg"), 15)
    black = [_noise(np.zeros((480, 640, 3)), 1.0) for _ in range(4)]
    analyses, opened = _stream([_jitter(dim) for _ in range(3)] + black + [_jitter(dim) for _ in range(3)])
    assert opened.count("camera_blocked") == 1
    assert [a.camera.blocked for a in analyses] == [False] * 3 + [True] * 4 + [False] * 3
    # The black frames after the first are alike: the face check is not repeated on them.
    assert sum("faces" in a.checks_run for a in analyses[4:7]) == 0


def test_a_frozen_dim_feed_with_a_face_is_still_blocked():
    still = dim_to(webcam_photo("obama.jpg"), 15)
    analyses, opened = _stream([still] * 4)
    assert not analyses[0].camera.blocked
    assert all(a.camera.blocked and a.camera.reason == "frozen" for a in analyses[1:])
    assert opened == ["camera_blocked"]


def _analyse(*args: str) -> list[dict]:
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "detection", "analyse", "--json", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.slow
def test_the_command_dims_and_letterboxes_the_photos_it_analyses():
    """The figures of docs/detection.md come from this command."""
    paths = [str(PHOTOS / "obama.jpg"), str(PHOTOS / "biden.jpg")]
    dim = _analyse("--dim", "15", *paths)
    assert [r["camera"]["brightness"] for r in dim] == [pytest.approx(15, abs=0.5)] * 2
    assert all(r["faces"] == 1 and not r["camera_blocked"] and r["camera"]["face_seen"] for r in dim)
    # Without the lift a very dark picture loses its face and is called blocked, as before.
    unlifted = _analyse("--dim", "4", "--no-lift", *paths)
    assert all(r["faces"] == 0 and r["camera_blocked"] for r in unlifted)
    barred = _analyse("--bars", "--dim", "15", *paths)
    assert all(r["faces"] == 1 and not r["camera_blocked"] for r in barred)
