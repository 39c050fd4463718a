"""Embedded mode (`make run` without services) on a real SQLite file: concurrent
analysis, consent, signals, chat and proctor actions all succeed. Every other
test runs on PostgreSQL; this one is what a newcomer's first exam runs on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow


def test_it_serves_a_small_exam_on_sqlite_without_a_locked_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="proctor.settings", PYTHONUNBUFFERED="1")
    # A crash in native code (dlib, OpenCV, SQLite) then prints every thread's stack.
    env["PYTHONFAULTHANDLER"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "tests.exams.analysis.sqlite_drill"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failures"] == [], done.stderr[-4000:]
    assert result["states"] == ["terminated"], "every End worked"
    assert all(count >= 1 for count in result["frames_analysed"]), result
    assert result["consented"] == result["fresh"]
