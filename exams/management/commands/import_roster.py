from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from exams.management.lookup import exam_by_code
from exams.models import Candidate
from exams.services import RosterSummary, invitations_send, roster_import
from exams.services.roster import NEW


class Command(BaseCommand):
    help = "Import candidates from a CSV with columns name,email,photo (photo paths relative to the CSV)."

    def add_arguments(self, parser):
        parser.add_argument("exam_code")
        parser.add_argument("csv", type=Path)
        parser.add_argument(
            "--base-url",
            default=None,
            help="prefix for printed links, e.g. https://proctor.example.edu (default: SITE_URL)",
        )
        parser.add_argument("--json", action="store_true")
        parser.add_argument(
            "--send-invitations",
            action="store_true",
            help="email the invitation link to each candidate this run adds (EMAIL_* settings); "
            "candidates already on the exam are not emailed again (use the admin's action for that)",
        )

    def handle(self, *args, exam_code, csv, base_url, json: bool, send_invitations: bool, **options):
        if base_url is None:
            base_url = settings.SITE_URL
        exam = exam_by_code(exam_code)
        if not csv.is_file():
            raise CommandError(f"no such file: {csv}")
        try:
            rows = roster_import(exam=exam, csv_path=csv, base_url=base_url.rstrip("/"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(str(exc)) from exc
        sent = None
        if send_invitations:
            added = Candidate.objects.filter(exam=exam, email__in=[r.email for r in rows if r.status == NEW])
            sent = invitations_send(
                candidates=added.select_related("exam", "session"),
                actor_label="cli",
            )
        if json:
            import json as json_module

            self.stdout.write(json_module.dumps([r.as_dict() for r in rows], indent=2))
            return
        for r in rows:
            if r.error:
                line = f"ERROR {r.error}"
            else:
                line = r.link + (" (already on the exam, unchanged)" if r.status != NEW else "")
            self.stdout.write(f"{r.name} <{r.email}>: {line}")
        self.stdout.write(str(RosterSummary.of(rows)))
        if sent is not None:
            self.stdout.write(str(sent))
