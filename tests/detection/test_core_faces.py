"""Face count, reference encodings and identity on real photos."""

from __future__ import annotations

import numpy as np
import pytest
from detection_photos import photo, resize_to_height, side_by_side, webcam_photo

from detection.core import (
    CheckConfig,
    DetectionError,
    FaceCountError,
    analyse_frame,
    encode_reference,
    verify_identity,
)
from detection.core.faces import detect_frame_faces, face_distance

THRESHOLD = CheckConfig().identity_threshold


def test_it_encodes_a_reference_as_128_floats(obama_ref):
    assert obama_ref.shape == (128,) and np.all(np.isfinite(obama_ref))


def test_it_matches_two_photos_of_the_same_person(obama_ref):
    result = verify_identity(photo("obama2.jpg"), [obama_ref], threshold=THRESHOLD)
    assert result.match
    assert result.distance < THRESHOLD
    assert result.threshold == THRESHOLD


def test_it_matches_a_webcam_sized_frame(obama_ref):
    result = verify_identity(webcam_photo("obama3.jpg"), [obama_ref], threshold=THRESHOLD)
    assert result.match


def test_it_rejects_another_person(obama_ref):
    result = verify_identity(photo("biden.jpg"), [obama_ref], threshold=THRESHOLD)
    assert not result.match
    assert result.distance > THRESHOLD


def test_it_takes_the_closest_of_several_references(obama_ref, biden_ref):
    result = verify_identity(photo("biden.jpg"), [obama_ref, biden_ref], threshold=THRESHOLD)
    assert result.match and result.distance < 0.3


def test_it_finds_two_faces_in_a_composed_scene():
    scene = side_by_side(photo("obama2.jpg"), photo("biden.jpg"), height=480)
    faces = detect_frame_faces(scene)
    assert len(faces) == 2
    lefts = sorted(f.box.left for f in faces)
    assert lefts[0] < scene.shape[1] / 2 < lefts[1]  # one face per half


def test_it_refuses_a_reference_with_two_faces():
    scene = side_by_side(photo("obama2.jpg"), photo("biden.jpg"), height=600)
    with pytest.raises(FaceCountError) as info:
        encode_reference(scene)
    assert info.value.faces == 2


def test_it_refuses_a_reference_without_a_face():
    with pytest.raises(FaceCountError, match="no face") as info:
        encode_reference(np.full((480, 640, 3), 127, np.uint8))
    assert info.value.faces == 0


def test_it_refuses_to_verify_a_frame_with_two_faces(obama_ref):
    scene = side_by_side(photo("obama2.jpg"), photo("biden.jpg"), height=480)
    with pytest.raises(FaceCountError):
        verify_identity(scene, [obama_ref], threshold=THRESHOLD)


def test_it_finds_no_face_in_a_blank_or_noise_frame():
    rng = np.random.default_rng(1)
    assert detect_frame_faces(np.zeros((480, 640, 3), np.uint8)) == ()
    assert detect_frame_faces(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) == ()


def test_it_finds_the_one_face_in_a_large_roster_photo():
    # obama3.jpg is 1434x2333 with a face about 130 px wide once shrunk to 1024.
    assert encode_reference(photo("obama3.jpg")).shape == (128,)


def test_it_finds_a_small_face_in_a_reference(obama_ref):
    small = resize_to_height(photo("obama2.jpg"), 160)  # face about 45 px wide
    canvas = np.full((480, 640, 3), 200, np.uint8)
    canvas[100:260, 300 : 300 + small.shape[1]] = small
    encoding = encode_reference(canvas)
    assert face_distance(encoding, [obama_ref]) < 0.6  # same person, through a 45 px face


def test_it_finds_a_small_face_in_a_frame_by_upsampling():
    small = resize_to_height(photo("obama2.jpg"), 200)  # face about 55 px: missed without upsampling
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[50:250, 50 : 50 + small.shape[1]] = small
    assert len(detect_frame_faces(frame)) == 1


def test_it_refuses_empty_or_malformed_references():
    with pytest.raises(DetectionError, match="no reference"):
        verify_identity(photo("obama2.jpg"), [], threshold=THRESHOLD)
    with pytest.raises(DetectionError, match="128-d"):
        verify_identity(photo("obama2.jpg"), [np.zeros(12)], threshold=THRESHOLD)
    with pytest.raises(DetectionError, match="128-d"):
        verify_identity(photo("obama2.jpg"), [np.full(128, np.nan)], threshold=THRESHOLD)


def test_analyse_frame_reports_faces_and_identity(obama_ref):
    result = analyse_frame(webcam_photo("obama2.jpg"), references=[obama_ref], config=CheckConfig())
    assert result.faces == 1 and len(result.boxes) == 1
    assert result.identity is not None and result.identity.match
    assert {"faces", "identity", "camera"} <= result.checks_run
    assert not result.camera.blocked


def test_analyse_frame_reports_a_mismatch(obama_ref):
    result = analyse_frame(webcam_photo("biden.jpg"), references=[obama_ref], config=CheckConfig())
    assert result.faces == 1
    assert result.identity is not None and not result.identity.match


def test_analyse_frame_finds_the_candidate_among_two_faces(obama_ref):
    scene = side_by_side(photo("biden.jpg"), photo("obama2.jpg"), height=480)
    result = analyse_frame(scene, references=[obama_ref], config=CheckConfig())
    assert result.faces == 2
    assert result.identity is not None and result.identity.match


def test_analyse_frame_skips_what_is_disabled(obama_ref):
    config = CheckConfig(enabled=("camera",))
    result = analyse_frame(webcam_photo("obama2.jpg"), references=[obama_ref], config=config)
    assert result.checks_run == frozenset({"camera"})
    assert result.identity is None


def test_analyse_frame_without_references_skips_identity():
    result = analyse_frame(webcam_photo("obama2.jpg"), references=[], config=CheckConfig())
    assert result.faces == 1 and result.identity is None and "identity" not in result.checks_run
