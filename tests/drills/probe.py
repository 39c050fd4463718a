"""The drills' window on the private database: run as ``python -m tests.drills.probe``
with DATABASE_URL and REDIS_URL pointing at the drill's own PostgreSQL and Redis
(the test process itself stays on the test database of pytest-django).

``create``: reads {"candidates", "interval", "encoding"} as JSON on stdin, makes
a load exam (``exams.loadtest.data``) and prints it as JSON.
``report EXAM``: prints each session of the exam with its analysed frames and
its events, as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proctor.settings")
django.setup()

from exams.loadtest import data  # noqa: E402
from exams.models import ExamSession  # noqa: E402


def create() -> dict:
    spec = json.load(sys.stdin)
    load = data.load_exam_create(
        candidates=spec["candidates"], interval=spec["interval"], encoding=spec["encoding"], label="drill"
    )
    return asdict(load)


def report(code: str) -> dict:
    sessions = ExamSession.objects.filter(candidate__exam__code=code).prefetch_related("events")
    return {
        str(session.public_id): {
            "frames_analysed": session.frames_analysed,
            "events": [
                {
                    "type": event.type,
                    "key": event.key,
                    "open": event.is_open,
                    "started_at": event.started_at.timestamp(),
                    "ended_at": event.ended_at.timestamp(),
                    # The same condition after a lost connection closed its event (services.events_apply).
                    "continued": bool(event.details.get("continued")),
                }
                for event in session.events.order_by("started_at")
            ],
        }
        for session in sessions
    }


if __name__ == "__main__":
    command = sys.argv[1]
    out = create() if command == "create" else report(sys.argv[2])
    print(json.dumps(out))
