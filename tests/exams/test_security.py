"""The web layer's defences: secure settings on a server, the Content-Security-Policy,
password rules, the client address, the limits on candidate links (refused tokens per
address, valid ones per token), the candidate socket's message budget, debounced
signals and daphne's size limit."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from tests.conftest import daphne_start, free_port, process_stop, service_env

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = [(b"origin", b"http://127.0.0.1")]


def _settings_in_a_fresh_process(env: dict[str, str], *names: str) -> dict:
    """The named settings as a process started with exactly ``env`` sees them."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}, default=str))"
    )
    base = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "proctor.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


SERVER_ENV = {
    "DJANGO_DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgres://proctor@127.0.0.1:5432/proctor",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ALLOWED_HOSTS": "proctor.example.org",
}
SECURE_NAMES = (
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_PROXY_SSL_HEADER",
    "BEHIND_PROXY",
    "X_FRAME_OPTIONS",
)


# ---------------------------------------------------------------- settings


def test_it_passes_check_deploy_with_the_production_settings():
    """What CI runs: no warning at all with DEBUG off, a real key and a database."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={"PATH": os.environ["PATH"], **SERVER_ENV},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_is_secure_by_default_on_a_server():
    found = _settings_in_a_fresh_process(SERVER_ENV, *SECURE_NAMES)
    assert found == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "BEHIND_PROXY": True,
        "X_FRAME_OPTIONS": "DENY",
    }


def test_it_serves_plain_http_in_embedded_mode(tmp_path):
    """make run on http://127.0.0.1: no redirect, cookies a plain-http browser keeps."""
    found = _settings_in_a_fresh_process({"VAR_DIR": str(tmp_path)}, *SECURE_NAMES)
    assert found == {
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_PROXY_SSL_HEADER": None,
        "BEHIND_PROXY": False,
        "X_FRAME_OPTIONS": "DENY",
    }


@pytest.mark.django_db
def test_it_redirects_plain_http_and_sends_hsts_over_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    plain = Client().get("/accounts/login/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    secure = Client().get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert secure["X-Frame-Options"] == "DENY"


# ---------------------------------------------------------------- Content-Security-Policy


def _policy(response) -> dict[str, str]:
    directives = (part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives if d[0]}


@pytest.mark.django_db
def test_it_sends_a_strict_policy_on_pages(proctor, candidate):
    staff = Client()
    staff.force_login(proctor)
    for response in (
        Client().get("/accounts/login/"),
        staff.get("/proctor/"),
        Client().get(f"/take/{candidate.token}/"),
    ):
        policy = _policy(response)
        assert policy["default-src"] == "'self'"
        assert policy["script-src"] == "'self'"
        assert policy["style-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'"
        assert "unsafe" not in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_it_lets_the_exam_page_frame_its_lms_only(live_session):
    exam = live_session.exam
    exam.external_url = "https://lms.example.edu/quiz/42?attempt=1"
    exam.save()
    page = Client().get(f"/take/{live_session.candidate.token}/exam/")
    assert page.status_code == 200 and b"<iframe" in page.content
    assert _policy(page)["frame-src"] == "https://lms.example.edu"
    assert _policy(Client().get("/accounts/login/"))["frame-src"] == "'none'"


def test_it_keeps_style_and_script_out_of_the_templates():
    """What lets the policy stay strict: no inline script, handler or style attribute."""
    offenders = []
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        for needle in (" style=", " onclick=", " onload=", " onsubmit=", "<style", "javascript:"):
            if needle in text:
                offenders.append(f"{template.relative_to(ROOT)}: {needle.strip()}")
        for line in text.splitlines():
            if "<script" in line and " src=" not in line:
                offenders.append(f"{template.relative_to(ROOT)}: inline <script>")
    assert offenders == []


# ---------------------------------------------------------------- passwords


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short-1", "too short"),
        ("password123", "too common"),
        ("8675309123456", "entirely numeric"),
        ("margaret.hamilton", "too similar"),
    ],
)
def test_it_refuses_a_weak_staff_password(password, why):
    with pytest.raises(CommandError, match=why):
        call_command(
            "create_staff", "--username", "margaret.hamilton", "--password", password, "--role", "proctor"
        )
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="margaret.hamilton").exists()


# ---------------------------------------------------------------- the client address


