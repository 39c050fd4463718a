"""Grant the application's PostgreSQL role what it needs, and no more, on the tables
that exist now. Run it as the owner of the tables after every ``migrate``.

The role (created by deploy/postgres/app-role.sql) gets SELECT, INSERT, UPDATE
and DELETE on every table and sequence of the schema, except the audit table:
there only SELECT and INSERT, plus UPDATE of its nullable links (exam, session,
actor, ...), which Django's SET_NULL needs when what a row points at is deleted,
and of ``details`` and ``actor_label``, which a candidate's erasure rewrites to
"[erased]" in rows written before the audit named candidates by id. The
append-only trigger (migrations 0007 and 0011) refuses any other change to those
columns, and the role cannot disable it.
``django_migrations`` it may only read. It
gets no TRUNCATE anywhere, and not being the owner, it cannot ALTER a table or
disable a trigger. Idempotent: running it again grants the same.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from exams.models import AuditEntry

# What exams.services.data_rights may overwrite with "[erased]"; the trigger checks how.
ERASABLE_COLUMNS = ("actor_label", "details")


def audit_link_columns() -> list[str]:
    """The audit table's columns the app may UPDATE: the nullable foreign keys Django
    empties, and the ones erasure rewrites."""
    links = [field.column for field in AuditEntry._meta.concrete_fields if field.is_relation and field.null]
    return sorted([*links, *ERASABLE_COLUMNS])


class Command(BaseCommand):
    help = "Grant a PostgreSQL role the app's table privileges: only INSERT and SELECT on the audit."

    def add_arguments(self, parser) -> None:
        parser.add_argument("role", help="the application's role, e.g. proctor_app")

    def handle(self, *args, role: str, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("grant_app_role is for PostgreSQL (DATABASE_URL)", returncode=2)
        quote = connection.ops.quote_name
        audit = AuditEntry._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
            row = cursor.fetchone()
            if row is None:
                raise CommandError(
                    f'role "{role}" does not exist: create it with deploy/postgres/app-role.sql', returncode=2
                )
            if row[0]:
                raise CommandError(
                    f'role "{role}" is a superuser; the application role must not be', returncode=2
                )
            cursor.execute("SELECT current_user, current_schema()")
            me, schema = cursor.fetchone()
            if me == role:
                raise CommandError(
                    f"run grant_app_role as the owner of the tables, not as {role} itself", returncode=2
                )
            cursor.execute(
                "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass", [quote(audit)]
            )
            if cursor.fetchone()[0] == role:
                raise CommandError(f'role "{role}" owns {audit}; migrate as another role', returncode=2)
            role_q, schema_q, audit_q = quote(role), quote(schema), quote(audit)
            links = ", ".join(quote(column) for column in audit_link_columns())
            statements = [
                f"GRANT USAGE ON SCHEMA {schema_q} TO {role_q}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema_q} TO {role_q}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_q} TO {role_q}",
                f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {audit_q} FROM {role_q}",
                f"GRANT UPDATE ({links}) ON {audit_q} TO {role_q}",
            ]
            # Which migrations ran is the owner's to record, never the app's.
            cursor.execute("SELECT to_regclass('django_migrations') IS NOT NULL")
            if cursor.fetchone()[0]:
                statements.append(f"REVOKE INSERT, UPDATE, DELETE ON django_migrations FROM {role_q}")
            for statement in statements:
                cursor.execute(statement)
        self.stdout.write(f"{role}: rows of every table in {schema}; on {audit} only INSERT and SELECT")
