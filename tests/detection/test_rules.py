"""Debouncing frames into events: plain functions, no Django."""

from detection.core.config import CheckConfig
from detection.core.rules import conditions_from, debounce
from detection.core.types import Box, DetectedObject, FrameAnalysis, IdentityResult

CONFIG = CheckConfig()
FACE = Box(100, 300, 300, 100)


def _run(frames, interval=2.0, config=CONFIG):
    state, actions = None, []
    for now, analysis in frames:
        acts, state = debounce(
            state, conditions_from(analysis, config), now=now, interval=interval, config=config
        )
        actions.extend((a.kind, a.key, a.started_at, a.ended_at) for a in acts)
    return actions, state


def test_it_ignores_a_single_frame_without_a_face():
    actions, _ = _run([(0, FrameAnalysis(faces=0)), (2, FrameAnalysis(faces=1, boxes=(FACE,)))])
    assert actions == []


def test_it_makes_one_event_of_a_face_missing_for_four_seconds_and_backdates_it():
    frames = [(t, FrameAnalysis(faces=0)) for t in (10, 12, 14, 16)] + [
        (t, FrameAnalysis(faces=1)) for t in (18, 20)
    ]
    actions, state = _run(frames)
    assert actions == [
        ("open", "no_face", 10, 12),
        ("extend", "no_face", 10, 14),
        ("extend", "no_face", 10, 16),
        ("close", "no_face", 10, 16),
    ]
    assert state["open"] == {}


def test_it_bridges_one_missed_detection_inside_a_condition():
    frames = [
        (0, FrameAnalysis(faces=2)),
        (2, FrameAnalysis(faces=2)),
        (4, FrameAnalysis(faces=1)),
        (6, FrameAnalysis(faces=2)),
    ]
    actions, _ = _run(frames)
    assert [a[0] for a in actions] == ["open", "extend"]


def test_it_ignores_a_replayed_or_older_frame():
    state = None
    acts, state = debounce(
        state, conditions_from(FrameAnalysis(faces=0), CONFIG), now=5, interval=2, config=CONFIG
    )
    again, same = debounce(
        state, conditions_from(FrameAnalysis(faces=0), CONFIG), now=5, interval=2, config=CONFIG
    )
    assert again == [] and same == state


def test_it_records_distance_and_threshold_of_a_mismatch():
    stranger = FrameAnalysis(faces=1, identity=IdentityResult(distance=0.71, threshold=0.5, match=False))
    actions, state = _run([(0, stranger), (2, stranger)])
    conditions = conditions_from(stranger, CONFIG)
    assert conditions[0].details == {"distance": 0.71, "threshold": 0.5}
    assert actions[0][:2] == ("open", "identity_mismatch")


def test_it_names_each_prohibited_object_and_leaves_a_visible_second_face_to_multiple_faces():
    phone = DetectedObject("cell phone", 0.8, Box(0, 50, 50, 0))
    person = DetectedObject("person", 0.9, Box(0, 50, 50, 0))
    alone = conditions_from(FrameAnalysis(faces=1, objects=(phone, person)), CONFIG)
    assert sorted(c.key for c in alone) == ["prohibited_object:cell phone", "prohibited_object:person"]
    crowd = conditions_from(FrameAnalysis(faces=2, objects=(phone, person)), CONFIG)
    assert sorted(c.key for c in crowd) == ["multiple_faces", "prohibited_object:cell phone"]


def test_it_reports_only_the_blocked_camera_when_it_is_covered():
    from detection.core.types import CameraState

    covered = FrameAnalysis(faces=0, camera=CameraState(blocked=True, reason="dark", brightness=3.0))
    assert [c.type for c in conditions_from(covered, CONFIG)] == ["camera_blocked"]


def test_it_honours_disabled_checks():
    config = CheckConfig(enabled=("faces",))
    stranger = FrameAnalysis(faces=1, identity=IdentityResult(distance=0.9, threshold=0.5, match=False))
    assert conditions_from(stranger, config) == []
