"""Head pose from landmarks.

What these tests can show: the angle maths is exact on projected model
points; real frontal portraits read near zero; mirroring a real face negates
its yaw; a visibly turned real portrait reads as turned; moving the camera
is not taken for a head turn. What they cannot show: the error against a
measured head angle - no photo with a known yaw ships with the repo. A 2D
warp of a frontal photo cannot stand in for a turned head either (a flat
picture has no nose depth), so none is used as ground truth here.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from detection_photos import webcam_photo

from detection.core import CheckConfig, HeadPose, analyse_frame
from detection.core.faces import detect_frame_faces
from detection.core.pose import MODEL_POINTS, head_pose, is_looking_away, pose_from_points


def _project(yaw: float, pitch: float, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    w, h = 640, 480
    rotation = (
        cv2.Rodrigues(np.array([0.0, math.radians(yaw), 0.0]))[0]
        @ cv2.Rodrigues(np.array([math.radians(pitch), 0.0, 0.0]))[0]
    )
    camera = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1.0]])
    translation = np.array([offset[0], offset[1], 2500.0])
    points, _ = cv2.projectPoints(MODEL_POINTS, cv2.Rodrigues(rotation)[0], translation, camera, None)
    return points.reshape(-1, 2)


@pytest.mark.parametrize("yaw,pitch", [(0, 0), (25, 0), (-40, 0), (0, 20), (0, -15), (-20, 10)])
def test_it_recovers_the_angles_of_a_projected_model(yaw, pitch):
    pose = pose_from_points(_project(yaw, pitch), (640, 480))
    assert pose is not None
    assert pose.yaw == pytest.approx(yaw, abs=2.0)
    assert pose.pitch == pytest.approx(pitch, abs=2.0)


def test_a_face_off_centre_looking_into_the_lens_faces_the_camera():
    # Head at the right of the picture, turned so that it faces the lens.
    offset_x = 600.0
    yaw_to_lens = math.degrees(math.atan2(offset_x, 2500.0))
    pose = pose_from_points(_project(yaw_to_lens, 0, (offset_x, 0.0)), (640, 480))
    assert pose is not None and abs(pose.yaw) < 1.0


def _pose(image: np.ndarray) -> HeadPose:
    faces = detect_frame_faces(image)
    assert len(faces) == 1
    pose = head_pose(image, faces[0].box)
    assert pose is not None
    return pose


def test_it_reads_a_frontal_portrait_as_facing_the_camera():
    pose = _pose(webcam_photo("obama.jpg"))
    assert abs(pose.yaw) < 8 and abs(pose.pitch) < 10
    assert not is_looking_away(pose, yaw_threshold=30, pitch_threshold=25)


@pytest.mark.parametrize("name", ["obama2.jpg", "biden.jpg", "obama3.jpg"])
def test_mirroring_a_face_negates_its_yaw(name):
    frame = webcam_photo(name)
    pose = _pose(frame)
    mirrored = _pose(np.ascontiguousarray(frame[:, ::-1]))
    assert abs(pose.yaw) > 8  # these portraits are visibly turned a little
    assert mirrored.yaw == pytest.approx(-pose.yaw, abs=5.0)
    assert mirrored.pitch == pytest.approx(pose.pitch, abs=5.0)


def test_it_reads_a_three_quarter_portrait_as_turned():
    pose = _pose(webcam_photo("obama2.jpg"))  # head turned to the image right, about a quarter turn
    assert pose.yaw > 15
    assert is_looking_away(pose, yaw_threshold=15, pitch_threshold=25)
    assert not is_looking_away(pose, yaw_threshold=45, pitch_threshold=25)


@pytest.mark.parametrize("degrees", [-10, 10])
def test_turning_the_camera_is_not_looking_away(degrees):
    frame = webcam_photo("obama.jpg")
    k = np.array([[640, 0, 320], [0, 640, 240], [0, 0, 1.0]])
    rotation = cv2.Rodrigues(np.array([0.0, math.radians(degrees), 0.0]))[0]
    turned = cv2.warpPerspective(
        frame, k @ rotation @ np.linalg.inv(k), (640, 480), borderMode=cv2.BORDER_REPLICATE
    )
    assert abs(_pose(turned).yaw) < 8


def test_analyse_frame_flags_looking_away_by_config():
    frame = webcam_photo("obama2.jpg")
    strict = analyse_frame(frame, references=[], config=CheckConfig(yaw_threshold=15))
    lenient = analyse_frame(frame, references=[], config=CheckConfig(yaw_threshold=45))
    assert strict.head_pose is not None and "head_pose" in strict.checks_run
    assert strict.looking_away and not lenient.looking_away


def test_it_treats_no_pose_as_not_looking_away():
    assert not is_looking_away(None, yaw_threshold=30, pitch_threshold=25)
