"""Shared fixtures: named actors and the real services.

Tests marked ``services`` need PostgreSQL and Redis (DATABASE_URL and
REDIS_URL set, as ``make test`` does); tests marked ``browser`` need Debian's
chromium. Without them those tests are skipped, unless REQUIRE_SERVICES=1
(as ``.ci/run`` sets), which turns a missing service into a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

PHOTOS = Path(__file__).parent / "data" / "photos"
CHROMIUM = "/usr/bin/chromium"
REQUIRE = os.environ.get("REQUIRE_SERVICES") == "1"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def services_missing() -> str:
    db, redis = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not db or not redis:
        return "DATABASE_URL and REDIS_URL are not set (make test sets them)"
    if not _reachable(db, 5432):
        return f"PostgreSQL at {urlsplit(db).hostname} does not answer"
    if not _reachable(redis, 6379):
        return f"Redis at {urlsplit(redis).hostname} does not answer"
    return ""


def browser_missing() -> str:
    return "" if os.path.exists(CHROMIUM) else f"{CHROMIUM} is not installed (apt-get install chromium)"


def pytest_collection_modifyitems(config, items):
    missing_services = services_missing()
    missing_browser = browser_missing()
    for item in items:
        reasons = []
        if missing_services and ("services" in item.keywords or "browser" in item.keywords):
            reasons.append(missing_services)
        if missing_browser and "browser" in item.keywords:
            reasons.append(missing_browser)
        if not reasons:
            continue
        reason = "; ".join(reasons)
        if REQUIRE:
            item.add_marker(pytest.mark.usefixtures("_required_service_missing"))
            item.user_properties.append(("missing", reason))
        else:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def has_failed(request) -> bool:
    """Whether the requesting test failed in its setup or its call (for fixtures that
    print their server's log only then)."""
    reports = (getattr(request.node, f"rep_{when}", None) for when in ("setup", "call"))
    return any(report is not None and report.failed for report in reports)


@pytest.fixture
def _required_service_missing(request):
    reason = dict(request.node.user_properties).get("missing", "")
    pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")


# ---------------------------------------------------------------- media and settings


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _plain_http_test_client(settings):
    """DATABASE_URL is set, so the settings are a server's: HTTPS only. The test
    client speaks plain http, and the per-address limits would count every test's
    requests from 127.0.0.1 together; tests of those switch them back on."""
    settings.SECURE_SSL_REDIRECT = False
    settings.RATELIMIT_ENABLE = False


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each async test runs on its own event loop, but channels caches one layer
    per process. channels-redis keeps asyncio locks per channel inside it, and a
    lock made on an earlier test's loop fails with "bound to a different event
    loop" (it did, intermittently, in test_access). In production daphne has one
    loop for its lifetime, so only tests need this."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fresh_pacing(settings):
    """The server-wide pace factor lives in Redis for a minute; a test starts at the exam's own pace."""
    from exams.analysis.pacing import RedisPacing, pacing

    pacing.cache_clear()
    if settings.REDIS_URL and not services_missing():
        import redis

        redis.Redis.from_url(settings.REDIS_URL).delete(RedisPacing.KEY)
    yield
    pacing.cache_clear()


# ---------------------------------------------------------------- photos


def photo_bytes(name: str) -> bytes:
    return (PHOTOS / name).read_bytes()


@pytest.fixture(scope="session")
def obama_encoding() -> list[float]:
    from detection.core import decode_image, encode_reference

    return encode_reference(decode_image(photo_bytes("obama.jpg"))).tolist()


# ---------------------------------------------------------------- named actors


def _user(django_user_model, username: str, group: str | None):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username=username, password="correct-horse-1")
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def proctor(db, django_user_model):
    return _user(django_user_model, "proctor", "Proctor")


@pytest.fixture
def other_proctor(db, django_user_model):
    return _user(django_user_model, "other_proctor", "Proctor")


@pytest.fixture
def reviewer(db, django_user_model):
    return _user(django_user_model, "reviewer", "Reviewer")


@pytest.fixture
def second_reviewer(db, django_user_model):
    return _user(django_user_model, "second_reviewer", "Reviewer")


@pytest.fixture
def registrar(db, django_user_model):
    """Exams office staff: signs in to the admin, manages exams and imports rosters."""
    from django.contrib.auth.models import Permission

    user = _user(django_user_model, "registrar", None)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="exams",
            codename__in=["view_exam", "change_exam", "add_candidate", "view_candidate", "change_candidate"],
        )
    )
    return user


@pytest.fixture
def outsider(db, django_user_model):
    """Signed in, but neither proctor nor reviewer."""
    return _user(django_user_model, "outsider", None)


