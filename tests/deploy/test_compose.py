"""docker-compose.yml wires the production stack the way the app expects it.

No Docker engine is needed: the file is parsed and checked as data, and
`docker compose config` validates it too where the compose plugin exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml  # PyYAML, from requirements-dev.txt

REPO = Path(__file__).resolve().parents[2]
APP_SERVICES = ("web", "worker", "beat")
# The one-shot step that migrates as the owner before the app starts.
MIGRATE = "migrate"
APP_ROLE = "proctor_app"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env


def _named_volumes(service: dict) -> dict[str, str]:
    """Mount target by named volume (bind mounts start with . or /)."""
    named = {}
    for volume in service.get("volumes", []):
        source, target = (
            volume.split(":")[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
        )
        if not source.startswith((".", "/", "~")):
            named[source] = target
    return named


def test_it_has_the_five_services(services: dict) -> None:
    assert set(services) >= {"postgres", "redis", "web", "worker", "beat"}


def test_it_builds_one_image_for_web_worker_and_beat(services: dict) -> None:
    builds = {name: services[name].get("build") for name in (*APP_SERVICES, MIGRATE)}
    images = {name: services[name].get("image") for name in (*APP_SERVICES, MIGRATE)}
    assert set(builds.values()) == {"."}, builds
    assert len(set(images.values())) == 1, images


def test_it_migrates_as_the_owner_then_grants_the_app_role(services: dict) -> None:
    command = _command(services[MIGRATE])
    steps = ["manage.py preflight", "manage.py migrate --noinput", f"manage.py grant_app_role {APP_ROLE}"]
    assert all(step in command for step in steps), command
    assert [command.index(step) for step in steps] == sorted(command.index(step) for step in steps)
    assert services[MIGRATE]["restart"] == "no"
    assert services[MIGRATE]["healthcheck"] == {"disable": True}
    assert "ports" not in services[MIGRATE]


def test_it_serves_daphne_in_web_without_an_access_log(services: dict) -> None:
    """daphne's access log would print every GET /take/<token>/ and WSCONNECT /ws/take/<token>/."""
    command = _command(services["web"])
    assert "migrate" not in command, "web runs as the app role, which may not migrate"
    assert re.search(
        r"daphne -v 0 -b 0\.0\.0\.0 -p 8000 (--[a-z-]+ \S+ )*proctor\.asgi:application", command
    ), command
    assert "--access-log" not in command
    assert any(str(port).endswith("8000") for port in services["web"]["ports"])


def test_it_publishes_daphne_on_the_loopback_only(services: dict) -> None:
    """The TLS proxy on the host is the only way in: published on every interface,
    a client could skip TLS and set X-Forwarded-Proto and -For itself."""
    ports = services["web"]["ports"]
    assert ports == ["127.0.0.1:8000:8000"], ports
    for name, service in services.items():
        assert name == "web" or "ports" not in service, f"{name} publishes a port"


def test_it_caps_websocket_messages_at_the_settings_limit(services: dict) -> None:
    from django.conf import settings

    limit = str(settings.WEBSOCKET_MAX_MESSAGE_BYTES)
    command = _command(services["web"]).split()
    for flag in ("--websocket-max-message-size", "--websocket-max-frame-size"):
        assert command[command.index(flag) + 1] == limit, flag


def test_it_runs_celery_worker_and_beat(services: dict) -> None:
    assert "celery -A proctor worker" in _command(services["worker"])
    assert "--concurrency" in _command(services["worker"])
    # Frames (the default queue) and housekeeping (purge, overdue exams) both.
    assert "-Q celery,housekeeping" in _command(services["worker"])
    assert "celery -A proctor beat" in _command(services["beat"])


def _database_url(service: dict):
    # The password is an interpolation whose ":?" message would read as a query.
    return urlsplit(re.sub(r"\$\{[^}]*\}", "password", _env(service)["DATABASE_URL"]))


