from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from exams.services import SWEEP_GRACE, exams_purge_expired, media_sweep


class Command(BaseCommand):
    help = (
        "Delete evidence frames, reference photos and face encodings of exams past their retention "
        "period, then sweep media files that no row refers to."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch", type=int, default=500, help="Media files checked per database query (default 500)."
        )
        parser.add_argument(
            "--grace-minutes",
            type=int,
            default=int(SWEEP_GRACE.total_seconds() // 60),
            help="Never sweep a file younger than this: its row may not be committed yet (default 60).",
        )
        parser.add_argument("--no-sweep", action="store_true", help="Only the retention purge.")

    def handle(self, *args, **options):
        if options["batch"] < 1 or options["grace_minutes"] < 0:
            raise CommandError("--batch must be at least 1 and --grace-minutes at least 0")
        dry_run = options["dry_run"]
        verb = "would purge" if dry_run else "purged"
        totals = exams_purge_expired(progress=lambda line: self.stdout.write(line), dry_run=dry_run)
        self.stdout.write(
            f"{verb} {totals['exams']} exam(s): {totals['evidence_files']} evidence files, "
            f"{totals['clip_frames']} clip frames, "
            f"{totals['reference_photos']} reference photos, {totals['messages']} chat messages"
        )
        if options["no_sweep"]:
            return
        swept = media_sweep(
            batch=options["batch"],
            grace=timedelta(minutes=options["grace_minutes"]),
            dry_run=dry_run,
            progress=lambda line: self.stdout.write(line),
        )
        self.stdout.write(
            f"media sweep: {swept['checked']} files checked, {swept['orphans']} with no row"
            + (" (dry run: nothing deleted)" if dry_run else f", {swept['deleted']} deleted")
            + f", {swept['too_young']} younger than the grace period kept"
        )
