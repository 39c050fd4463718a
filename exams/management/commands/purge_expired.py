from django.core.management.base import BaseCommand

from exams.services import exams_purge_expired


class Command(BaseCommand):
    help = "Delete evidence frames, reference photos and face encodings of exams past their retention period."

    def handle(self, *args, **options):
        totals = exams_purge_expired(progress=lambda line: self.stdout.write(line))
        self.stdout.write(
            f"purged {totals['exams']} exam(s): {totals['evidence_files']} evidence files, "
            f"{totals['clip_frames']} clip frames, "
            f"{totals['reference_photos']} reference photos"
        )
