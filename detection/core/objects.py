"""Object detection: a small interface and the TFLite SSD MobileNet v2 backend.

The default model is the vendored Coral SSD MobileNet v2 COCO (uint8, 300x300,
with the detection post-processing op), run on one thread by ai_edge_litert.
``OBJECT_MODEL`` (a path to another ``.tflite`` with the same four outputs)
replaces it; ``OBJECT_MODEL_SHA256`` pins that file and ``OBJECT_LABELS``
names its label file ("<id> <label>" per line). The vendored files are always
checked against their recorded sha256.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .types import Box, DetectedObject

logger = logging.getLogger(__name__)

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_MODEL = WEIGHTS / "mobilenet_ssd_v2_coco_quant_postprocess.tflite"
DEFAULT_LABELS = WEIGHTS / "coco_labels.txt"
KNOWN_SHA256 = {
    DEFAULT_MODEL.name: "7046f31a72ec0045a57b94199144c96cf5840c7dc106b808b64a1ed5559aa0cd",
    DEFAULT_LABELS.name: "93f235896748537fc71325a070ee32e9a0afda2481ceb943559325619763fa6d",
}
# Detections below this never leave the detector; the exam's object_min_score
# then decides what counts.
DETECT_FLOOR = 0.3


class ModelFileError(RuntimeError):
    """A model or label file is missing or is not the file that was vetted."""


class ObjectDetector(Protocol):
    def detect(self, image: np.ndarray) -> tuple[DetectedObject, ...]:
        """Objects in an RGB uint8 image, boxes in its pixel coordinates."""
        ...


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, expected: str | None) -> Path:
    """``path`` if it exists and, when ``expected`` is given, has that sha256."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    if expected:
        actual = sha256_of(path)
        if actual != expected.lower():
            raise ModelFileError(
                f"{path} has sha256 {actual}, expected {expected}; "
                "the file is corrupt or not the vetted one (see detection/weights/README.md)"
            )
    return path


def read_labels(path: Path) -> dict[int, str]:
    labels: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, name = line.strip().partition(" ")
        if not key.isdigit() or not name.strip():
            raise ModelFileError(f"{path}:{number}: expected '<id> <label>'")
        labels[int(key)] = name.strip()
    return labels


class TFLiteSSD:
    """An SSD with TFLite's detection post-processing (boxes, classes, scores, count)."""

    def __init__(
        self, model: Path, labels: Path, *, model_sha256: str | None, labels_sha256: str | None
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.model_path = verified(model, model_sha256)
        self.labels = read_labels(verified(labels, labels_sha256))
        self._interpreter = Interpreter(model_path=str(self.model_path), num_threads=1)
        self._interpreter.allocate_tensors()
        (inp,) = self._interpreter.get_input_details()
        if inp["dtype"] != np.uint8 or len(inp["shape"]) != 4 or inp["shape"][3] != 3:
            raise ModelFileError(
                f"{model}: expected a uint8 NHWC RGB input, got {inp['dtype']} {inp['shape']}"
            )
        self._input = inp["index"]
        self.size = (int(inp["shape"][2]), int(inp["shape"][1]))
        outputs = self._interpreter.get_output_details()
        if len(outputs) != 4:
            raise ModelFileError(f"{model}: expected the 4 SSD post-processing outputs, got {len(outputs)}")
        # Outputs are named TFLite_Detection_PostProcess[:1|:2|:3]: boxes, classes, scores, count.
        ordered = sorted(outputs, key=lambda o: o["name"])
        self._outputs = [o["index"] for o in ordered]
        self._lock = threading.Lock()  # an interpreter is not re-entrant

    def detect(self, image: np.ndarray) -> tuple[DetectedObject, ...]:
        height, width = image.shape[:2]
        tensor = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)[None]
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            boxes, classes, scores, count = (self._interpreter.get_tensor(i).copy() for i in self._outputs)
        found = []
        for i in range(min(int(count.reshape(-1)[0]), boxes.shape[1])):
            score = float(scores[0, i])
            if score < DETECT_FLOOR:
                continue
            label = self.labels.get(int(classes[0, i]))
            if label is None:
                continue
            ymin, xmin, ymax, xmax = np.clip(boxes[0, i], 0.0, 1.0)
            box = Box(
                top=round(ymin * height),
                right=round(xmax * width),
                bottom=round(ymax * height),
                left=round(xmin * width),
            )
            found.append(DetectedObject(label=label, score=round(score, 4), box=box))
        found.sort(key=lambda o: o.score, reverse=True)
        return tuple(found)


_detectors: dict[tuple[str, str], ObjectDetector] = {}
_lock = threading.Lock()


def object_detector() -> ObjectDetector:
    """The process's detector, chosen by OBJECT_MODEL (default: the vendored SSD)."""
    model = Path(os.environ.get("OBJECT_MODEL") or DEFAULT_MODEL)
    labels = Path(os.environ.get("OBJECT_LABELS") or DEFAULT_LABELS)
    key = (str(model), str(labels))
    detector = _detectors.get(key)
    if detector is not None:
        return detector
    with _lock:
        if key not in _detectors:
            model_sha = KNOWN_SHA256.get(model.name) if model.parent == WEIGHTS else None
            model_sha = os.environ.get("OBJECT_MODEL_SHA256") or model_sha
            labels_sha = KNOWN_SHA256.get(labels.name) if labels.parent == WEIGHTS else None
            if model.suffix != ".tflite":
                raise ModelFileError(f"OBJECT_MODEL must name a .tflite file, got {model}")
            _detectors[key] = TFLiteSSD(model, labels, model_sha256=model_sha, labels_sha256=labels_sha)
            logger.info("loaded object detector %s", model)
    return _detectors[key]


def _centre_in(point: tuple[float, float], box: Box) -> bool:
    x, y = point
    return box.left <= x <= box.right and box.top <= y <= box.bottom


def _iou(a: Box, b: Box) -> float:
    inter_w = max(0, min(a.right, b.right) - max(a.left, b.left))
    inter_h = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = inter_w * inter_h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def prohibited_objects(
    detections: tuple[DetectedObject, ...],
    *,
    labels: tuple[str, ...],
    min_score: float,
    candidate_face: Box | None,
) -> tuple[DetectedObject, ...]:
    """The detections an exam forbids, with the candidate's own body removed.

    Every webcam frame shows a person: the candidate. "person" is reported
    only for someone else. The candidate's body is the best-scoring person box
    that contains the centre of the candidate's face (or, with no face in
    view, the best-scoring person box). Any other person box that also
    contains that face centre, or overlaps the candidate's body by IoU > 0.5,
    is taken for the same body seen twice and dropped too.
    """
    kept = [d for d in detections if d.label in labels and d.score >= min_score]
    people = [d for d in kept if d.label == "person"]
    if not people:
        return tuple(kept)
    centre = None
    if candidate_face is not None:
        centre = (
            (candidate_face.left + candidate_face.right) / 2,
            (candidate_face.top + candidate_face.bottom) / 2,
        )
        own = [p for p in people if _centre_in(centre, p.box)]
    else:
        own = people
    if not own:
        return tuple(kept)
    body = max(own, key=lambda p: p.score).box

    def same_body(obj: DetectedObject) -> bool:
        return obj.label == "person" and (
            (centre is not None and _centre_in(centre, obj.box)) or _iou(obj.box, body) > 0.5
        )

    return tuple(d for d in kept if not same_body(d))
