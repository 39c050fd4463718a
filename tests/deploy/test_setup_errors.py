"""A setup that lacks something fails with one sentence saying what, never a traceback.

bin/run and manage.py run for real in a subprocess with the bad environment:
SECRET_KEY unset in services mode, a bad setting, a database that does not
exist (created when the URL's user may, otherwise the line says how),
PostgreSQL or Redis that do not answer.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def _server() -> dict[str, str]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    return {
        "host": db["HOST"] or "127.0.0.1",
        "port": str(db["PORT"] or 5432),
        "user": db["USER"] or "postgres",
    }


def _env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {**{k: v for k, v in os.environ.items() if k in keep}, **extra}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _the_one_line(result: subprocess.CompletedProcess) -> str:
    """The error line, after checking it is the only thing on stderr besides INFO log lines."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_it_says_in_one_line_that_bin_run_needs_a_secret_key_in_services_mode(tmp_path: Path) -> None:
    server = _server()
    result = subprocess.run(
        [str(REPO / "bin/run")],
        cwd=REPO,
        # SECRET_KEY set but empty: a .env in the checkout cannot fill it in.
        env=_env(
            DATABASE_URL=f"postgres://{server['user']}@{server['host']}:{server['port']}/proctor_never_made",
            REDIS_URL="redis://127.0.0.1:6379/15",
            SECRET_KEY="",
            VAR_DIR=str(tmp_path),
            PORT=str(free_port()),
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = _the_one_line(result)
    assert line.startswith("manage.py: SECRET_KEY is not set") and "DATABASE_URL" in line


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SITE_URL", "proctor.example.edu", "SITE_URL must be scheme://host[:port]"),
        ("HEARTBEAT_TIMEOUT_SECONDS", "soon", "HEARTBEAT_TIMEOUT_SECONDS must be a whole number"),
        ("EMAIL_BACKEND", "sendmail", "EMAIL_BACKEND must be console or smtp"),
    ],
)
def test_it_names_a_bad_setting_in_one_line(tmp_path: Path, name: str, value: str, says: str) -> None:
    line = _the_one_line(_manage("check", VAR_DIR=str(tmp_path), **{name: value}))
    assert line.startswith(f"manage.py: {says}")


@pytest.fixture
def missing_database() -> Iterator[str]:
    name = f"proctor_preflight_{secrets.token_hex(4)}"
    yield name
    server = _server()
    subprocess.run(
        ["psql", "-X", "-h", server["host"], "-p", server["port"], "-U", server["user"], "-d", "postgres",
         "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
        capture_output=True,
    )  # fmt: skip


def _psql(sql: str) -> None:
    server = _server()
    subprocess.run(
        ["psql", "-X", "-h", server["host"], "-p", server["port"], "-U", server["user"], "-d", "postgres",
         "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
    )  # fmt: skip


def _database_url(user: str, name: str) -> str:
    server = _server()
    return f"postgres://{user}@{server['host']}:{server['port']}/{name}"


@pytest.mark.services
def test_it_creates_a_missing_database_when_the_user_may(missing_database: str) -> None:
    result = _manage(
        "preflight",
        DATABASE_URL=_database_url(_server()["user"], missing_database),
        REDIS_URL=os.environ["REDIS_URL"],
        SECRET_KEY="test-only-not-a-secret",
        EMAIL_BACKEND="smtp",
    )
    assert result.returncode == 0, result.stderr
    assert f'created the PostgreSQL database "{missing_database}"' in result.stderr
    again = _manage(
        "preflight",
        DATABASE_URL=_database_url(_server()["user"], missing_database),
        REDIS_URL=os.environ["REDIS_URL"],
        SECRET_KEY="test-only-not-a-secret",
        EMAIL_BACKEND="smtp",
    )
    assert again.returncode == 0 and "created" not in again.stderr


@pytest.fixture
def user_without_createdb() -> Iterator[str]:
    role = f"proctor_nocreatedb_{secrets.token_hex(4)}"
    _psql(f"CREATE ROLE {role} LOGIN NOCREATEDB")
    yield role
    _psql(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.services
def test_it_says_how_to_create_the_database_when_the_user_may_not(
    missing_database: str, user_without_createdb: str
) -> None:
    result = _manage(
        "preflight",
        DATABASE_URL=_database_url(user_without_createdb, missing_database),
        REDIS_URL=os.environ["REDIS_URL"],
        SECRET_KEY="test-only-not-a-secret",
    )
    line = _the_one_line(result)
    assert (
        f'database "{missing_database}" does not exist and {user_without_createdb} may not create it' in line
    )
    assert (
        f"createdb -h {_server()['host']}" in line
        and f"-O {user_without_createdb} {missing_database}" in line
    )


def test_it_says_in_one_line_that_postgresql_does_not_answer() -> None:
    result = _manage(
        "preflight",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/proctor",
        SECRET_KEY="test-only-not-a-secret",
    )
    line = _the_one_line(result)
    assert line.startswith("CommandError: cannot connect to PostgreSQL at 127.0.0.1:") and "refused" in line


@pytest.mark.services
def test_it_says_in_one_line_that_redis_does_not_answer() -> None:
    server = _server()
    result = _manage(
        "preflight",
        DATABASE_URL=_database_url(server["user"], "postgres"),
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        SECRET_KEY="test-only-not-a-secret",
        EMAIL_BACKEND="smtp",
    )
    line = _the_one_line(result)
    assert line.startswith("CommandError: Redis at 127.0.0.1:") and "does not answer (REDIS_URL)" in line
