from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from exams.management.lookup import exam_by_code
from exams.services import roster_import


class Command(BaseCommand):
    help = "Import candidates from a CSV with columns name,email,photo (photo paths relative to the CSV)."

    def add_arguments(self, parser):
        parser.add_argument("exam_code")
        parser.add_argument("csv", type=Path)
        parser.add_argument(
            "--base-url", default="", help="prefix for printed links, e.g. https://proctor.example.edu"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, exam_code, csv, base_url, json: bool, **options):
        exam = exam_by_code(exam_code)
        if not csv.is_file():
            raise CommandError(f"no such file: {csv}")
        try:
            rows = roster_import(exam=exam, csv_path=csv, base_url=base_url.rstrip("/"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(str(exc)) from exc
        if json:
            import json as json_module

            self.stdout.write(json_module.dumps([r.as_dict() for r in rows], indent=2))
            return
        for r in rows:
            self.stdout.write(f"{r.name} <{r.email}>: " + (f"ERROR {r.error}" if r.error else r.link))
        errors = sum(1 for r in rows if r.error)
        self.stdout.write(f"{len(rows) - errors} imported, {errors} with errors")
