"""Camera tampering on one frame: dark, flat, covered; blur is measured."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from detection_photos import webcam_photo

from detection.core import CheckConfig, analyse_frame
from detection.core.camera import camera_state

RNG = np.random.default_rng(3)


def _noise(image: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    return np.clip(image + RNG.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def test_a_normal_frame_is_not_blocked():
    state = camera_state(webcam_photo("obama.jpg"))
    assert not state.blocked and state.reason == ""
    assert 60 < state.brightness < 200 and state.blur > 100


def test_a_dim_but_usable_frame_is_not_blocked():
    dim = (webcam_photo("obama.jpg") * 0.45).astype(np.uint8)
    assert not camera_state(dim).blocked


@pytest.mark.parametrize("gain", [0.2, 0.05, 0.0])
def test_a_dark_frame_is_blocked(gain):
    dark = _noise(webcam_photo("obama.jpg") * gain, 1.0)
    state = camera_state(dark)
    assert state.blocked and state.reason == "dark"


@pytest.mark.parametrize("level", [90, 180, 250])
def test_a_flat_frame_is_blocked(level):
    flat = _noise(np.full((480, 640, 3), float(level)))
    state = camera_state(flat)
    assert state.blocked and state.reason == "flat"


def test_a_finger_on_the_lens_is_blocked():
    ys, xs = np.mgrid[0:480, 0:640]
    glow = np.exp(-((xs - 320) ** 2 + (ys - 240) ** 2) / (2 * 250.0**2))[..., None]
    finger = _noise(np.array([170.0, 70.0, 50.0]) * glow + 20)
    state = camera_state(finger)
    assert state.blocked and state.reason in ("covered", "flat")


def test_blur_falls_as_the_picture_softens():
    frame = webcam_photo("obama.jpg")
    values = [camera_state(cv2.GaussianBlur(frame, (0, 0), s)).blur for s in (0.5, 2, 4, 8)]
    assert values == sorted(values, reverse=True)
    assert not camera_state(cv2.GaussianBlur(frame, (0, 0), 4)).blocked


def test_analyse_frame_reports_a_covered_camera():
    result = analyse_frame(np.zeros((480, 640, 3), np.uint8), references=[], config=CheckConfig())
    assert result.camera.blocked and result.camera.reason == "dark"
    assert result.faces == 0
