from django.core.management.base import BaseCommand, CommandError

from exams.management.lookup import add_candidate_arguments, candidate_and_actor
from exams.services import DataRightsError, candidate_erase


class Command(BaseCommand):
    help = (
        "Erase one candidate's personal data: photos, face templates and evidence deleted, name and "
        "email pseudonymised, messages blanked. The audit keeps that it happened. Needs --yes."
    )

    def add_arguments(self, parser):
        add_candidate_arguments(parser)
        parser.add_argument("--yes", action="store_true", help="Confirm: this cannot be undone.")

    def handle(self, *args, **options):
        candidate, actor, label = candidate_and_actor(options)
        if not options["yes"]:
            raise CommandError(
                f"this erases {candidate.name} <{candidate.email}> for good; run again with --yes to confirm"
            )
        try:
            counts = candidate_erase(candidate=candidate, actor=actor, actor_label=label)
        except DataRightsError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"erased candidate {candidate.pk}: {counts['files']} files, "
            f"{counts['templates']} face templates, {counts['messages']} messages blanked"
        )