@pytest.mark.parametrize(
    ("behind_proxy", "forwarded_for", "expected"),
    [
        (True, "198.51.100.7", "198.51.100.7"),
        (True, "203.0.113.99, 198.51.100.7", "198.51.100.7"),  # the first entry is the client's word
        (True, "not-an-address", "172.18.0.1"),
        (True, None, "172.18.0.1"),
        (False, "198.51.100.7", "172.18.0.1"),  # no proxy: nobody vouches for the header
    ],
)
def test_it_reads_the_client_address_behind_the_proxy_only(settings, behind_proxy, forwarded_for, expected):
    from exams import limits

    settings.BEHIND_PROXY = behind_proxy
    assert limits.client_ip("172.18.0.1", forwarded_for) == expected
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for else []
    assert limits.scope_ip({"client": ("172.18.0.1", 5000), "headers": headers}) == expected


def test_it_says_once_which_client_address_it_believes(settings, monkeypatch, caplog):
    """So an operator can tell "behind a proxy" from "direct" (README, Security)."""
    from exams import limits

    monkeypatch.setattr(limits, "_told", False)
    settings.BEHIND_PROXY = True
    with caplog.at_level("INFO", logger="exams.limits"):
        limits.client_ip("172.18.0.1", "203.0.113.99, 198.51.100.7")
        limits.client_ip("172.18.0.1", "198.51.100.8")
    told = [r.getMessage() for r in caplog.records if r.name == "exams.limits"]
    assert told == [
        "client address of the first request: 198.51.100.7 "
        "(the last X-Forwarded-For entry; BEHIND_PROXY=true)"
    ]


def test_it_pools_database_connections_per_process_on_a_server():
    """Under ASGI each request has a thread of its own; without a pool each kept a
    connection, and a hall of 200 ran PostgreSQL out of them."""
    pooled = _settings_in_a_fresh_process({**SERVER_ENV, "DB_POOL_MAX_SIZE": "12"}, "DATABASES")
    default = pooled["DATABASES"]["default"]
    assert default["CONN_MAX_AGE"] == 0
    assert default["OPTIONS"]["pool"] == {"min_size": 1, "max_size": 12, "timeout": 30, "max_idle": 300}
    unpooled = _settings_in_a_fresh_process({**SERVER_ENV, "DB_POOL": "false"}, "DATABASES")
    assert "pool" not in unpooled["DATABASES"]["default"].get("OPTIONS", {})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"}, "DB_POOL_MIN_SIZE"),
        ({"TAKE_REQUESTS_PER_MINUTE": "600"}, "TAKE_TOKEN_REQUESTS_PER_MINUTE"),
    ],
)
def test_it_refuses_to_start_with_a_pool_or_a_limit_that_cannot_work(env, message):
    base = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "proctor.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**base, **SERVER_ENV, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and message in result.stderr


# ---------------------------------------------------------------- limits on candidate links