def test_it_points_the_app_at_the_compose_services(services: dict) -> None:
    postgres_env = _env(services["postgres"])
    for name in (*APP_SERVICES, MIGRATE):
        env = _env(services[name])
        database = _database_url(services[name])
        assert database.scheme in ("postgres", "postgresql")
        assert database.hostname == "postgres"
        assert database.path.lstrip("/") == postgres_env["POSTGRES_DB"]
        redis = urlsplit(env["REDIS_URL"])
        assert (redis.scheme, redis.hostname) == ("redis", "redis")


def test_it_runs_the_app_as_a_role_that_owns_nothing(services: dict) -> None:
    """The owner (POSTGRES_USER, a superuser in the image) only migrates; web, worker
    and beat connect as the role deploy/postgres/app-role.sql creates."""
    postgres_env = _env(services["postgres"])
    migrate = _database_url(services[MIGRATE])
    assert migrate.username == postgres_env["POSTGRES_USER"] != APP_ROLE
    assert "${POSTGRES_PASSWORD" in _env(services[MIGRATE])["DATABASE_URL"]
    for name in APP_SERVICES:
        assert _database_url(services[name]).username == APP_ROLE, name
        assert "${POSTGRES_APP_PASSWORD" in _env(services[name])["DATABASE_URL"], name
    assert postgres_env["POSTGRES_APP_PASSWORD"].startswith("${POSTGRES_APP_PASSWORD:?")
    mounts = [v.split(":") for v in services["postgres"]["volumes"] if isinstance(v, str)]
    init = [(src, dst) for src, dst, *_ in mounts if dst.startswith("/docker-entrypoint-initdb.d/")]
    assert init == [("./deploy/postgres/app-role.sql", "/docker-entrypoint-initdb.d/10-app-role.sql")]
    assert (REPO / "deploy/postgres/app-role.sql").is_file()


def test_it_keeps_no_frames_on_redis_disk(services: dict) -> None:
    """Frames pass through Redis; neither RDB snapshots nor an append-only file keep them."""
    command = services["redis"]["command"]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options == {"--save": "", "--appendonly": "no"}
    assert "volumes" not in services["redis"]


def test_it_requires_secrets_from_env(services: dict) -> None:
    for name in (*APP_SERVICES, MIGRATE):
        assert _env(services[name])["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert _env(services["postgres"])["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_it_keeps_state_in_named_volumes(compose: dict, services: dict) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for service in services.values():
        used |= set(_named_volumes(service))
    assert used <= declared, f"undeclared volumes: {used - declared}"
    assert "/var/lib/postgresql/data" in _named_volumes(services["postgres"]).values()


def test_it_shares_media_between_web_and_worker(services: dict) -> None:
    web, worker = services["web"], services["worker"]
    media_root = _env(web)["MEDIA_ROOT"]
    assert _env(worker)["MEDIA_ROOT"] == media_root
    web_volume = {v for v, target in _named_volumes(web).items() if target == media_root}
    worker_volume = {v for v, target in _named_volumes(worker).items() if target == media_root}
    assert web_volume and web_volume == worker_volume


def test_it_has_healthchecks(services: dict) -> None:
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli" in str(services["redis"]["healthcheck"]["test"])
    assert "celery -A proctor inspect ping" in str(services["worker"]["healthcheck"]["test"])
    # web uses the image's HEALTHCHECK (checked in test_dockerfile); beat
    # listens on no port, so that check must be switched off for it.
    assert "healthcheck" not in services["web"]
    assert services["beat"]["healthcheck"] == {"disable": True}


def test_it_starts_the_app_after_healthy_postgres_and_redis_and_the_migration(services: dict) -> None:
    for name in (*APP_SERVICES, MIGRATE):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    for name in APP_SERVICES:
        assert services[name]["depends_on"][MIGRATE]["condition"] == "service_completed_successfully", name


def test_it_documents_every_interpolated_variable() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.M))
    assert interpolated <= documented, f"not in .env.example: {interpolated - documented}"


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed",
)
def test_it_passes_docker_compose_config() -> None:
    env = {**os.environ, "SECRET_KEY": "test", "POSTGRES_PASSWORD": "test"}
    result = subprocess.run(
        ["docker", "compose", "-f", "docker-compose.yml", "config", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
