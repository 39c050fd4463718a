"""python -m detection: the analyse output is stable JSON, one object per image; the
bench and the evaluation set are composed from a photos folder that must be given."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_bench_and_make_evalset_need_a_photos_folder(tmp_path):
    out = _run("bench", "--duration", "2")
    assert out.returncode == 2 and "--photos" in out.stderr
    out = _run("make-evalset", "--photos", str(tmp_path / "nowhere"), str(tmp_path / "set"))
    assert out.returncode == 2 and "is not a folder" in out.stderr
    assert not (tmp_path / "set").exists()


def test_it_makes_and_scores_an_evalset_from_the_photos_it_is_given(tmp_path):
    out = _run("make-evalset", "--photos", str(PHOTOS), str(tmp_path))
    assert out.returncode == 0, out.stderr
    labels = (tmp_path / "labels.csv").read_text().splitlines()
    assert len(labels) == 1 + 111
    assert sorted(p.name for p in (tmp_path / "references").iterdir()) == ["biden.jpg", "obama.jpg"]
    # Scoring all 111 frames takes a minute; a few rows show the command works.
    (tmp_path / "labels.csv").write_text("\n".join(labels[:4] + labels[-2:]) + "\n")
    out = _run("evaluate", "--json", str(tmp_path))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["images"] == 5
    assert report["checks"]["camera_blocked"]["tp"] == 2


@pytest.mark.slow
def test_it_benches_a_stream_composed_from_the_photos_it_is_given():
    out = _run("bench", "--photos", str(PHOTOS), "--duration", "4", "--repeat", "1", "--json")
    assert out.returncode == 0, out.stderr
    stream = json.loads(out.stdout)["stream"]
    assert stream["frames"] == 2 and stream["checks_run"]["camera"] == 2
