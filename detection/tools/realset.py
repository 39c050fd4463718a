"""The real-photo evaluation set (tests/data/real): build it, and score the checks on it.

Unlike ``evalset`` (pictures composed in code from three people's photos), this
set holds photographs of real scenes, each labelled by hand in ``labels.csv``:

- ``faces``, ``people``: faces in view, and people in view (a body seen from the
  back is a person without a face);
- ``phone``, ``book``, ``laptop``: 1 when one is in view (held, at the ear, or on
  a desk; ``note`` says which kind of phone);
- ``head``: the direction of the largest face, one of ``HEADS`` (``turned30`` is
  about 30 degrees, ``turned45`` 45 or more but not yet profile, ``down`` and ``up``
  a head bowed or raised well past reading); blank without a
  usable face;
- ``gaze_off`` (eyes off the camera), ``glasses``: 0/1;
- ``lighting``: ``normal``, ``dark`` or ``backlit``;
- ``monk``: the Monk skin tone scale (1-10) of the largest face where it can be
  judged, blank when it cannot (or the faces differ);
- ``source_repo``, ``source_path``, ``source_commit``, ``licence``,
  ``attribution``: where the file came from and under which terms; ``note``.

``build`` copies every file from its source repository (a clone or bare mirror
under one folder, named ``owner+name`` or ``owner/name``) at the recorded commit,
or from a local folder for rows without a commit, shrinks it to at most
``MAX_SIDE`` pixels on the longer side, and writes it as JPEG under the row's
``file`` name. ``evaluate_real`` runs ``analyse_frame`` on every photo, turns the
analysis into the conditions the product would raise (``rules.conditions_from``),
and reports precision and recall per check, overall and per condition.
"""

from __future__ import annotations

import csv
import logging
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

logger = logging.getLogger(__name__)

COLUMNS = (
    "file",
    "faces",
    "people",
    "phone",
    "book",
    "laptop",
    "head",
    "gaze_off",
    "glasses",
    "lighting",
    "monk",
    "source_repo",
    "source_path",
    "source_commit",
    "licence",
    "attribution",
    "note",
)
HEADS = ("frontal", "turned30", "turned45", "profile", "down", "up")
AWAY = ("turned45", "profile", "down", "up")  # a head the product should flag as looking away
LIGHTING = ("normal", "dark", "backlit")
MAX_SIDE = 1024
OBJECTS = {"phone": "cell phone", "book": "book", "laptop": "laptop"}
CONDITIONS = ("lighting", "glasses", "monk", "head")


