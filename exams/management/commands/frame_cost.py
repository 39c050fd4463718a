import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from exams.loadtest.frame_cost import measure_frame_cost, summary_text
from exams.loadtest.harness import DEFAULT_PHOTOS


class Command(BaseCommand):
    help = (
        "Analyse still frames of one load-test candidate through the worker's own pipeline, in this "
        "process, against the configured database and Redis; print the CPU each stage costs per frame "
        "(computer vision against bookkeeping). The candidate is removed afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument("--frames", type=int, default=150, help="frames counted, after a first one")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds of stream time per frame")
        parser.add_argument(
            "--pause", type=float, default=0.0, help="seconds of sleep between frames (not counted)"
        )
        parser.add_argument("--photos", default=str(DEFAULT_PHOTOS), help="folder with obama.jpg")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        try:
            result = measure_frame_cost(
                photos=Path(o["photos"]), frame_count=o["frames"], interval=o["interval"], pause=o["pause"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(result) if o["json"] else summary_text(result))
