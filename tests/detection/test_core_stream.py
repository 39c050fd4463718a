"""analyse_stream: state round-trips through JSON and carries what it must."""

from __future__ import annotations

import json

import numpy as np
from detection_photos import webcam_photo

from detection.core import CheckConfig, analyse_stream


def _noisy(frame: np.ndarray, seed: int) -> np.ndarray:
    """A live sensor: the same scene with a little noise, never bit-identical."""
    rng = np.random.default_rng(seed)
    return np.clip(frame.astype(np.int16) + rng.integers(-3, 4, frame.shape), 0, 255).astype(np.uint8)


def test_it_keeps_a_small_json_state(obama_ref):
    frame = webcam_photo("obama2.jpg")
    state = None
    for i in range(3):
        analysis, state = analyse_stream(
            _noisy(frame, i), references=[obama_ref], config=CheckConfig(), state=state, now=1000.0 + 2 * i
        )
        state = json.loads(json.dumps(state))  # what a worker would store
        assert len(json.dumps(state)) < 2048
        assert analysis.faces == 1
        assert analysis.identity is not None and analysis.identity.match
        assert not analysis.camera.blocked


def test_it_flags_a_frozen_feed(obama_ref):
    frame = webcam_photo("obama2.jpg")
    config = CheckConfig()
    first, state = analyse_stream(frame, references=[obama_ref], config=config, state=None, now=10.0)
    assert not first.camera.blocked
    second, state = analyse_stream(frame.copy(), references=[obama_ref], config=config, state=state, now=12.0)
    assert second.camera.blocked and second.camera.reason == "frozen"
    live, state = analyse_stream(
        _noisy(frame, 7), references=[obama_ref], config=config, state=state, now=14.0
    )
    assert not live.camera.blocked


def test_a_redelivered_frame_is_not_taken_for_a_frozen_feed(obama_ref):
    frame = webcam_photo("obama2.jpg")
    config = CheckConfig()
    _, state = analyse_stream(frame, references=[obama_ref], config=config, state=None, now=10.0)
    again, state2 = analyse_stream(frame, references=[obama_ref], config=config, state=state, now=10.0)
    assert state2 == state
    assert not again.camera.blocked