def load_labels(directory: Path) -> list[dict[str, str]]:
    """The rows of ``directory/labels.csv``, checked against ``COLUMNS``."""
    with (directory / "labels.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"labels.csv columns are {reader.fieldnames}, expected {list(COLUMNS)}")
        rows = list(reader)
    for row in rows:
        if row["head"] and row["head"] not in HEADS:
            raise ValueError(f"{row['file']}: head {row['head']!r} is not one of {HEADS}")
        if row["lighting"] not in LIGHTING:
            raise ValueError(f"{row['file']}: lighting {row['lighting']!r} is not one of {LIGHTING}")
    return rows


# ---------------------------------------------------------------- building


def _mirror(root: Path, repo: str) -> Path:
    owner, name = repo.split("/", 1)
    for candidate in (
        root / f"{owner}+{name}" / "repo",
        root / f"{owner}+{name}" / "repo" / ".git",
        root / f"{owner}+{name}",
        root / owner / name,
    ):
        if (candidate / "HEAD").is_file() or (candidate / ".git").exists():
            return candidate
    raise FileNotFoundError(f"no clone of {repo} under {root}")


def _source_bytes(row: dict[str, str], mirrors: Path, local: Path) -> bytes:
    if not row["source_commit"]:
        return (local / Path(row["source_path"]).name).read_bytes()
    git_dir = _mirror(mirrors, row["source_repo"])
    where = ["-C", str(git_dir)] if (git_dir / ".git").exists() else ["--git-dir", str(git_dir)]
    spec = f"{row['source_commit']}:{row['source_path']}"
    return subprocess.run(["git", *where, "show", spec], check=True, capture_output=True).stdout


def shrink(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """``image`` scaled down (never up) so its longer side is at most ``max_side``."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (round(width * scale), round(height * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def build(directory: Path, mirrors: Path, local: Path) -> int:
    """(Re)write every photo ``directory/labels.csv`` lists from its source; returns the count."""
    rows = load_labels(directory)
    for row in rows:
        data = np.frombuffer(_source_bytes(row, mirrors, local), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{row['source_repo']}:{row['source_path']} is not an image")
        out = directory / row["file"]
        if not cv2.imwrite(str(out), shrink(image), [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"could not write {out}")
        logger.info("%s <- %s:%s", row["file"], row["source_repo"], row["source_path"])
    return len(rows)


# ---------------------------------------------------------------- scoring


class Tally:
    """True/false positives and negatives of one check."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.tn = 0

    def add(self, truth: bool, predicted: bool) -> None:
        if truth and predicted:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    def to_json(self) -> dict[str, Any]:
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        return {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None,
            "false_alert_rate": round(fp / (fp + tn), 3) if fp + tn else None,
        }


def _bucket(n: int) -> str:
    return str(n) if n < 2 else "2+"


def _outcomes(row: dict[str, str], analysis: Any, keys: set[str]) -> dict[str, tuple[bool, bool]]:
    """Per check, (truth, predicted) on one photo; a check absent does not apply to it."""
    faces, people = int(row["faces"]), int(row["people"])
    blocked = "camera_blocked" in keys
    found = 0 if blocked else analysis.faces
    out: dict[str, tuple[bool, bool]] = {
        "face_found": (faces >= 1, found >= 1),
        "second_person": (people >= 2, "multiple_faces" in keys or "prohibited_object:person" in keys),
        "multiple_faces": (faces >= 2, "multiple_faces" in keys),
        "camera_blocked": (False, blocked),  # every photo here shows a scene, none a covered lens
    }
    for column, label in OBJECTS.items():
        out[column] = (row[column] == "1", f"prohibited_object:{label}" in keys)
    if row["head"] and faces >= 1:
        out["looking_away"] = (row["head"] in AWAY, "looking_away" in keys)
    return out


def _group(row: dict[str, str], condition: str) -> str:
    value = row[condition]
    if condition == "glasses":
        return "glasses" if value == "1" else "no glasses"
    if condition == "monk":
        if not value:
            return "not judged"
        tone = int(value)
        return "monk 1-3" if tone <= 3 else "monk 4-6" if tone <= 6 else "monk 7-10"
    return value or "no usable face"


def composition(rows: Iterable[dict[str, str]]) -> dict[str, Any]:
    """What the set holds: counts per label."""
    rows = list(rows)
    return {
        "photos": len(rows),
        "with_faces": sum(int(r["faces"]) >= 1 for r in rows),
        "with_two_or_more_people": sum(int(r["people"]) >= 2 for r in rows),
        "faces_total": sum(int(r["faces"]) for r in rows),
        **{f"with_{c}": sum(r[c] == "1" for r in rows) for c in ("phone", "book", "laptop", "gaze_off")},
        **{f"{c}": dict(sorted(Counter(_group(r, c) for r in rows).items())) for c in CONDITIONS},
        "licences": dict(sorted(Counter(r["licence"].split(" (")[0] for r in rows).items())),
    }


def evaluate_real(directory: Path, config: Any = None) -> dict[str, Any]:
    """Score ``analyse_frame`` and the product's rules on the labelled photos in ``directory``."""
    from detection.core.analyse import analyse_frame
    from detection.core.config import CheckConfig
    from detection.core.image import decode_image
    from detection.core.rules import conditions_from

    config = config or CheckConfig()
    rows = load_labels(directory)
    overall: dict[str, Tally] = {}
    by_condition: dict[str, dict[str, dict[str, Tally]]] = {c: {} for c in CONDITIONS}
    confusion: Counter[str] = Counter()
    exact = 0
    heads: dict[str, list[int]] = {}
    per_image = []
    for row in rows:
        image = decode_image((directory / row["file"]).read_bytes())
        analysis = analyse_frame(image, references=[], config=config)
        # Only what can start an event: a head between the release level and the
        # threshold only keeps an open one open.
        keys = {c.key for c in conditions_from(analysis, config) if c.opens}
        outcomes = _outcomes(row, analysis, keys)
        for check, (truth, predicted) in outcomes.items():
            overall.setdefault(check, Tally()).add(truth, predicted)
            for condition in CONDITIONS:
                group = by_condition[condition].setdefault(_group(row, condition), {})
                group.setdefault(check, Tally()).add(truth, predicted)
        truth_faces = int(row["faces"])
        found = 0 if "camera_blocked" in keys else analysis.faces
        confusion[f"{_bucket(truth_faces)}->{_bucket(found)}"] += 1
        exact += found == truth_faces
        if "looking_away" in outcomes:
            tally = heads.setdefault(row["head"], [0, 0, 0])
            tally[0] += 1
            tally[1] += outcomes["looking_away"][1]
            tally[2] += "no_face" in keys
        pose = analysis.head_pose
        per_image.append(
            {
                "file": row["file"],
                "faces": analysis.faces,
                "conditions": sorted(keys),
                "yaw": None if pose is None else round(pose.yaw, 1),
                "pitch": None if pose is None else round(pose.pitch, 1),
                "brightness": round(analysis.camera.brightness, 1),
            }
        )
    return {
        "images": len(rows),
        "composition": composition(rows),
        "checks": {k: v.to_json() for k, v in sorted(overall.items())},
        "face_count": {
            "exact": exact,
            "exact_rate": round(exact / len(rows), 3) if rows else None,
            "confusion": dict(sorted(confusion.items())),
        },
        "looking_away_by_head": {
            head: {"faces": n, "flagged": k, "rate": round(k / n, 3), "no_face": missed}
            for head, (n, k, missed) in sorted(heads.items(), key=lambda item: HEADS.index(item[0]))
        },
        "by_condition": {
            condition: {
                group: {k: v.to_json() for k, v in sorted(checks.items())}
                for group, checks in sorted(groups.items())
            }
            for condition, groups in by_condition.items()
        },
        "per_image": per_image,
    }


def dim(image: np.ndarray, mean: float) -> np.ndarray:
    """``image`` with its light scaled so its mean grey level is ``mean`` (a dim room)."""
    grey = float(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).mean())
    return np.clip(image.astype(np.float32) * (mean / max(grey, 1.0)), 0, 255).astype(np.uint8)


def evaluate_dimmed(directory: Path, mean: float = 24.0, config: Any = None) -> dict[str, Any]:
    """The camera and face checks on the set's faces dimmed to a mean grey level of ``mean``.

    Only photos whose face the checks find at their own light, with a frontal or
    ~30 degree head in normal light, are dimmed, so what changes is the light
    alone: every ``camera_blocked`` or ``no_face`` on them is a false alert
    (their faces stay plainly visible at a mean of 24). Counted per Monk bucket.
    """
    from detection.core.analyse import analyse_frame
    from detection.core.config import CheckConfig
    from detection.core.image import decode_image
    from detection.core.rules import conditions_from

    config = config or CheckConfig()
    groups: dict[str, Counter[str]] = {}
    for row in load_labels(directory):
        if row["head"] not in ("frontal", "turned30") or row["lighting"] != "normal" or row["faces"] == "0":
            continue
        image = decode_image((directory / row["file"]).read_bytes())
        if analyse_frame(image, references=[], config=config).faces == 0:
            continue
        analysis = analyse_frame(dim(image, mean), references=[], config=config)
        keys = {c.key for c in conditions_from(analysis, config) if c.opens}
        for group in (_group(row, "monk"), "all"):
            tally = groups.setdefault(group, Counter())
            tally["photos"] += 1
            tally["camera_blocked"] += "camera_blocked" in keys
            tally["no_face"] += "no_face" in keys
            tally["face_found"] += "camera_blocked" not in keys and analysis.faces >= 1
    return {
        "mean": mean,
        "by_monk": {
            group: {k: tally[k] for k in ("photos", "camera_blocked", "no_face", "face_found")}
            for group, tally in sorted(groups.items())
        },
    }


def dimmed_table(report: dict[str, Any]) -> str:
    """``evaluate_dimmed``'s report as a Markdown table."""
    lines = [
        f"Faces found at their own light, dimmed to a mean grey level of {report['mean']}:",
        "",
        "| Monk | photos | camera_blocked | no_face | face still found |",
        "|---|---|---|---|---|",
    ]
    for group, row in report["by_monk"].items():
        cells = [row[k] for k in ("photos", "camera_blocked", "no_face", "face_found")]
        lines.append(f"| {group} | " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(row: dict[str, Any]) -> str:
    return f"{row['tp']}/{row['fp']}/{row['fn']}"


def table(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    comp = report["composition"]
    lines = [
        f"{report['images']} photos; {comp['with_faces']} with a face, {comp['faces_total']} faces, "
        f"{comp['with_two_or_more_people']} with two or more people, {comp['with_phone']} with a phone, "
        f"{comp['with_book']} with a book, {comp['with_laptop']} with a laptop, "
        f"{comp['with_gaze_off']} with eyes off the camera (no gaze check exists yet: not scored).",
        "",
        "| check | tp | fp | fn | tn | precision | recall | false alerts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["checks"].items():
        lines.append(
            f"| {name} | {row['tp']} | {row['fp']} | {row['fn']} | {row['tn']} | {row['precision']} "
            f"| {row['recall']} | {row['false_alert_rate']} |"
        )
    count = report["face_count"]
    lines += [
        "",
        f"face count exactly right on {count['exact']} of {report['images']} photos "
        f"({count['exact_rate']}); truth->found: "
        + ", ".join(f"{k}: {v}" for k, v in count["confusion"].items()),
        "",
        "| head (largest face) | faces | flagged looking_away | rate | face not found (no_face) |",
        "|---|---|---|---|---|",
    ]
    for head, row in report["looking_away_by_head"].items():
        lines.append(f"| {head} | {row['faces']} | {row['flagged']} | {row['rate']} | {row['no_face']} |")
    checks = list(report["checks"])
    for condition, groups in report["by_condition"].items():
        lines += [
            "",
            f"By {condition} (tp/fp/fn per check):",
            "",
            f"| {condition} | " + " | ".join(checks) + " |",
            "|---|" + "---|" * len(checks),
        ]
        for group, rows in groups.items():
            cells = [_cell(rows[c]) if c in rows else "-" for c in checks]
            lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
