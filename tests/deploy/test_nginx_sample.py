"""docs/nginx.conf, the sample reverse proxy: what the app needs of it, checked as text,
by `nginx -t`, and in front of a real daphne where nginx is installed.

In front of daphne it serves a candidate's page over HTTPS and their socket
through the websocket upgrade, and its access log carries neither token.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import daphne_start, free_port, process_stop, service_env

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "docs/nginx.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")


def _locations() -> dict[str, str]:
    text = SAMPLE.read_text()
    return dict(re.findall(r"location (\S+) \{(.*?)\n    \}", text, re.S))


def test_it_passes_the_client_and_the_scheme_to_daphne() -> None:
    locations = _locations()
    assert set(locations) == {"/", "/ws/"}
    for path, body in locations.items():
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in body, path
        assert "proxy_set_header X-Forwarded-Proto $scheme;" in body, path
        assert "proxy_set_header Host $host;" in body, path
    assert "proxy_set_header Upgrade $http_upgrade;" in locations["/ws/"]
    assert "proxy_set_header Connection $proctor_connection;" in locations["/ws/"]


def test_it_serves_https_only_and_logs_no_token_or_referer() -> None:
    text = SAMPLE.read_text()
    assert re.search(r"listen 443 ssl", text) and "return 301 https://$host$request_uri;" in text
    log_format = re.search(r"log_format proctor (.*?);", text, re.S).group(1)
    assert "$proctor_masked_uri" in log_format
    for leaky in ("$request ", "$request_uri", "$uri", "$http_referer", "$args"):
        assert leaky not in log_format, leaky
    assert all(line.split()[-1] == "proctor;" for line in re.findall(r"^\s*access_log .*$", text, re.M))


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _config(folder: Path, *, upstream: int, http: int, https: int) -> Path:
    """The sample with this machine's ports, a throwaway certificate and logs in ``folder``."""
    cert, key = _certificate(folder)
    text = SAMPLE.read_text()
    text = text.replace("/etc/letsencrypt/live/proctor.example.edu/fullchain.pem", str(cert))
    text = text.replace("/etc/letsencrypt/live/proctor.example.edu/privkey.pem", str(key))
    text = text.replace("/var/log/nginx/", f"{folder}/")
    text = text.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};")
    text = re.sub(r"^\s*listen \[::\].*$", "", text, flags=re.M)
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http};").replace(
        "listen 443 ", f"listen 127.0.0.1:{https} "
    )
    (folder / "proctor.conf").write_text(text)
    main = folder / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    main.write_text(f"{user}events {{}}\nhttp {{\n    include {folder}/proctor.conf;\n}}\n")
    return main


def _nginx(folder: Path, main: Path, *args: str) -> list[str]:
    return [
        NGINX,
        "-p",
        str(folder),
        "-c",
        str(main),
        "-g",
        f"pid {folder}/nginx.pid; error_log {folder}/main.log;",
        *args,
    ]


@needs_nginx
def test_it_is_a_valid_nginx_configuration(tmp_path: Path) -> None:
    main = _config(tmp_path, upstream=free_port(), http=free_port(), https=free_port())
    result = subprocess.run(_nginx(tmp_path, main, "-t"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def proxied(transactional_db, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """daphne as in production (BEHIND_PROXY) with nginx and the sample in front:
    (https url, nginx's access log)."""
    upstream, http, https = free_port(), free_port(), free_port()
    daphne = daphne_start(port=upstream, env=service_env(BEHIND_PROXY="true"), log=tmp_path / "daphne.log")
    main = _config(tmp_path, upstream=upstream, http=http, https=https)
    nginx = subprocess.Popen(_nginx(tmp_path, main, "-g", "daemon off;"), stderr=subprocess.PIPE)
    try:
        yield f"https://127.0.0.1:{https}", tmp_path / "proctor.access.log"
    finally:
        process_stop(nginx, timeout=10)
        process_stop(daphne, timeout=10)


def _insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _socket(url: str, token: str) -> str:
    import websockets

    async with websockets.connect(
        url.replace("https://", "wss://") + f"/ws/take/{token}/", origin=url, ssl=_insecure()
    ) as socket:
        return await asyncio.wait_for(socket.recv(), timeout=30)


@needs_nginx
@pytest.mark.services
def test_it_proxies_pages_and_sockets_and_masks_tokens_in_its_access_log(proxied, exam) -> None:
    from tests.conftest import _candidate

    url, access_log = proxied
    token = _candidate(exam, "Ada Lovelace", "ada@example.org").token
    deadline = time.monotonic() + 30  # nginx starts in well under a second; daphne is already up
    while True:
        try:
            with urllib.request.urlopen(f"{url}/take/{token}/", context=_insecure(), timeout=10) as response:
                assert response.status == 200 and "Agree and continue" in response.read().decode()
                break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.2)
    # Not started yet, so the socket is refused by the app, after the upgrade went through.
    assert "not_in_progress" in asyncio.run(_socket(url, token))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}/take/{token}/no-such-page/", context=_insecure(), timeout=10)
    assert refused.value.code == 404

    deadline = time.monotonic() + 30  # nginx writes a socket's line when it closes
    while "/ws/take/" not in (access_log.read_text() if access_log.exists() else ""):
        assert time.monotonic() < deadline, "no access log line for the socket"
        time.sleep(0.2)
    logged = access_log.read_text()
    assert '"GET /take/[token]/ HTTP/1.1" 200' in logged
    assert '"GET /ws/take/[token]/ HTTP/1.1" 101' in logged
    assert '"GET /take/[token]/no-such-page/ HTTP/1.1" 404' in logged
    assert token not in logged