@pytest.fixture
def exam(db, proctor, request):
    """Proctored by ``proctor``, and reviewed by whichever of ``reviewer`` and
    ``second_reviewer`` the test asks for (``other_exam`` has no reviewers)."""
    from django.utils import timezone

    from exams.models import Exam

    now = timezone.now()
    exam = Exam.objects.create(
        title="Algebra final", opens_at=now - timedelta(hours=1), closes_at=now + timedelta(hours=3)
    )
    exam.proctors.add(proctor)
    for name in ("reviewer", "second_reviewer"):
        if name in request.fixturenames:
            exam.reviewers.add(request.getfixturevalue(name))
    return exam


@pytest.fixture
def other_exam(db, other_proctor):
    from django.utils import timezone

    from exams.models import Exam

    now = timezone.now()
    exam = Exam.objects.create(
        title="History midterm", opens_at=now - timedelta(hours=1), closes_at=now + timedelta(hours=3)
    )
    exam.proctors.add(other_proctor)
    return exam


def _candidate(exam, name: str, email: str, encodings=None):
    from exams.models import Candidate, ExamSession

    candidate = Candidate.objects.create(
        exam=exam, name=name, email=email, reference_encodings=encodings or []
    )
    ExamSession.objects.create(candidate=candidate)
    return candidate


@pytest.fixture
def candidate(exam, obama_encoding):
    return _candidate(exam, "Barack Obama", "barack@example.org", [obama_encoding])


@pytest.fixture
def other_candidate(other_exam):
    return _candidate(other_exam, "Joe Biden", "joe@example.org")


def advance(session, *states: str) -> None:
    """Walk a session along the normal path to the last of ``states``."""
    from django.utils import timezone

    now = timezone.now()
    steps = {
        "consented": lambda: session.consent(version="test", now=now),
        "verified": lambda: session.verify(now=now),
        "in_progress": lambda: session.start(now=now),
        "submitted": lambda: session.submit(now=now),
    }
    for state in states:
        steps[state]()
    session.save()


@pytest.fixture
def live_session(candidate):
    session = candidate.session
    advance(session, "consented", "verified", "in_progress")
    return session


@pytest.fixture
def chromium_path() -> str:
    return shutil.which("chromium") or CHROMIUM


# ---------------------------------------------------------------- real processes


def service_env(**extra: str) -> dict[str, str]:
    """Environment for a child process (worker, daphne) that must share the test database."""
    from django.conf import settings as dj

    db = dj.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "MEDIA_ROOT": str(dj.MEDIA_ROOT), "PYTHONUNBUFFERED": "1"}
    env.setdefault("SECRET_KEY", dj.SECRET_KEY)
    env.update(extra)
    return env


ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_stop(proc: subprocess.Popen, *, timeout: float = 20) -> None:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def daphne_start(*, port: int, env: dict[str, str], log: Path, timeout: float = 30) -> subprocess.Popen:
    """daphne serving proctor.asgi on 127.0.0.1:``port``; returns once it answers HTTP."""
    # Plain http on 127.0.0.1, no proxy in front: the server defaults (HTTPS only,
    # secure cookies, X-Forwarded-* believed) are switched off unless a test says otherwise.
    plain_http = {"SECURE_SSL_REDIRECT": "false", "SECURE_COOKIES": "false", "BEHIND_PROXY": "false"}
    env = {**plain_http, **env, "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "proctor.asgi:application"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"daphne exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/accounts/login/", timeout=2) as response:
                if response.status == 200:
                    return proc
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            pytest.fail(f"daphne did not answer on {url}:\n{log.read_text()}")
        time.sleep(0.2)


async def until(condition, *, within: float, what: str) -> float:
    """Poll ``condition`` every 0.1 s on the running loop; fail if it is still
    false after ``within`` seconds. Returns the wall time it became true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"not within {within:g} s: {what}")
        await asyncio.sleep(0.1)
    return time.time()


def celery_worker_start(
    *, env: dict[str, str], log: Path, pool: str = "solo", concurrency: int = 1, timeout: float = 60
) -> subprocess.Popen:
    """A Celery worker of proctor's app; returns once it says it is ready."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "proctor",
            "worker",
            "-Q",
            "celery,housekeeping",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
            "-n",
            f"test-{os.getpid()}-{free_port()}@%h",
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"celery worker exited early:\n{log.read_text()}")
        if b"ready." in log.read_bytes():
            return proc
        time.sleep(0.3)
    proc.terminate()
    pytest.fail(f"celery worker did not start:\n{log.read_text()}")


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    """A real Celery worker (solo pool) against the test database and real Redis."""
    from celery import current_app

    log = tmp_path / "worker.log"
    proc = celery_worker_start(env=service_env(), log=log)
    current_app.conf.task_always_eager = False
    yield proc
    process_stop(proc)
    print(log.read_text()[-3000:])


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Consumers use the database from worker threads; persistent connections
    there would outlive the test and block dropping the test database."""
    from django.db import connections

    connections.settings["default"]["CONN_MAX_AGE"] = 0
    for conn in connections.all():
        conn.settings_dict["CONN_MAX_AGE"] = 0
