"""Create a demo exam with staff accounts and candidates. Safe to run again.

bin/run calls it only when asked (DEMO=1) or on embedded mode's first run. It
never resets a password: an account it did not create (another password) is
left as it is and said so.
"""

import os
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.urls import reverse
from django.utils import timezone

from exams.access import PROCTOR_GROUP, REVIEWER_GROUP
from exams.models import Candidate, Exam, ExamSession

DEMO_TITLE = "Demo exam"
DEMO_CANDIDATES = [
    ("Ada Lovelace", "ada@example.org"),
    ("Alan Turing", "alan@example.org"),
    ("Grace Hopper", "grace@example.org"),
]


def _demo_account(username: str, group: str | None, password: str):
    """The demo account ``username``: created with ``password``, or, if it exists,
    taken only when it already has that password (a demo account from an earlier
    run). An account someone else made is never changed, nor its password reset;
    None then."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username)
        user.set_password(password)
        if group is None:
            user.is_staff = user.is_superuser = True
        user.save()
    elif not user.check_password(password):
        return None
    if group is not None:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


class Command(BaseCommand):
    help = (
        "Create the demo exam, admin, proctor and reviewer accounts, and three candidates; "
        "print how to use them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")

    def handle(self, *args, base_url, **options):
        password_file = settings.VAR_DIR / "demo_password"
        password = os.environ.get("DEMO_PASSWORD", "")
        if not password:
            if password_file.exists():
                password = password_file.read_text().strip()
            else:
                password = secrets.token_urlsafe(9)
                settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
                password_file.write_text(password)
                password_file.chmod(0o600)
        accounts = {
            "admin": None,
            "proctor": PROCTOR_GROUP,
            "reviewer": REVIEWER_GROUP,
            "reviewer2": REVIEWER_GROUP,
        }
        ours = {}
        left_alone = []
        for username, group in accounts.items():
            user = _demo_account(username, group, password)
            if user is None:
                left_alone.append(username)
            else:
                ours[username] = user
        exam = Exam.objects.filter(title=DEMO_TITLE).first()
        now = timezone.now()
        if exam is None:
            exam = Exam.objects.create(
                title=DEMO_TITLE,
                instructions=(
                    "This is a demo. Keep your face in view, stay on this tab, and press Finish when done."
                ),
                opens_at=now - timedelta(hours=1),
                closes_at=now + timedelta(days=30),
            )
        elif exam.closes_at < now + timedelta(days=1):
            exam.closes_at = now + timedelta(days=30)
            exam.save(update_fields=["closes_at"])
        if "proctor" in ours:
            exam.proctors.add(ours["proctor"])
        # Assigned, so that the demo exam's finished sessions are in both reviewers' queues.
        exam.reviewers.add(*(user for name, user in ours.items() if name.startswith("reviewer")))
        for name, email in DEMO_CANDIDATES:
            candidate, _ = Candidate.objects.get_or_create(exam=exam, email=email, defaults={"name": name})
            ExamSession.objects.get_or_create(candidate=candidate)

        def sign_in(username: str) -> str:
            return f"{username} / {password}" if username in ours else f"{username} (its own password)"

        w = self.stdout.write
        w("")
        w("Open Proctor demo")
        w(f"  Staff sign-in:  {base_url}{reverse('login')}")
        roster_url = base_url + reverse("admin:exams_exam_roster", args=[exam.pk])
        w(f"  Administrator:  {sign_in('admin')}   exams and roster import: {roster_url}")
        live_url = base_url + reverse("proctor_live", args=[exam.code])
        w(f"  Proctor:        {sign_in('proctor')}   live grid: {live_url}")
        review_url = base_url + reverse("review_exam", args=[exam.code])
        w(f"  Reviewers:      {sign_in('reviewer')} and {sign_in('reviewer2')}   {review_url}")
        for username in left_alone:
            w(f"  {username}: an account of that name already exists with another password; left as it is")
        w("  Candidate links (no roster photo, so the first camera picture becomes the reference):")
        for candidate in exam.candidates.all():
            w(f"    {candidate.name:<14} {base_url}{candidate.link_path()}")
        w("")
