"""Check what the configured mode needs before migrate, and say in one line what is missing.

bin/run and the compose migrate step run it first, so a new setup fails with a
sentence instead of a traceback (an OperationalError from migrate, a Celery
worker retrying a Redis that is not there). A PostgreSQL database that does not
exist yet is created when the URL's user may create databases; otherwise the
line says how to create it. Settings errors (SECRET_KEY unset, ...) are already
one line: manage.py prints them before any command runs.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from exams.mail import REASON as EMAIL_REASON

# libpq options a DATABASES entry may carry that matter for connecting.
_LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "application_name")


def _where(db: dict) -> str:
    return f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}"


def _fatal(exc: Exception) -> str:
    """The server's own sentence from a connection error, on one line."""
    text = str(exc)
    match = re.search(r"FATAL:\s*(.+)", text)
    text = match.group(1) if match else text.removeprefix("connection failed: ")
    return " ".join(text.split())


class Command(BaseCommand):
    help = "Check the database, Redis and email settings; create the database if it is missing and allowed."
    requires_system_checks = []

    def handle(self, *args, **options) -> None:
        db = settings.DATABASES["default"]
        if db["ENGINE"] == "django.db.backends.postgresql":
            self._database(db)
        if settings.REDIS_URL:
            self._redis(settings.REDIS_URL)
        if settings.EMAIL_BACKEND == settings.EMAIL_BACKEND_NOT_SET:
            self.stderr.write(f"preflight: invitations will not be sent: {EMAIL_REASON}")

    def _connect(self, db: dict, dbname: str):
        import psycopg

        options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if k in _LIBPQ_OPTIONS}
        return psycopg.connect(
            dbname=dbname,
            user=db["USER"] or None,
            password=db["PASSWORD"] or None,
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            connect_timeout=5,
            **options,
        )

    def _database(self, db: dict) -> None:
        import psycopg

        name, user = db["NAME"], db["USER"] or "(the default user)"
        try:
            self._connect(db, name).close()
            return
        except psycopg.OperationalError as exc:
            reason = _fatal(exc)
            if f'database "{name}" does not exist' not in reason:
                raise CommandError(
                    f"cannot connect to PostgreSQL at {_where(db)} as {user} (DATABASE_URL): {reason}",
                    returncode=2,
                ) from None
        how = (
            f"create it as a PostgreSQL superuser, e.g. createdb -h {db['HOST'] or 'localhost'} "
            f"-p {db['PORT'] or 5432} -U postgres -O {db['USER'] or 'postgres'} {name}"
        )
        try:
            with self._connect(db, "postgres") as maintenance:
                maintenance.autocommit = True
                maintenance.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name))
                )
        except psycopg.errors.DuplicateDatabase:
            return
        except psycopg.errors.InsufficientPrivilege:
            raise CommandError(
                f'database "{name}" does not exist and {user} may not create it: {how}', returncode=2
            ) from None
        except psycopg.Error as exc:
            raise CommandError(
                f'database "{name}" does not exist and could not be created ({_fatal(exc)}): {how}',
                returncode=2,
            ) from None
        self.stderr.write(f'preflight: created the PostgreSQL database "{name}" at {_where(db)}')

    def _redis(self, url: str) -> None:
        from urllib.parse import urlsplit

        import redis

        where = f"{urlsplit(url).hostname}:{urlsplit(url).port or 6379}"
        try:
            redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5).ping()
        except redis.RedisError as exc:
            raise CommandError(
                f"Redis at {where} does not answer (REDIS_URL): {exc}",
                returncode=2,
            ) from None
