"""analyse_stream: the state round-trips through JSON, reads what is already
stored, and carries what it must."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from detection_photos import webcam_photo

from detection.core import Box, CheckConfig, DetectedObject, HeadPose, StreamState, analyse_stream

# A state as analyse_stream stored it before StreamState existed (version 1),
# with a made-up signature.
SIGNATURE = bytes(range(256)) * 3
STORED = {
    "v": 1,
    "t": 12.0,
    "digest": "d7ce02cc72c19785",
    "sig": base64.b64encode(SIGNATURE).decode("ascii"),
    "t_faces": 10.0,
    "t_identity": 10.0,
    "t_objects": 10.0,
    "faces": 1,
    "boxes": [[94, 433, 273, 254]],
    "candidate": [94, 433, 273, 254],
    "identity": 0.0811,
    "pose": [-1.21, -2.41],
    "objects": [["tie", 0.9531, [329, 351, 480, 271]], ["person", 0.7891, [24, 594, 472, 68]]],
}


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
        stored = json.dumps(state.to_json())  # what a worker would store
        assert len(stored) < 2048
        state = StreamState.from_json(json.loads(stored))
        assert analysis.faces == 1
        assert analysis.identity is not None and analysis.identity.match
        assert not analysis.camera.blocked


def test_it_reads_a_state_stored_before_it_was_typed():
    state = StreamState.from_json(STORED)
    assert state.frame_at == 12.0 and state.digest == "d7ce02cc72c19785"
    assert state.signature == SIGNATURE and state.signature_grid.shape == (24, 32)
    assert (state.faces_at, state.identity_at, state.objects_at) == (10.0, 10.0, 10.0)
    assert state.faces == 1 and state.boxes == (Box(94, 433, 273, 254),)
    assert state.candidate == Box(94, 433, 273, 254)
    assert state.distance == 0.0811 and state.pose == HeadPose(yaw=-1.21, pitch=-2.41)
    assert state.detections[1] == DetectedObject("person", 0.7891, Box(24, 594, 472, 68))
    assert state.to_json() == STORED


def test_a_fresh_state_round_trips():
    assert StreamState().to_json() == {
        "v": 1,
        "faces": 0,
        "boxes": [],
        "candidate": None,
        "identity": None,
        "pose": None,
        "objects": [],
    }
    assert StreamState.from_json(StreamState().to_json()) == StreamState()


@pytest.mark.parametrize(
    "stored",
    [None, "garbage", 5, [], {}, {**STORED, "v": 2}, {**STORED, "v": None}, {**STORED, "faces": -1}],
    ids=["none", "string", "number", "list", "empty", "other-version", "no-version", "invalid"],
)
def test_it_starts_afresh_from_what_it_cannot_use(stored):
    assert StreamState.from_json(stored) == StreamState()


def test_a_damaged_value_falls_back_to_its_default_and_the_rest_is_kept():
    stored = {**STORED, "sig": "not base64!", "boxes": [[1, 2]], "pose": ["x", 1], "objects": [["a"]]}
    state = StreamState.from_json(stored)
    assert state.signature is None and state.boxes == () and state.pose is None and state.detections == ()
    assert state.frame_at == 12.0 and state.candidate == Box(94, 433, 273, 254) and state.distance == 0.0811


def test_it_refuses_an_invalid_state():
    with pytest.raises(ValueError, match="signature"):
        StreamState(signature=b"too short")
    with pytest.raises(ValueError, match="negative"):
        StreamState(faces=-1)


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
