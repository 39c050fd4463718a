from pathlib import Path

from django.core.management.base import BaseCommand

from exams import reports
from exams.management.lookup import exam_by_code
from exams.services import audit_record


class Command(BaseCommand):
    help = "Export every session of an exam with its events, as JSON or CSV."

    def add_arguments(self, parser):
        parser.add_argument("exam_code")
        parser.add_argument("--format", choices=["json", "csv"], default="json")
        parser.add_argument("--output", type=Path)

    def handle(self, *args, exam_code, format, output, **options):
        exam = exam_by_code(exam_code)
        text = reports.report_json(exam) if format == "json" else reports.report_csv(exam)
        audit_record(action="report_export", actor_label="cli", exam=exam, details={"format": format})
        if output:
            output.write_text(text, encoding="utf-8")
            self.stderr.write(f"wrote {output}")
        else:
            self.stdout.write(text)
