"""From a queued frame to stored, pushed events. Runs in a worker (or the
embedded thread pool), never on the event loop.

The CV lives in ``detection.core``; the persistence in ``exams.services``.
This module only moves data between them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
from django.db import transaction

from detection.core import (
    CameraState,
    DetectionError,
    FaceCountError,
    StreamState,
    analyse_stream,
    camera_state,
    conditions_from,
    debounce,
    decode_image,
    encode_reference,
    verify_identity,
)
from exams import live, services
from exams.analysis import intake
from exams.analysis.queue import frame_queue
from exams.models import ExamSession

log = logging.getLogger(__name__)

# Verification attempts after which a mismatch no longer blocks the candidate
# but is flagged for the proctor and reviewer instead.
MAX_VERIFICATION_ATTEMPTS = 3


def _references(session: ExamSession) -> list[np.ndarray]:
    return [np.asarray(e, dtype=np.float64) for e in session.candidate.reference_encodings]


def _load(session_id: str) -> ExamSession | None:
    return ExamSession.objects.select_related("candidate__exam").filter(public_id=session_id).first()


def analyse_next_frame(session_id: str) -> str:
    try:
        return _analyse_next_frame(session_id)
    finally:
        intake.finished(intake.FRAME, session_id)


def _analyse_next_frame(session_id: str) -> str:
    frame = frame_queue().take(intake.FRAME, session_id)
    if frame is None:
        return "no frame"
    session = _load(session_id)
    if session is None or not session.is_live or session.paused:
        return "session not live"
    try:
        image = decode_image(frame.data)
    except DetectionError as exc:
        log.warning("session %s: frame %s refused by decoder: %s", session_id, frame.seq, exc)
        return "undecodable"
    exam = session.exam
    config = exam.check_config()
    references = _references(session)

    with transaction.atomic():
        session = ExamSession.objects.select_for_update().select_related("candidate__exam").get(pk=session.pk)
        if frame.seq <= session.last_frame_seq:
            return "already analysed"
        state = session.analysis_state or {}
        analysis, stream_state = analyse_stream(
            image,
            references=references,
            config=config,
            state=StreamState.from_json(state.get("stream")),
            now=frame.received_at,
        )
        actions, rule_state = debounce(
            state.get("rules"),
            conditions_from(analysis, config),
            now=frame.received_at,
            interval=exam.frame_interval,
            config=config,
        )
        session.analysis_state = {"stream": stream_state.to_json(), "rules": rule_state}
        session.last_frame_seq = frame.seq
        session.last_frame_at = datetime.fromtimestamp(frame.received_at, tz=UTC)
        session.frames_analysed += 1
        session.last_faces = analysis.faces
        session.save(
            update_fields=[
                "analysis_state",
                "last_frame_seq",
                "last_frame_at",
                "frames_analysed",
                "last_faces",
            ]
        )
        events = services.events_apply(session=session, actions=actions, evidence_jpeg=frame.data)
        transaction.on_commit(lambda: live.session_changed(session, events=events, analysis=analysis))
    return f"analysed, {len(actions)} event actions"


def verify_next_photo(session_id: str) -> str:
    try:
        return _verify_next_photo(session_id)
    finally:
        intake.finished(intake.VERIFY, session_id)


def _verify_next_photo(session_id: str) -> str:
    frame = frame_queue().take(intake.VERIFY, session_id)
    if frame is None:
        return "no photo"
    session = _load(session_id)
    if session is None or session.state != ExamSession.State.CONSENTED:
        return "not awaiting verification"
    try:
        image = decode_image(frame.data)
    except DetectionError as exc:
        services.verification_result(session=session, status="bad_image", message=str(exc))
        return "bad image"
    candidate = session.candidate
    references = _references(session)
    threshold = session.exam.check_config().identity_threshold
    try:
        if not references:
            encoding = encode_reference(image)
            services.verification_capture_reference(session=session, encoding=encoding, photo_jpeg=frame.data)
            return "reference captured"
        result = verify_identity(image, references, threshold=threshold)
    except FaceCountError as exc:
        status = "no_face" if exc.faces == 0 else "multiple_faces"
        message = _face_count_message(exc.faces, camera_state(image))
        services.verification_result(session=session, status=status, message=message)
        return status
    services.verification_compare(
        session=session,
        distance=result.distance,
        threshold=result.threshold,
        match=result.match,
        photo_jpeg=frame.data,
        give_up_after=MAX_VERIFICATION_ATTEMPTS,
    )
    log.info("session %s verified against %s: distance %.3f", session_id, candidate.pk, result.distance)
    return "compared"


def _face_count_message(faces: int, camera: CameraState) -> str:
    """Why no usable face was found, as far as the picture tells, and what to do about it."""
    if faces > 1:
        return f"We see {faces} faces. Only you should be in view of the camera. Try again."
    if camera.reason == "dark":
        return (
            f"Your picture is too dark to find a face (brightness {camera.brightness:.0f} of 255). "
            "Turn on a light in front of you, facing you, and try again."
        )
    if camera.reason in ("flat", "covered"):
        return (
            "Your picture shows almost nothing: is the camera covered, or pointed at a wall? "
            "Uncover the lens, face the camera and try again."
        )
    return (
        "We could not find your face. Face the camera with your whole face in view, make sure it is lit "
        "from the front (not only from a window behind you), and try again."
    )
