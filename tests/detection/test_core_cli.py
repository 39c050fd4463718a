"""python -m detection: the analyse output is stable JSON, one object per image."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from detection_photos import PHOTOS

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "detection", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_it_analyses_images_against_a_reference():
    out = _run(
        "analyse",
        str(PHOTOS / "obama2.jpg"),
        str(PHOTOS / "biden.jpg"),
        "--reference",
        str(PHOTOS / "obama.jpg"),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [Path(r["image"]).name for r in records] == ["obama2.jpg", "biden.jpg"]
    keys = {
        "image",
        "faces",
        "boxes",
        "identity",
        "head_pose",
        "looking_away",
        "objects",
        "camera_blocked",
        "timings_ms",
    }
    assert all(keys <= set(r) for r in records)
    assert records[0]["identity"]["match"] is True and records[1]["identity"]["match"] is False
    assert records[0]["faces"] == 1 and records[0]["head_pose"] is not None
    assert set(records[0]["checks_run"]) == {"camera", "faces", "identity", "head_pose", "objects"}


def test_it_reports_an_unreadable_image_and_carries_on(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    out = _run("analyse", str(bad), str(PHOTOS / "astronaut.png"), "--json")
    assert out.returncode == 1
    first, second = (json.loads(line) for line in out.stdout.splitlines())
    assert "error" in first and second["faces"] == 1


def test_it_refuses_a_reference_with_no_face(tmp_path):
    blank = tmp_path / "blank.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    out = _run("analyse", str(PHOTOS / "obama2.jpg"), "--reference", str(blank))
    assert out.returncode == 2 and "no face" in out.stderr
