"""No candidate link token in what a real run writes to its terminal.

bin/run in services mode (daphne, a Celery worker and beat) on a free port
with a database of its own, which its preflight creates. A candidate walks in
through every page: the link, consent, the verification page, the photo upload
(verified by the worker), the exam page and the socket; then a refused POST
(403, no CSRF cookie) and a page that does not exist (404), both of which
Django logs with the request's path. Everything bin/run and its children
wrote must not contain the token.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PHOTOS, free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.services, pytest.mark.slow]

# Creates an open exam with one candidate in the run's database; prints the token.
CANDIDATE_SCRIPT = """
from datetime import timedelta
from django.utils import timezone
from exams.models import Candidate, Exam, ExamSession
now = timezone.now()
exam = Exam.objects.create(
    title="Log check", opens_at=now - timedelta(hours=1), closes_at=now + timedelta(hours=2)
)
candidate = Candidate.objects.create(exam=exam, name="Ada Lovelace", email="ada@example.org")
ExamSession.objects.create(candidate=candidate)
print("token", candidate.token)
"""

# bin/run stops its children within its grace period (STOP_GRACE_SECONDS, 20 by default).
STOP_SECONDS = 30


@dataclass
class Run:
    url: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/accounts/login/", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or "5432"
    name = f"proctor_logrun_{secrets.token_hex(4)}"
    server_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "DEMO", "DJANGO_ALLOW_ASYNC"))}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{host}:{port}/{name}",
        PORT=str(server_port),
        VAR_DIR=str(tmp_path / "var"),
        MEDIA_ROOT=str(tmp_path / "media"),
        CELERY_CONCURRENCY="1",
        DAPHNE_PROCESSES="1",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "run.log"
    process = subprocess.Popen(
        [str(REPO / "bin/run")],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{server_port}"
    try:
        # A fresh database is created and migrated first; the worker loads its models later.
        deadline = time.monotonic() + 180
        while not _answers(url):
            assert process.poll() is None, f"bin/run exited early:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"bin/run did not answer:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        yield Run(url=url, env=env, log=log, process=process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        subprocess.run(
            ["psql", "-X", "-h", host, "-p", port, "-U", db["USER"], "-d", "postgres", "-qc",
             f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
            capture_output=True,
        )  # fmt: skip


class Candidate:
    """A browser without JavaScript: cookies, the CSRF token, redirects followed."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def _csrf(self) -> str:
        return next(c.value for c in self.cookies if c.name == "csrftoken")

    def request(
        self, path: str, data: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, str, str]:
        """(status, final path, body)."""
        request = urllib.request.Request(
            f"{self.url}/take/{self.token}/{path}", data=data, headers=headers or {}
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, urllib.parse.urlsplit(response.url).path, response.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, "", refused.read().decode()

    def form(self, path: str, fields: dict[str, str]) -> tuple[int, str, str]:
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": self._csrf(), **fields}).encode()
        return self.request(path, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def upload(self, path: str, data: bytes, content_type: str) -> tuple[int, str, str]:
        return self.request(path, data, {"Content-Type": content_type, "X-CSRFToken": self._csrf()})


async def _socket(url: str, token: str) -> dict:
    import websockets

    ws_url = url.replace("http://", "ws://") + f"/ws/take/{token}/?resume={secrets.token_hex(16)}"
    async with websockets.connect(ws_url, origin=url) as socket:
        return json.loads(await asyncio.wait_for(socket.recv(), timeout=30))


def test_it_writes_no_candidate_token_in_a_real_runs_output(run: Run) -> None:
    from django.conf import settings

    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", CANDIDATE_SCRIPT],
        cwd=REPO,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    token = re.search(r"^token (\S+)$", made.stdout, re.M).group(1)
    candidate = Candidate(run.url, token)

    status, path, body = candidate.request("")
    assert status == 200 and "Agree and continue" in body
    status, path, _ = candidate.form("", {"agree": "yes"})
    assert (status, path) == (200, f"/take/{token}/verify/"), "consent leads to the verification page"
    status, _, _ = candidate.upload("verify/photo", (PHOTOS / "obama.jpg").read_bytes(), "image/jpeg")
    assert status == 202
    # The worker verifies within its task time limit (it loads its models first).
    deadline = time.monotonic() + 2 * settings.CELERY_TASK_TIME_LIMIT
    while (state := json.loads(candidate.request("verify/status")[2]))["state"] != "verified":
        assert state["status"] in ("pending", ""), state
        assert time.monotonic() < deadline, f"not verified: {state}"
        time.sleep(0.5)
    status, path, body = candidate.request("exam/")
    assert (status, path) == (200, f"/take/{token}/exam/")
    assert asyncio.run(_socket(run.url, token))["type"] == "status"

    # Refused and unknown requests, each logged by Django with its path.
    without_cookie = Candidate(run.url, token)
    assert (
        without_cookie.request("finish", b"", {"Content-Type": "application/x-www-form-urlencoded"})[0] == 403
    )
    assert candidate.request("no-such-page/")[0] == 404

    run.process.send_signal(signal.SIGTERM)
    run.process.wait(timeout=STOP_SECONDS)
    output = run.log.read_text(errors="replace")
    assert "Forbidden (CSRF cookie not set.): /take/[token]/finish" in output, output[-4000:]
    assert "Not Found: /take/[token]/no-such-page/" in output, output[-4000:]
    # The worker's log is part of the output (no roster photo: the upload became the reference).
    assert re.search(r"analysis\.verify_identity\[\S+\] succeeded .*'reference captured'", output)
    for secret in (token, "ada@example.org"):
        assert secret not in output, [line for line in output.splitlines() if secret in line]
    assert "Traceback" not in output
    # umask 077: what the run wrote (beat's schedule, the reference photo) is its user's alone.
    written = [path for root in ("VAR_DIR", "MEDIA_ROOT") for path in Path(run.env[root]).rglob("*")]
    assert any(path.is_file() for path in written)
    assert [str(path) for path in written if path.stat().st_mode & 0o077] == []
