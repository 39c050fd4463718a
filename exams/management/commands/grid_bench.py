import json

from django.core.management.base import BaseCommand, CommandError

from exams.loadtest.grid import GridBenchParams, run_grid_bench, summary_text


class Command(BaseCommand):
    help = (
        "Open the proctors' live grid in Chromium against a running server (same DATABASE_URL and "
        "REDIS_URL) with simulated candidates pushing tile updates, thumbnails and alerts at the real "
        "rates; print the render time per update batch and the JS heap over the run."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", required=True, help="the server, e.g. http://127.0.0.1:8000 (this machine)"
        )
        parser.add_argument("--candidates", type=int, default=200)
        parser.add_argument("--minutes", type=float, default=10.0)
        parser.add_argument(
            "--interval", type=float, default=2.0, help="seconds between a candidate's frames"
        )
        parser.add_argument("--alerts-per-minute", type=float, default=20.0)
        parser.add_argument("--chromium", default="/usr/bin/chromium")
        parser.add_argument("--keep", action="store_true", help="leave the load exam in place afterwards")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        try:
            params = GridBenchParams(
                url=o["url"],
                candidates=o["candidates"],
                minutes=o["minutes"],
                interval=o["interval"],
                alerts_per_minute=o["alerts_per_minute"],
                chromium=o["chromium"],
                keep=o["keep"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        result = run_grid_bench(params, progress=lambda line: self.stderr.write(line))
        self.stdout.write(json.dumps(result, indent=2) if o["json"] else summary_text(result))
