from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from exams.loadtest.plot import markdown_table, plot_capacity, read_results


class Command(BaseCommand):
    help = (
        "Chart manage.py loadtest --json results against candidates: p50/p95 latency, analysed share "
        "and server CPU per analysed frame. Needs matplotlib (requirements-dev.txt)."
    )

    def add_arguments(self, parser):
        parser.add_argument("results", nargs="+", help="result JSON files, one per run")
        parser.add_argument("--output", default="docs/capacity.png")
        parser.add_argument("--title", default="")
        parser.add_argument(
            "--markdown", action="store_true", help="print the figures as a Markdown table, no chart"
        )

    def handle(self, *args, results, output, title, markdown, **options):
        if markdown:
            try:
                self.stdout.write(markdown_table(read_results([Path(p) for p in results])), ending="")
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            return
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CommandError("matplotlib is not installed: pip install -r requirements-dev.txt") from None
        try:
            data = read_results([Path(p) for p in results])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        path = plot_capacity(data, Path(output), title=title)
        self.stdout.write(f"wrote {path}")
