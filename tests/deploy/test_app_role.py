"""deploy/postgres/app-role.sql and `manage.py grant_app_role` against the real PostgreSQL.

What docker compose does on a fresh volume, without Docker: a throwaway
database, the init script run by psql as its owner, `migrate` as the owner,
then `grant_app_role`. As the app's role, the app's own tables work (the ORM
creates and deletes an exam, and the audit rows about it keep their text with
their links emptied); the audit takes INSERT and SELECT and refuses UPDATE,
DELETE, TRUNCATE and disabling its trigger.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
SQL = REPO / "deploy/postgres/app-role.sql"

pytestmark = [pytest.mark.services, pytest.mark.slow]

# As the app role, through the ORM: create what a session needs, audit it, delete the
# exam (Django's SET_NULL empties the audit row's links), and print what is left.
APP_SCRIPT = """
from datetime import timedelta
from django.utils import timezone
from exams.models import AuditEntry, Candidate, Exam, ExamSession
from exams.services.audit import audit_record
now = timezone.now()
exam = Exam.objects.create(title="Role check", opens_at=now, closes_at=now + timedelta(hours=1))
candidate = Candidate.objects.create(exam=exam, name="Ada Lovelace", email="ada@example.org")
session = ExamSession.objects.create(candidate=candidate)
entry = audit_record(action="role_check", exam=exam, session=session)
exam.delete()
entry = AuditEntry.objects.get(pk=entry.pk)
print("left", entry.exam_id, entry.session_id, entry.action, Exam.objects.count())
"""


@pytest.fixture
def server() -> dict[str, str]:
    url = urlsplit(os.environ.get("DATABASE_URL", ""))
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    return {
        "host": url.hostname or "127.0.0.1",
        "port": str(url.port or 5432),
        "owner": url.username or "postgres",
    }


def _psql(server: dict[str, str], dbname: str, *args: str, user: str | None = None, env=None):
    return subprocess.run(
        [
            "psql",
            "-X",
            "-h",
            server["host"],
            "-p",
            server["port"],
            "-U",
            user or server["owner"],
            "-d",
            dbname,
            *args,
        ],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("POSTGRES_APP_")}, **(env or {})},
        timeout=60,
    )


@pytest.fixture
def database(server) -> Iterator[tuple[str, str]]:
    """A throwaway database and the name of an app role made for it (roles are per cluster)."""
    suffix = secrets.token_hex(4)
    name, role = f"proctor_approle_{suffix}", f"proctor_app_{suffix}"
    assert _psql(server, "postgres", "-c", f"CREATE DATABASE {name}").returncode == 0
    try:
        yield name, role
    finally:
        _psql(server, "postgres", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        _psql(server, "postgres", "-c", f"DROP ROLE IF EXISTS {role}")


def _manage(server, dbname: str, user: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{user}@{server['host']}:{server['port']}/{dbname}",
        "SECRET_KEY": "test-only-not-a-secret",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_it_refuses_to_create_the_role_without_a_password(server, database) -> None:
    name, role = database
    result = _psql(server, name, "-f", str(SQL), env={"POSTGRES_APP_USER": role})
    assert result.returncode != 0
    assert "POSTGRES_APP_PASSWORD is not set" in result.stderr
    exists = _psql(server, name, "-tAc", f"SELECT count(*) FROM pg_roles WHERE rolname = '{role}'")
    assert exists.stdout.strip() == "0"


def test_it_gives_the_app_role_its_tables_but_only_insert_and_select_on_the_audit(server, database) -> None:
    name, role = database
    env = {"POSTGRES_APP_USER": role, "POSTGRES_APP_PASSWORD": secrets.token_urlsafe(12)}
    created = _psql(server, name, "-f", str(SQL), env=env)
    assert created.returncode == 0, created.stderr
    # Again, as after a restore or a second run: it only resets the password.
    assert _psql(server, name, "-f", str(SQL), env=env).returncode == 0

    migrated = _manage(server, name, server["owner"], "migrate", "--noinput", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    granted = _manage(server, name, server["owner"], "grant_app_role", role)
    assert granted.returncode == 0, granted.stderr

    attributes = _psql(
        server,
        name,
        "-tAc",
        f"SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = '{role}'",
    )
    assert attributes.stdout.strip() == "f|f|f"
    owner = _psql(
        server, name, "-tAc", "SELECT tableowner FROM pg_tables WHERE tablename = 'exams_auditentry'"
    )
    assert owner.stdout.strip() == server["owner"] != role

    app = _manage(server, name, role, "shell", "-c", APP_SCRIPT)
    assert app.returncode == 0, app.stderr
    assert "left None None role_check 0" in app.stdout

    def as_app(sql: str) -> subprocess.CompletedProcess:
        return _psql(server, name, "-v", "ON_ERROR_STOP=1", "-tAc", sql, user=role)

    inserted = as_app(
        "INSERT INTO exams_auditentry (created_at, actor_label, action, subject_label, details) "
        "VALUES (now(), 'system', 'role_check_raw', '', '{}') RETURNING id"
    )
    assert inserted.returncode == 0, inserted.stderr
    assert as_app("SELECT count(*) FROM exams_auditentry").stdout.strip() == "2"
    assert as_app("SELECT count(*) > 0 FROM django_migrations").stdout.strip() == "t"
    for sql, refusal in (
        ("UPDATE exams_auditentry SET action = 'forged'", "permission denied"),
        ("UPDATE exams_auditentry SET subject_label = 'forged'", "permission denied"),
        ("DELETE FROM exams_auditentry", "permission denied"),
        ("TRUNCATE exams_auditentry", "permission denied"),
        ("ALTER TABLE exams_auditentry DISABLE TRIGGER exams_auditentry_append_only", "must be owner"),
        ("ALTER TABLE exams_auditentry DISABLE TRIGGER ALL", "must be owner"),
        ("DROP TABLE exams_auditentry", "must be owner"),
        ("TRUNCATE exams_exam CASCADE", "permission denied"),
        ("DELETE FROM django_migrations WHERE app = 'exams'", "permission denied"),
        # Nor can it make tables of its own (so it cannot run a migration either).
        ("CREATE TABLE exams_mine (id int)", "permission denied for schema public"),
    ):
        result = as_app(sql)
        assert result.returncode != 0 and refusal in result.stderr, (sql, result.stdout, result.stderr)
    # Emptying a link is the one UPDATE the role may make; the trigger still refuses pointing it elsewhere.
    assert as_app("UPDATE exams_auditentry SET exam_id = NULL").returncode == 0
    moved = as_app("UPDATE exams_auditentry SET actor_id = 1")
    assert moved.returncode != 0 and "append-only" in moved.stderr
    # Erasure may rewrite a value in details to "[erased]"; the trigger refuses any other rewrite.
    with_email = as_app(
        "INSERT INTO exams_auditentry (created_at, actor_label, action, subject_label, details) "
        "VALUES (now(), 'system', 'role_check_erase', '', '{\"email\": \"ada@example.org\"}')"
    )
    assert with_email.returncode == 0, with_email.stderr
    erased = as_app(
        "UPDATE exams_auditentry SET details = jsonb_set(details, '{email}', '\"[erased]\"') "
        "WHERE action = 'role_check_erase'"
    )
    assert erased.returncode == 0, erased.stderr
    forged = as_app("UPDATE exams_auditentry SET details = '{}'")
    assert forged.returncode != 0 and "append-only" in forged.stderr, forged.stderr
    relabelled = as_app("UPDATE exams_auditentry SET actor_label = 'someone'")
    assert relabelled.returncode != 0 and "append-only" in relabelled.stderr, relabelled.stderr
    assert as_app("SELECT count(*) FROM exams_auditentry").stdout.strip() == "3"


def test_it_refuses_to_grant_a_superuser(server, database) -> None:
    name, _ = database
    migrated = _manage(server, name, server["owner"], "migrate", "--noinput", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    result = _manage(server, name, server["owner"], "grant_app_role", server["owner"])
    assert result.returncode == 2
    assert "is a superuser" in result.stderr and "Traceback" not in result.stderr
