"""From a queued frame to stored, pushed events. Runs in a worker (or the
embedded thread pool), never on the event loop.

The CV lives in ``detection.core``; the persistence in ``exams.services``.
This module only moves data between them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

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
    encode_jpeg,
    encode_reference,
    verify_identity,
)
from exams import clips, live, services
from exams.analysis import intake
from exams.analysis.pacing import SLOW_DOWN_WAIT, pacing
from exams.analysis.queue import frame_queue
from exams.models import ExamSession, VerificationStatus

log = logging.getLogger(__name__)

# Verification attempts after which a mismatch no longer blocks the candidate
# but is flagged for the proctor and reviewer instead.
MAX_VERIFICATION_ATTEMPTS = 3


# While analysis runs behind (this frame waited, or pages are being slowed
# down), a stream's first identity check may come up to this many seconds
# after its first frame (see detection.core.analyse). At 9:00 every first frame
# of an exam hall runs every check, and the identity encoding is most of that
# cost: put off and spread, it no longer queues every frame behind it. The
# candidate's identity was checked at verification just before.
FIRST_IDENTITY_WITHIN_SECONDS = 12.0


def _references(session: ExamSession) -> list[np.ndarray]:
    return [np.asarray(e, dtype=np.float64) for e in session.candidate.reference_encodings]


def _covered(session: ExamSession, received_at: float) -> float:
    """The time this frame stands for, in the rules' timing model. Normally the
    exam's interval; under overload, when the session's frames are analysed
    further apart (latest wins, and the page is asked to slow down), each
    analysed frame stands for the gap since the last one, up to the slowest
    pace the page is asked for. Otherwise a condition seen on two analysed
    frames 6 s apart would count as gone in between, and no event would ever
    open while the server is short of capacity."""
    interval = session.exam.frame_interval
    if session.last_frame_at is None:
        return interval
    gap = received_at - session.last_frame_at.timestamp()
    return max(interval, min(gap, interval * intake.SLOWEST_PACE))


def _load(session_id: str) -> ExamSession | None:
    try:  # get(), not first(): no ORDER BY to build and run for a unique key
        return ExamSession.objects.select_related("candidate__exam").get(public_id=session_id)
    except ExamSession.DoesNotExist:
        return None


def _finishing(kind: str, session_id: str, owner: str, work: Callable[[str], str]) -> str:
    """Run one analysis, then tell the queue it is done (``failed`` if it raised,
    SoftTimeLimitExceeded included), releasing the busy flag ``owner`` holds."""
    failed = True
    try:
        result = work(session_id)
        failed = False
        return result
    finally:
        intake.finished(kind, session_id, owner=owner, failed=failed)


def analyse_next_frame(session_id: str, *, owner: str = "") -> str:
    return _finishing(intake.FRAME, session_id, owner, _analyse_next_frame)


def _analyse_next_frame(session_id: str) -> str:
    frame = frame_queue().take(intake.FRAME, session_id)
    if frame is None:
        return "no frame"
    waited = time.time() - frame.received_at
    factor = pacing().report(waited)
    behind = waited > SLOW_DOWN_WAIT or factor > 1.0
    session = _load(session_id)
    if session is None or not session.is_live or session.paused:
        return "session not live"
    if frame.seq <= session.last_frame_seq:
        return "already analysed"
    try:
        image = decode_image(frame.data)
    except DetectionError as exc:
        log.warning("session %s: frame %s refused by decoder: %s", session_id, frame.seq, exc)
        return "undecodable"
    exam = session.exam
    config = exam.check_config()
    # Computer vision runs outside any transaction and holds no lock. Only one
    # analysis of a session runs at a time (the queue's busy flag), so the state
    # read here is the latest; the sequence check under the lock below drops
    # the result if a newer frame got there first anyway.
    state = session.analysis_state or {}
    analysis, stream_state = analyse_stream(
        image,
        references=_references(session),
        config=config,
        state=StreamState.from_json(state.get("stream")),
        now=frame.received_at,
        interval=exam.frame_interval,
        first_identity_within=FIRST_IDENTITY_WITHIN_SECONDS if behind else 0.0,
    )
    actions, rule_state = debounce(
        state.get("rules"),
        conditions_from(analysis, config),
        now=frame.received_at,
        interval=_covered(session, frame.received_at),
        config=config,
    )
    thumbnail, picture_at = None, state.get("picture_at")
    if live.picture_due(picture_at, frame.received_at):
        small = encode_jpeg(image, size=live.THUMBNAIL_SIZE)
        thumbnail = live.picture_keep(session_id, frame=frame.data, thumbnail=small)
        picture_at = frame.received_at
    events = services.analysis_record(
        session=session,
        seq=frame.seq,
        received_at=frame.received_at,
        state={"stream": stream_state.to_json(), "rules": rule_state, "picture_at": picture_at},
        faces=analysis.faces,
        actions=actions,
        evidence_jpeg=frame.data,
        thumbnail=thumbnail,
    )
    if events is None:
        return "already analysed"
    clips.clip_frame_seen(
        session_id,
        taken_at=frame.received_at,
        jpeg=frame.data,
        opened=[e for e in events if e.is_open],
        reencode=lambda: encode_jpeg(image, size=clips.CLIP_SIZE),
    )
    return f"analysed, {len(actions)} event actions"


def verify_next_photo(session_id: str, *, owner: str = "") -> str:
    return _finishing(intake.VERIFY, session_id, owner, _verify_next_photo)


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
        services.verification_result(session=session, status=VerificationStatus.BAD_IMAGE, message=str(exc))
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
        status = VerificationStatus.NO_FACE if exc.faces == 0 else VerificationStatus.MULTIPLE_FACES
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
