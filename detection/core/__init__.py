"""Framework-free detection core: an image in, frozen dataclasses out.

Importing this package is cheap: face_recognition, dlib and ai_edge_litert are
loaded on first use by the checks that need them, once per process. Nothing
here imports Django, Celery or Channels.
"""

from .analyse import StreamState, analyse_frame, analyse_stream
from .camera import camera_state
from .config import ALL_CHECKS, PROHIBITED_LABELS, CheckConfig
from .faces import encode_reference, verify_identity
from .image import crop_to, decode_image, encode_jpeg, prepare_image
from .rules import EVENT_TYPES, SEVERITY, EventAction, conditions_from, debounce
from .types import (
    Box,
    CameraState,
    DetectedObject,
    DetectionError,
    FaceCountError,
    FrameAnalysis,
    HeadPose,
    IdentityResult,
    InvalidImage,
)

__all__ = [
    "ALL_CHECKS",
    "EVENT_TYPES",
    "SEVERITY",
    "EventAction",
    "PROHIBITED_LABELS",
    "Box",
    "CameraState",
    "CheckConfig",
    "DetectedObject",
    "DetectionError",
    "FaceCountError",
    "FrameAnalysis",
    "HeadPose",
    "IdentityResult",
    "InvalidImage",
    "StreamState",
    "analyse_frame",
    "analyse_stream",
    "camera_state",
    "conditions_from",
    "crop_to",
    "debounce",
    "decode_image",
    "encode_jpeg",
    "encode_reference",
    "prepare_image",
    "verify_identity",
]
