import uuid

from django.core.management.base import CommandError

from exams.models import Exam


def exam_by_code(code: str) -> Exam:
    try:
        return Exam.objects.get(code=uuid.UUID(code))
    except (ValueError, Exam.DoesNotExist):
        raise CommandError(f"no exam with code {code}") from None


def add_candidate_arguments(parser) -> None:
    """--exam CODE and one of --token / --email, plus --by USERNAME for the audit."""
    parser.add_argument("--exam", required=True, metavar="CODE", help="The exam's code (a UUID).")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--token",
        help="The candidate's invitation token (the end of their link). Write --token=VALUE: "
        "a token may start with '-', which a separate argument would read as an option.",
    )
    which.add_argument("--email", help="The candidate's email address on that exam.")
    parser.add_argument("--by", metavar="USERNAME", help="The staff user this is done for (audited).")


def candidate_and_actor(options: dict):
    """The candidate the options name, and the audited actor (a user or None)
    with its label; CommandError if either is not found."""
    from django.contrib.auth import get_user_model

    from exams.models import Candidate
    from exams.services import candidate_find

    exam_by_code(options["exam"])
    try:
        candidate = candidate_find(
            exam_code=options["exam"], token=options.get("token") or "", email=options.get("email") or ""
        )
    except Candidate.DoesNotExist:
        raise CommandError("no such candidate on that exam") from None
    actor = None
    if options.get("by"):
        try:
            actor = get_user_model().objects.get(username=options["by"], is_staff=True, is_active=True)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no active staff user {options['by']}") from None
    return candidate, actor, actor.get_username() if actor else "cli"