@pytest.fixture
def address(settings):
    """Limits on, counters of this test's own (a fresh cache key prefix: candidate ids
    repeat across runs in one minute), and an address no other test used."""
    settings.RATELIMIT_ENABLE = True
    default = {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
    settings.CACHES = {**settings.CACHES, "default": default}
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def _guess(n: int) -> str:
    return f"guess-{n:040d}"


@pytest.mark.django_db(transaction=True)
def test_it_keeps_a_hall_in_while_a_neighbour_guesses_tokens(live_session, address, settings):
    """The issue's reproduction: one address (an exam hall), a valid candidate, and a
    neighbour sending 31 made-up tokens in a minute (TAKE_REFUSALS_PER_MINUTE is 30)."""
    from asgiref.sync import async_to_sync

    from exams.consumers import CLOSE_RATE_LIMITED

    assert settings.TAKE_REFUSALS_PER_MINUTE == 30
    token = live_session.candidate.token
    client = Client(REMOTE_ADDR=address)
    assert client.get(f"/take/{token}/exam/").status_code == 200
    statuses = [client.get(f"/take/{_guess(n)}/exam/").status_code for n in range(31)]
    assert statuses == [404] * 31  # now over the limit: the address's next unknown token waits
    assert client.get(f"/take/{_guess(99)}/finish", follow=False).status_code == 405  # GET: never looked up
    assert client.post(f"/take/{_guess(99)}/finish").status_code == 429

    assert client.get(f"/take/{token}/exam/").status_code == 200
    (first, closed), (guess_first, guess_closed) = async_to_sync(_open_each)([token, _guess(100)], address)
    assert first["type"] == "status" and not closed
    assert guess_first["code"] == "too_many_requests" and guess_closed["code"] == CLOSE_RATE_LIMITED
    finished = client.post(f"/take/{token}/finish")
    assert finished.status_code == 302 and finished["Location"] == f"/take/{token}/done/"
    live_session.refresh_from_db()
    assert live_session.state == "submitted"


@pytest.mark.django_db
def test_it_stops_an_address_that_guesses_tokens(candidate, address, settings):
    from exams.models import AuditEntry

    settings.TAKE_REFUSALS_PER_MINUTE = 3
    client = Client(REMOTE_ADDR=address)
    statuses = [client.get(f"/take/{_guess(n)}/").status_code for n in range(6)]
    assert statuses == [404] * 4 + [429] * 2  # refused once more than the limit, then stopped
    assert b"do not work came from your network" in client.get(f"/take/{_guess(7)}/").content
    # Its real link still works; the guesses wrote at most one row.
    assert client.get(f"/take/{candidate.token}/").status_code == 200
    assert AuditEntry.objects.filter(action="link_refused").count() <= 1


@pytest.mark.django_db
def test_it_limits_a_valid_link_per_token_not_per_address(candidate, other_candidate, address, settings):
    settings.TAKE_TOKEN_REQUESTS_PER_MINUTE = 5
    client = Client(REMOTE_ADDR=address)
    statuses = [client.get(f"/take/{candidate.token}/").status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    assert b"Too many requests for this exam link" in client.get(f"/take/{candidate.token}/").content
    # The flood spent that link's budget, from any address, and nobody else's.
    assert Client(REMOTE_ADDR="192.0.2.1").get(f"/take/{candidate.token}/").status_code == 429
    assert client.get(f"/take/{other_candidate.token}/").status_code == 200


@pytest.mark.django_db
def test_it_turns_the_limits_off_with_ratelimit_enable(candidate, address, settings):
    settings.RATELIMIT_ENABLE = False
    settings.TAKE_REFUSALS_PER_MINUTE = 1
    settings.TAKE_TOKEN_REQUESTS_PER_MINUTE = 1
    client = Client(REMOTE_ADDR=address)
    assert {client.get(f"/take/{_guess(n)}/").status_code for n in range(3)} == {404}
    assert {client.get(f"/take/{candidate.token}/").status_code for _ in range(3)} == {200}


async def _open(token: str, address: str) -> tuple[WebsocketCommunicator, dict, dict]:
    from proctor.asgi import application

    communicator = WebsocketCommunicator(application, f"/ws/take/{token}/", headers=ORIGIN)
    communicator.scope["client"] = (address, 40000)
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=10)
    closed = await communicator.receive_output(timeout=10) if first.get("type") == "error" else {}
    return communicator, first, closed


async def _open_each(tokens: list[str], address: str) -> list[tuple[dict, dict]]:
    """Open a socket per token in turn, each disconnected before the next (one event loop)."""
    seen = []
    for token in tokens:
        communicator, first, closed = await _open(token, address)
        await communicator.disconnect()
        seen.append((first, closed))
    return seen


@pytest.mark.django_db(transaction=True)
async def test_it_limits_candidate_sockets_per_token(live_session, address, settings):
    from exams.consumers import CLOSE_RATE_LIMITED

    settings.TAKE_TOKEN_REQUESTS_PER_MINUTE = 2
    token = live_session.candidate.token
    for _ in range(2):
        communicator, first, _ = await _open(token, address)
        assert first["type"] == "status"
        await communicator.disconnect()
    communicator, first, closed = await _open(token, "192.0.2.1")  # another address: the same link
    assert first["code"] == "too_many_requests" and not first.get("fatal")
    assert closed == {"type": "websocket.close", "code": CLOSE_RATE_LIMITED}
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_closes_4429_only_for_refused_socket_tokens(live_session, address, settings):
    from exams.consumers import CLOSE_RATE_LIMITED, CLOSE_REFUSED

    settings.TAKE_REFUSALS_PER_MINUTE = 2
    for n in range(3):
        communicator, first, closed = await _open(_guess(n), address)
        assert first["code"] == "unknown_token" and closed["code"] == CLOSE_REFUSED
        await communicator.disconnect()
    communicator, first, closed = await _open(_guess(3), address)
    assert first["code"] == "too_many_requests" and closed["code"] == CLOSE_RATE_LIMITED
    await communicator.disconnect()
    communicator, first, closed = await _open(live_session.candidate.token, address)
    assert first["type"] == "status" and not closed
    await communicator.disconnect()


# ---------------------------------------------------------------- the socket's budget


@pytest.mark.django_db(transaction=True)
async def test_it_closes_a_socket_that_keeps_flooding_and_audits_it_once(live_session):
    """Heartbeats, chat and unknown types alike spend one budget; a client that keeps
    sending far over it is closed with CLOSE_FLOODING, and that is one audit row."""
    from exams.consumers import BUDGET_MESSAGES, CLOSE_FLOODING, FLOOD_DROPS
    from exams.models import AuditEntry

    communicator, first, _ = await _open(live_session.candidate.token, "10.0.0.1")
    assert first["type"] == "status"
    kinds = [{"type": "heartbeat"}, {"type": "nonsense"}, {"type": "chat", "text": ""}]
    sent = BUDGET_MESSAGES + FLOOD_DROPS + 20
    for n in range(sent):
        await communicator.send_to(text_data=json.dumps(kinds[n % len(kinds)]))
    answers = []
    while True:
        output = await communicator.receive_output(timeout=30)
        if output["type"] == "websocket.close":
            break
        answers.append(json.loads(output["text"]))
    assert output["code"] == CLOSE_FLOODING
    assert answers[-1]["code"] == "flooding" and answers[-1]["fatal"]
    assert any(a["code"] == "too_fast" and "messages are being dropped" in a["message"] for a in answers)
    await communicator.disconnect()
    flooding = AuditEntry.objects.filter(action="socket_flooding", session=live_session)
    assert await flooding.acount() == 1
    assert (await flooding.afirst()).details["dropped"] == FLOOD_DROPS


@pytest.mark.django_db(transaction=True)
async def test_it_keeps_a_socket_within_its_budget_open(live_session):
    from exams.consumers import BUDGET_MESSAGES

    communicator, _, _ = await _open(live_session.candidate.token, "10.0.0.2")
    for _ in range(BUDGET_MESSAGES):
        await communicator.send_to(text_data=json.dumps({"type": "nonsense"}))
    answers = [await communicator.receive_json_from(timeout=30) for _ in range(BUDGET_MESSAGES)]
    assert {a["code"] for a in answers} == {"unknown_type"}  # each handled, none dropped
    await communicator.disconnect()


# ---------------------------------------------------------------- debounced signals


@pytest.mark.django_db
def test_it_debounces_a_toggling_tab_into_one_event(live_session):
    from exams.models import Event
    from exams.services import signal_record

    for n in range(300):
        signal_record(session=live_session, signal="tab_hidden", active=n % 2 == 0)
    events = Event.objects.filter(session=live_session, type="tab_hidden")
    assert events.count() == 1
    event = events.get()
    assert event.details["count"] == 150 and not event.is_open


@pytest.mark.django_db
def test_it_starts_a_new_event_once_the_merge_window_has_passed(live_session):
    from datetime import timedelta

    from exams.models import Event
    from exams.services import signal_record
    from exams.services.events import SIGNAL_MERGE_SECONDS

    signal_record(session=live_session, signal="fullscreen_exit", active=True)
    signal_record(session=live_session, signal="fullscreen_exit", active=False)
    earlier = Event.objects.get(session=live_session, type="fullscreen_exit")
    earlier.ended_at -= timedelta(seconds=SIGNAL_MERGE_SECONDS + 1)
    earlier.save()
    signal_record(session=live_session, signal="fullscreen_exit", active=True)
    assert Event.objects.filter(session=live_session, type="fullscreen_exit").count() == 2


# ---------------------------------------------------------------- daphne's message size limit


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_has_daphne_refuse_an_oversized_message(live_session, tmp_path):
    """daphne (>= 4.2.2) drops a message over WEBSOCKET_MAX_MESSAGE_BYTES before the
    app sees it (autobahn fails the connection, dropping it)."""
    import websockets.sync.client
    from django.conf import settings

    port = free_port()
    log = tmp_path / "daphne.log"
    proc = daphne_start(port=port, env=service_env(), log=log)
    try:
        url = f"ws://127.0.0.1:{port}/ws/take/{live_session.candidate.token}/?resume={uuid.uuid4().hex}"
        with websockets.sync.client.connect(url, origin="http://127.0.0.1", max_size=None) as ws:
            assert json.loads(ws.recv(timeout=20))["type"] == "status"
            # Under daphne's limit but over FRAME_MAX_BYTES: the app answers and keeps the socket.
            ws.send(b"\xff\xd8\xff" + b"\0" * settings.FRAME_MAX_BYTES)
            assert json.loads(ws.recv(timeout=20))["code"] == "frame_too_large"
            # Over it: daphne drops the connection; the app never gets the message.
            ws.send(b"\xff\xd8\xff" + b"\0" * settings.WEBSOCKET_MAX_MESSAGE_BYTES)
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                ws.recv(timeout=20)
        assert log.read_text().count("'frame_too_large'") == 1  # the audit line of the first only
    finally:
        process_stop(proc, timeout=10)
