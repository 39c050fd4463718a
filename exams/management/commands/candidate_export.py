import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from exams.management.lookup import add_candidate_arguments, candidate_and_actor
from exams.services import candidate_export


class Command(BaseCommand):
    help = (
        "Export everything held about one candidate as a zip: data.json (candidate, session, events, "
        "decisions, messages, audit entries) and their pictures. Audited."
    )

    def add_arguments(self, parser):
        add_candidate_arguments(parser)
        parser.add_argument("-o", "--output", type=Path, required=True, help="The zip file to write.")

    def handle(self, *args, **options):
        candidate, actor, label = candidate_and_actor(options)
        output: Path = options["output"]
        # The zip holds biometric data: readable by its owner only, from the start.
        try:
            fd = os.fdopen(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        except FileExistsError:
            raise CommandError(f"{output} exists; choose a new file") from None
        try:
            with fd:
                counts = candidate_export(candidate=candidate, out=fd, actor=actor, actor_label=label)
        except BaseException:
            output.unlink(missing_ok=True)
            raise
        self.stdout.write(f"wrote {output}: {counts['events']} events, {counts['files']} pictures")
