from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from exams import reports
from exams.management.lookup import exam_by_code
from exams.services import audit_record


class Command(BaseCommand):
    help = "Export every session of an exam with its events, as JSON, CSV or PDF (PDF needs --output)."

    def add_arguments(self, parser):
        parser.add_argument("exam_code")
        parser.add_argument("--format", choices=list(reports.FORMATS), default="json")
        parser.add_argument("--output", type=Path)

    def handle(self, *args, exam_code, format, output, **options):
        if format == "pdf" and not output:
            raise CommandError("a PDF is binary: give --output FILE.pdf")
        exam = exam_by_code(exam_code)
        data = reports.report_render(exam, format, site_url=settings.SITE_URL)
        audit_record(action="report_export", actor_label="cli", exam=exam, details={"format": format})
        if output:
            output.write_bytes(data)
            self.stderr.write(f"wrote {output}")
        else:
            self.stdout.write(data.decode("utf-8"))
