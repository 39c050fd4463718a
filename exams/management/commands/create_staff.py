from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from exams.access import PROCTOR_GROUP, REVIEWER_GROUP
from exams.services import audit_record

ROLES = {"proctor": PROCTOR_GROUP, "reviewer": REVIEWER_GROUP}


class Command(BaseCommand):
    help = "Create a staff account with the proctor or reviewer role (or update its password and role)."

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--role", required=True, choices=sorted(ROLES))
        parser.add_argument("--email", default="")

    def handle(self, *args, username, password, role, email, **options):
        User = get_user_model()
        existing = User.objects.filter(username=username).first()
        try:
            # The same AUTH_PASSWORD_VALIDATORS as every other password, including
            # similarity to this username and email.
            validate_password(password, user=existing or User(username=username, email=email))
        except ValidationError as exc:
            raise CommandError("the password is too weak: " + " ".join(exc.messages)) from None
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        user.set_password(password)
        user.is_staff = False  # the Django admin is for administrators only
        user.save()
        group, _ = Group.objects.get_or_create(name=ROLES[role])
        user.groups.add(group)
        audit_record(
            action="staff_create" if created else "staff_update",
            actor_label="cli",
            details={"username": username, "role": role},
        )
        self.stdout.write(f"{'created' if created else 'updated'} {role} {username}")
