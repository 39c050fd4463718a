"""Generate an evaluation set from the committed photos, and score the checks on one.

``make_evalset`` writes 640x480 JPEG frames plus ``labels.csv`` (file, faces,
identity_of, objects, blocked, source) and the reference photos under
``references/``. Every variant is made in code from the committed photos
(tests/data/photos, passed in as ``photos``), so anyone can regenerate the
same set; nothing generated is committed.

``evaluate`` runs ``analyse_frame`` on every image and reports precision and
recall per check, the confusion of face counts, and a threshold sweep of
identity (FAR/FRR). Pairs where the image derives from the reference photo
itself are left out of the sweep, as they would flatter it.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

logger = logging.getLogger(__name__)

FRAME = (640, 480)
# Face box (top, right, bottom, left) in each original photo, and whose face it is;
# read once off the photos with the reference detector.
PHOTOS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "obama.jpg": ("obama", (158, 625, 405, 378)),
    "obama2.jpg": ("obama", (312, 428, 573, 166)),
    "obama3.jpg": ("obama", (285, 936, 579, 642)),
    "biden.jpg": ("biden", (211, 766, 545, 433)),
    "astronaut.png": ("collins", (76, 265, 166, 175)),
    "obama_partial_face.jpg": ("obama", (158, 212, 405, 0)),
    "obama_partial_face2.jpg": ("obama", (154, 551, 361, 383)),
}
REFERENCES = {"obama": "obama.jpg", "biden": "biden.jpg"}
COLUMNS = ("file", "faces", "identity_of", "objects", "blocked", "source")


def _read(photos: Path, name: str) -> np.ndarray:
    bgr = cv2.imread(str(photos / name), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(photos / name)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _webcam(
    image: np.ndarray, face: tuple[int, int, int, int], size: tuple[int, int] = FRAME
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Crop to the frame's aspect around the face and scale to ``size``.

    Returns the frame and the face box in it."""
    height, width = image.shape[:2]
    top, right, bottom, left = face
    target = size[0] / size[1]
    if width / height > target:
        crop_w, crop_h = round(height * target), height
    else:
        crop_w, crop_h = width, round(width / target)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0 = int(min(max(0, cx - crop_w / 2), width - crop_w))
    y0 = int(min(max(0, cy - crop_h / 2), height - crop_h))
    scale = size[0] / crop_w
    frame = cv2.resize(image[y0 : y0 + crop_h, x0 : x0 + crop_w], size, interpolation=cv2.INTER_AREA)
    box = (
        round((top - y0) * scale),
        round((right - x0) * scale),
        round((bottom - y0) * scale),
        round((left - x0) * scale),
    )
    return frame, box


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def _jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _backlight(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A window behind the candidate: the background blown out, the face in shadow."""
    top, right, bottom, left = box
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    cx, cy = (left + right) / 2, (top + bottom) / 2
    rx, ry = (right - left) * 1.2, (bottom - top) * 2.0
    person = np.clip(1.5 - np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2), 0, 1)[..., None]
    out = image.astype(np.float32)
    bright = np.minimum(out * 1.8 + 90, 255)
    dim = out * 0.45
    return np.clip(bright * (1 - person) + dim * person, 0, 255).astype(np.uint8)


def _occlude(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A hand over the mouth and chin (the lower third of the face)."""
    top, right, bottom, left = box
    out = image.copy()
    y0 = top + (bottom - top) * 2 // 3
    cv2.rectangle(out, (left - 5, y0), (right + 5, bottom + 10), (150, 170, 200), -1)
    return out


def _glasses(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Dark glasses-like bars over both eyes."""
    top, right, bottom, left = box
    out = image.copy()
    w, h = right - left, bottom - top
    y0, y1 = top + int(h * 0.28), top + int(h * 0.45)
    cv2.rectangle(out, (left + int(w * 0.12), y0), (left + int(w * 0.45), y1), (25, 25, 25), -1)
    cv2.rectangle(out, (left + int(w * 0.55), y0), (left + int(w * 0.88), y1), (25, 25, 25), -1)
    cv2.line(
        out, (left + int(w * 0.45), (y0 + y1) // 2), (left + int(w * 0.55), (y0 + y1) // 2), (25, 25, 25), 3
    )
    return out


def _small(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    face_px: int,
    background: np.ndarray,
    x: int | None = None,
) -> np.ndarray:
    """The person scaled so the face is ``face_px`` wide, on a background frame."""
    top, right, bottom, left = box
    scale = face_px / max(right - left, 1)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out = background.copy()
    h, w = min(small.shape[0], FRAME[1]), min(small.shape[1], FRAME[0])
    y0, x0 = FRAME[1] - h, (FRAME[0] - w) // 2 if x is None else x
    out[y0 : y0 + h, x0 : x0 + w] = small[:h, :w]
    return out


@dataclass(frozen=True)
class Item:
    file: str
    image: np.ndarray  # BGR
    faces: int
    identity_of: str
    objects: str
    blocked: int
    source: str


def generate(photos: Path) -> list[Item]:
    """The evaluation items, as BGR frames with their labels."""
    rng = np.random.default_rng(0)
    items: list[Item] = []
    originals = {name: cv2.cvtColor(_read(photos, name), cv2.COLOR_RGB2BGR) for name in PHOTOS}
    room = cv2.resize(originals["obama.jpg"][0:400, 0:320], FRAME, interpolation=cv2.INTER_AREA)
    frames = {name: _webcam(originals[name], PHOTOS[name][1]) for name in PHOTOS}

    variants: dict[str, Callable[[np.ndarray, tuple[int, int, int, int]], np.ndarray]] = {
        "plain": lambda im, b: im,
        "dim": lambda im, b: (im * 0.45).astype(np.uint8),
        "backlit": _backlight,
        "blur": lambda im, b: cv2.GaussianBlur(im, (0, 0), 3),
        "jpeg30": lambda im, b: _jpeg_roundtrip(im, 30),
        "rot+15": lambda im, b: _rotate(im, 15),
        "rot-15": lambda im, b: _rotate(im, -15),
        "occluded": _occlude,
        "glasses": _glasses,
        "noise": lambda im, b: np.clip(im + rng.normal(0, 12, im.shape), 0, 255).astype(np.uint8),
    }
    for name, (person, _) in PHOTOS.items():
        frame, box = frames[name]
        stem = Path(name).stem
        for variant, make in variants.items():
            items.append(Item(f"{stem}-{variant}.jpg", make(frame, box), 1, person, "", 0, name))
        for face_px in (90, 60, 45):
            small = _small(originals[name], PHOTOS[name][1], face_px, room)
            items.append(Item(f"{stem}-face{face_px}.jpg", small, 1, person, "", 0, name))
        dark = np.clip(frame * 0.07 + rng.normal(0, 1.5, frame.shape), 0, 255).astype(np.uint8)
        # A face at 7 % light is still a face in view: not blocked (camera.py: dark never
        # overrides a face that is found).
        items.append(Item(f"{stem}-dark.jpg", dark, 1, person, "", 0, name))

    # Two people: every pair of different sitters, side by side.
    pairs = [
        ("obama.jpg", "biden.jpg"),
        ("biden.jpg", "obama2.jpg"),
        ("astronaut.png", "obama3.jpg"),
        ("biden.jpg", "astronaut.png"),
    ]
    half = (FRAME[0] // 2, FRAME[1])
    for left_name, right_name in pairs:
        left, _ = _webcam(originals[left_name], PHOTOS[left_name][1], half)
        right, _ = _webcam(originals[right_name], PHOTOS[right_name][1], half)
        file = f"pair-{Path(left_name).stem}-{Path(right_name).stem}.jpg"
        items.append(Item(file, np.hstack([left, right]), 2, "", "person", 0, f"{left_name}+{right_name}"))
    # A candidate with someone small in the back.
    scene = _small(originals["biden.jpg"], PHOTOS["biden.jpg"][1], 70, room, x=20)
    front, _ = frames["obama2.jpg"]
    scene[:, 300:] = front[:, 150:490]
    items.append(Item("pair-obama2-small-biden.jpg", scene, 2, "", "person", 0, "obama2.jpg+biden.jpg"))

    # Nobody, and a blocked camera.
    items.append(Item("empty-room.jpg", room, 0, "", "", 0, "obama.jpg"))
    items.append(Item("empty-room-dim.jpg", (room * 0.5).astype(np.uint8), 0, "", "", 0, "obama.jpg"))
    for level in (0, 12, 128, 240):
        flat = np.clip(np.full((480, 640, 3), float(level)) + rng.normal(0, 2, (480, 640, 3)), 0, 255).astype(
            np.uint8
        )
        items.append(Item(f"blocked-flat-{level}.jpg", flat, 0, "", "", 1, ""))
    ys, xs = np.mgrid[0:480, 0:640]
    glow = np.exp(-((xs - 320) ** 2 + (ys - 240) ** 2) / (2 * 250.0**2))[..., None]
    finger = np.clip(np.array([50.0, 70.0, 170.0]) * glow + 20 + rng.normal(0, 3, (480, 640, 3)), 0, 255)
    items.append(Item("blocked-finger.jpg", finger.astype(np.uint8), 0, "", "", 1, ""))
    paper = (np.array([200.0, 190.0, 185.0]) * (0.5 + 0.5 * ys / 480)[..., None]).astype(np.uint8)
    items.append(Item("blocked-paper.jpg", paper, 0, "", "", 1, ""))
    return items


def make_evalset(photos: Path, out: Path) -> int:
    """Write the set to ``out``; returns the number of images."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "references").mkdir(exist_ok=True)
    items = generate(photos)
    with (out / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for item in items:
            if not cv2.imwrite(str(out / item.file), item.image, [cv2.IMWRITE_JPEG_QUALITY, 90]):
                raise OSError(f"could not write {out / item.file}")
            writer.writerow(
                [item.file, item.faces, item.identity_of, item.objects, item.blocked, item.source]
            )
    for person, name in REFERENCES.items():
        (out / "references" / f"{person}{Path(name).suffix}").write_bytes((photos / name).read_bytes())
    return len(items)


# ---------------------------------------------------------------- scoring


def _pr(tp: int, fp: int, fn: int) -> dict[str, Any]:
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
    }


def _bucket(n: int) -> str:
    return str(n) if n < 2 else "2+"


def evaluate(directory: Path, thresholds: Sequence[float] | None = None) -> dict[str, Any]:
    """Score ``analyse_frame`` on an evaluation directory (see the module docstring)."""
    from detection.core.analyse import analyse_frame
    from detection.core.config import CheckConfig
    from detection.core.faces import face_distance
    from detection.core.image import decode_image
    from detection.core.types import DetectionError

    thresholds = thresholds or [round(0.30 + 0.025 * i, 3) for i in range(17)]
    from detection.core.faces import encode_reference

    references: dict[str, np.ndarray] = {}
    for path in sorted((directory / "references").glob("*")):
        references[path.stem] = encode_reference(decode_image(path.read_bytes()))
    reference_sources = {person: REFERENCES.get(person, "") for person in references}
    config = CheckConfig()
    with (directory / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))

    confusion: Counter[tuple[str, str]] = Counter()
    counts = {k: [0, 0, 0] for k in ("no_face", "multiple_faces", "camera_blocked", "person")}
    genuine: list[float] = []
    impostor: list[float] = []
    missed_faces = 0
    per_image = []
    from detection.core.faces import encode_face

    for row in rows:
        image = decode_image((directory / row["file"]).read_bytes())
        analysis = analyse_frame(image, references=[], config=config)
        truth_faces, blocked = int(row["faces"]), row["blocked"] == "1"
        predicted_blocked = analysis.camera.blocked
        _count(counts["camera_blocked"], blocked, predicted_blocked)
        labels = set(filter(None, row["objects"].split(";")))
        found = {o.label for o in analysis.objects}
        _count(counts["person"], "person" in labels, "person" in found)
        record = {
            "file": row["file"],
            "faces": analysis.faces,
            "blocked": predicted_blocked,
            "objects": sorted(found),
        }
        if not blocked:
            confusion[(_bucket(truth_faces), _bucket(analysis.faces))] += 1
            _count(counts["no_face"], truth_faces == 0, analysis.faces == 0 and not predicted_blocked)
            _count(counts["multiple_faces"], truth_faces >= 2, analysis.faces >= 2)
        person = row["identity_of"]
        if not blocked and truth_faces == 1 and person:
            if analysis.faces != 1:
                missed_faces += person in references
            else:
                try:
                    encoding = encode_face(image, analysis.boxes[0])
                except DetectionError:
                    continue
                for name, ref in references.items():
                    if row["source"] == reference_sources[name]:
                        continue  # the image is a variant of this very reference photo
                    distance = face_distance(encoding, [ref])
                    (genuine if name == person else impostor).append(distance)
                    record[f"distance_{name}"] = round(distance, 4)
        per_image.append(record)

    sweep = []
    for t in thresholds:
        far = sum(d <= t for d in impostor) / len(impostor) if impostor else None
        frr = sum(d > t for d in genuine) / len(genuine) if genuine else None
        sweep.append({"threshold": t, "far": _round(far), "frr": _round(frr)})
    return {
        "images": len(rows),
        "checks": {k: _pr(*v) for k, v in counts.items()},
        "face_count_confusion": {f"{t}->{p}": n for (t, p), n in sorted(confusion.items())},
        "identity": {
            "genuine_pairs": len(genuine),
            "impostor_pairs": len(impostor),
            "faces_not_found_for_identity": missed_faces,
            "genuine_distance_max": _round(max(genuine) if genuine else None),
            "impostor_distance_min": _round(min(impostor) if impostor else None),
            "sweep": sweep,
        },
        "per_image": per_image,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _count(counter: list[int], truth: bool, predicted: bool) -> None:
    if truth and predicted:
        counter[0] += 1
    elif predicted:
        counter[1] += 1
    elif truth:
        counter[2] += 1
