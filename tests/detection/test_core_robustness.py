"""Hostile input: a clear InvalidImage or a defined result, never a crash or a hang."""

from __future__ import annotations

import numpy as np
import pytest
from detection_photos import PHOTOS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from detection.core import (
    CheckConfig,
    InvalidImage,
    StreamState,
    analyse_frame,
    analyse_stream,
    decode_image,
    prepare_image,
)

JPEG = (PHOTOS / "obama2.jpg").read_bytes()
FAST = CheckConfig(enabled=("camera", "faces"))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_decode_or_raise_invalid_image(data):
    try:
        image = decode_image(data)
    except InvalidImage as exc:
        assert str(exc)
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=len(JPEG) - 1), st.integers(min_value=0, max_value=255))
def test_a_corrupted_byte_decodes_or_raises_invalid_image(position, value):
    data = bytearray(JPEG)
    data[position] = value
    try:
        image = decode_image(bytes(data))
    except InvalidImage:
        return
    assert image.shape[2] == 3


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=len(JPEG) - 1))
def test_any_prefix_of_a_jpeg_is_refused(length):
    with pytest.raises(InvalidImage):
        decode_image(JPEG[:length])


_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
    shape=st.one_of(
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40),
        st.tuples(st.integers(0, 40), st.integers(0, 40), st.sampled_from([1, 2, 3, 4, 5])),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_arrays)
def test_any_array_is_prepared_or_refused(array):
    try:
        image = prepare_image(array)
    except InvalidImage:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[:2] == array.shape[:2]


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((480, 640, 3), np.uint8),
        np.full((480, 640), np.nan, np.float32),
        np.full((240, 320, 4), 65535, np.uint16),
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((3, 5000), np.uint8),
        np.random.default_rng(0).random((100, 100)),
    ],
    ids=["zeros", "nan", "rgba16", "one-pixel", "sliver", "float-noise"],
)
def test_analysis_of_degenerate_frames_is_defined(array):
    result = analyse_frame(array, references=[], config=FAST)
    assert result.faces == 0
    analysis, state = analyse_stream(array, references=[], config=FAST, state=None, now=1.0)
    assert analysis.faces == 0 and isinstance(state, StreamState)


def test_analysis_refuses_what_is_not_an_image():
    with pytest.raises(InvalidImage):
        analyse_frame(np.zeros((0, 0, 3), np.uint8), references=[], config=FAST)
    with pytest.raises(InvalidImage):
        analyse_stream(np.zeros((5,)), references=[], config=FAST, state=None, now=1.0)


@pytest.mark.parametrize(
    "state",
    [{"v": 1, "sig": "not base64!", "boxes": [[1, 2]], "pose": "x", "objects": [["a"]]}, {"v": 99}, {}],
)
def test_a_damaged_stream_state_is_tolerated(state):
    frame = np.full((480, 640, 3), 120, np.uint8)
    frame[100:300, 200:400] = 30
    analysis, new = analyse_stream(
        frame, references=[], config=FAST, state=StreamState.from_json(state), now=5.0
    )
    assert analysis.faces == 0 and new.to_json()["v"] == 1


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = ("t", "digest", "sig", "t_faces", "t_identity", "t_objects", "faces", "boxes", "candidate")
_KEYS += ("identity", "pose", "objects")


@settings(max_examples=300, deadline=None)
@given(_json | st.fixed_dictionaries({"v": st.just(1)}, optional={k: _json for k in _KEYS}))
def test_any_stored_stream_state_is_read_without_raising(data):
    state = StreamState.from_json(data)
    assert StreamState.from_json(state.to_json()) == state
