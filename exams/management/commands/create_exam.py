import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from exams.services import exam_create


def _when(value: str):
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"not an ISO date-time: {value!r}")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = 'Create an exam. Prints its code; with --json prints {"exam": code, ...}.'

    def add_arguments(self, parser):
        parser.add_argument("--title", required=True)
        parser.add_argument("--proctor", action="append", default=[], help="username; repeat for several")
        parser.add_argument("--reviewer", action="append", default=[], help="username; repeat for several")
        parser.add_argument("--opens", help="ISO date-time, default now")
        parser.add_argument("--closes", help="ISO date-time, default a week after opening")
        parser.add_argument("--duration", type=int, default=60, help="minutes")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between frames")
        parser.add_argument("--retention-days", type=int, default=30)
        parser.add_argument("--external-url", default="")
        parser.add_argument("--instructions", default="")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        opens = _when(o["opens"]) if o["opens"] else timezone.now()
        closes = _when(o["closes"]) if o["closes"] else opens + timedelta(days=7)
        if closes <= opens:
            raise CommandError("--closes must be after --opens")
        try:
            exam = exam_create(
                title=o["title"],
                proctors=o["proctor"],
                reviewers=o["reviewer"],
                opens_at=opens,
                closes_at=closes,
                duration_minutes=o["duration"],
                frame_interval=o["interval"],
                retention_days=o["retention_days"],
                external_url=o["external_url"],
                instructions=o["instructions"],
            )
        except Exception as exc:  # validation errors become a clear message, not a traceback
            raise CommandError(str(exc)) from exc
        data = {
            "exam": str(exam.code),
            "title": exam.title,
            "opens_at": exam.opens_at.isoformat(),
            "closes_at": exam.closes_at.isoformat(),
            "proctors": o["proctor"],
            "reviewers": o["reviewer"],
            "live_url": reverse("proctor_live", args=[exam.code]),
            "review_url": reverse("review_exam", args=[exam.code]),
        }
        self.stdout.write(json.dumps(data) if o["json"] else str(exam.code))
