import uuid

from django.core.management.base import CommandError

from exams.models import Exam


def exam_by_code(code: str) -> Exam:
    try:
        return Exam.objects.get(code=uuid.UUID(code))
    except (ValueError, Exam.DoesNotExist):
        raise CommandError(f"no exam with code {code}") from None
