"""Embedded mode under a small exam's load, on a real SQLite file: run as
``python -m tests.exams.analysis.sqlite_drill`` with VAR_DIR set and neither
DATABASE_URL nor REDIS_URL (test_embedded_sqlite.py does that).

Candidates stream frames through intake.submit (analysed by embedded mode's
thread pool, as under `make run`), consent pages are submitted, signals and
chat arrive, and proctors warn, pause, resume and finally end every attempt,
all at the same time from several threads. Prints one JSON line: what failed
(by exception text), and what was stored.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proctor.settings")
django.setup()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from exams import services  # noqa: E402
from exams.analysis import intake  # noqa: E402
from exams.analysis.queue import frame_queue  # noqa: E402
from exams.models import ExamSession  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "data" / "photos"
CANDIDATES = int(os.environ.get("DRILL_CANDIDATES", "8"))
FRAMES = int(os.environ.get("DRILL_FRAMES", "6"))

failures: list[str] = []
lock = threading.Lock()


class RecordErrors(logging.Handler):
    """The embedded thread pool logs an analysis that failed instead of raising it."""

    def emit(self, record: logging.LogRecord) -> None:
        with lock:
            failures.append(f"{record.name}: {record.getMessage()}: {record.exc_info and record.exc_info[1]}")


logging.getLogger().addHandler(RecordErrors(level=logging.ERROR))


def guarded(fn):
    def run(*args):
        try:
            fn(*args)
        except Exception as exc:
            with lock:
                failures.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
                traceback.print_exc(file=sys.stderr)
        finally:
            close_old_connections()

    return run


def frames_of(seed: int) -> list[bytes]:
    face = cv2.resize(cv2.imread(str(PHOTOS / "obama.jpg")), (640, 480))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(FRAMES):
        noisy = np.clip(face + rng.normal(0, 2.0, face.shape), 0, 255).astype(np.uint8)
        out.append(cv2.imencode(".jpg", noisy)[1].tobytes())
    return out


@guarded
def candidate(session_pk: int, seed: int) -> None:
    session = ExamSession.objects.select_related("candidate__exam").get(pk=session_pk)
    for number, data in enumerate(frames_of(seed)):
        intake.submit(intake.FRAME, session=session, data=data)
        if number % 2:
            services.signal_record(session=session, signal="tab_hidden", active=number % 4 == 1)
        if number == 1:
            services.message_from_candidate(session=session, text="my camera froze")
        time.sleep(0.2)


@guarded
def proctor(session_pks: list[int], actor) -> None:
    for action in ("warn", "pause", "resume", "message"):
        for pk in session_pks:
            services.proctor_act(
                session=ExamSession.objects.get(pk=pk), actor=actor, action=action, text="hi"
            )
        time.sleep(0.1)


@guarded
def end_all(session_pks: list[int], actor) -> None:
    for session in ExamSession.objects.filter(pk__in=session_pks):
        services.proctor_act(session=session, actor=actor, action="end")


@guarded
def newcomer(session_pk: int) -> None:
    services.session_consent(session=ExamSession.objects.get(pk=session_pk), version="drill")


def main() -> None:
    assert settings.EMBEDDED and settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    call_command("migrate", verbosity=0)
    actor = get_user_model().objects.create_user("drill-proctor", password="drill-password-1")
    exam = services.exam_create(title="SQLite drill", actor_label="drill")
    live, fresh = [], []
    for n in range(CANDIDATES * 2):
        added = services.candidate_add(exam=exam, name=f"Candidate {n}", email=f"c{n}@drill.invalid")
        session = services.session_for_candidate(added)
        if n < CANDIDATES:
            ExamSession.objects.filter(pk=session.pk).update(state=ExamSession.State.IN_PROGRESS)
            live.append(session.pk)
        else:
            fresh.append(session.pk)

    with ThreadPoolExecutor(max_workers=CANDIDATES + len(fresh) + 2) as pool:
        for seed, pk in enumerate(live):
            pool.submit(candidate, pk, seed)
        for pk in fresh:  # consent pages opened in the same second
            pool.submit(newcomer, pk)
        pool.submit(proctor, live[: CANDIDATES // 2], actor)
        pool.submit(proctor, live[CANDIDATES // 2 :], actor)

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        sessions = ExamSession.objects.filter(pk__in=live)
        if all(frame_queue().idle(intake.FRAME, str(s.public_id)) for s in sessions):
            break
        time.sleep(0.2)
    end_all(live, actor)
    sessions = ExamSession.objects.filter(pk__in=live)
    print(
        json.dumps(
            {
                "failures": failures,
                "frames_analysed": [s.frames_analysed for s in sessions],
                "states": sorted({s.state for s in sessions}),
                "consented": ExamSession.objects.filter(pk__in=fresh, state="consented").count(),
                "fresh": len(fresh),
            }
        )
    )


if __name__ == "__main__":
    main()
