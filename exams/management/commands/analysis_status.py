"""``manage.py analysis_status [--json] [--watch SECONDS]``: the live analysis
queue's depth and lag, for whoever runs the server during an exam."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from django.conf import settings
from django.core.management.base import BaseCommand

from exams.analysis import intake
from exams.analysis.queue import frame_queue


def _broker_depth() -> int | None:
    """Tasks waiting in the Celery broker (Redis list ``celery``, and kombu's list per
    priority step beside it: frames queue at a lower priority); None in embedded mode."""
    if not settings.REDIS_URL:
        return None
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    return sum(int(client.llen(key)) for key in ("celery", *(f"celery\x06\x16{p}" for p in (3, 6, 9))))


class Command(BaseCommand):
    help = (
        "Show the live analysis queue: sessions with a frame waiting, analyses queued or running, "
        "the oldest waiting frame's age, tasks in the broker, and frames received, replaced by a "
        "newer one (latest wins), taken and lost. In embedded mode the queue lives in the web "
        "process, so this command sees only its own (empty) copy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
        parser.add_argument(
            "--watch", type=float, default=0.0, metavar="SECONDS", help="repeat every SECONDS"
        )

    def handle(self, *args, **options):
        watch = options["watch"]
        while True:
            self.report(as_json=options["json"])
            if watch <= 0:
                return
            time.sleep(watch)

    def report(self, *, as_json: bool) -> None:
        snapshot = {kind: asdict(frame_queue().stats(kind)) for kind in (intake.FRAME, intake.VERIFY)}
        snapshot["broker_tasks"] = _broker_depth()
        if as_json:
            self.stdout.write(json.dumps(snapshot))
            return
        for kind in (intake.FRAME, intake.VERIFY):
            s = snapshot[kind]
            counters = ", ".join(f"{k} {v}" for k, v in sorted(s["counters"].items())) or "none yet"
            self.stdout.write(
                f"{kind:6} waiting {s['waiting']:4}  busy {s['busy']:4}  "
                f"oldest wait {s['oldest_wait_seconds']:6.2f} s  counters: {counters}"
            )
        self.stdout.write(f"broker tasks waiting: {snapshot['broker_tasks']}")
