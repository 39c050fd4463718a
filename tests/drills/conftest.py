"""Private services for the failure drills: a redis-server and a PostgreSQL
cluster of their own on free ports, and daphne and a prefork Celery worker
against them. The drills stop and start these; the machine's own PostgreSQL
and Redis (and the test database) are never touched.

initdb refuses to run as root, so as root the cluster is made and run as the
``postgres`` OS user, in a folder under /tmp that user owns (pytest's tmp_path
is private to root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import (
    REQUIRE,
    ROOT,
    celery_worker_start,
    daphne_start,
    free_port,
    has_failed,
    process_stop,
)

START_TIMEOUT = 30  # seconds a service may take to answer after it starts


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def private_services_missing() -> str:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    if _postgres_bin() is None:
        return "no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb cannot run as the postgres user"
    return ""


@pytest.fixture(scope="module")
def _private_services_available() -> None:
    missing = private_services_missing()
    if missing:
        (pytest.fail if REQUIRE else pytest.skip)(f"failure drills need private services: {missing}")


def _wait(ready, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not come up within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


class PrivateRedis:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        self.starts += 1
        log = self.folder / f"redis-{self.starts}.log"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"]
            + ["--bind", "127.0.0.1", "--daemonize", "no", "--dir", str(self.folder)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        _wait(self._answers, "the private redis-server", log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            process_stop(self.proc)

    def ensure_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = _postgres_bin()
        # Under /tmp, owned by the user that runs the cluster: pytest's folders are root's alone.
        self.folder = Path(tempfile.mkdtemp(prefix="drill-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/proctor"

    def _run(self, *argv: str) -> None:
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*as_user, *argv], capture_output=True, text=True, cwd=self.folder)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--no-locale",
            "-E",
            "UTF8",
        )
        self.start()
        self._run(
            str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "proctor"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class PrivateServices:
    redis: PrivateRedis
    postgres: PrivatePostgres
    media: Path

    def env(self) -> dict[str, str]:
        """A child process's environment: the product in services mode on these services."""
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
        env.update(
            DATABASE_URL=self.postgres.url,
            REDIS_URL=self.redis.url,
            MEDIA_ROOT=str(self.media),
            SECRET_KEY=os.environ.get("SECRET_KEY") or "drill-only",
            PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, *args: str, stdin: str | None = None) -> str:
        return self.python("manage.py", *args, stdin=stdin)

    def python(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, *args], input=stdin, capture_output=True, text=True, env=self.env(), cwd=ROOT
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
        return done.stdout


@pytest.fixture(scope="module")
def private_services(_private_services_available, tmp_path_factory) -> Iterator[PrivateServices]:
    """Redis and PostgreSQL of the drills' own, migrated, for one test module."""
    folder = tmp_path_factory.mktemp("drill-services")
    services = PrivateServices(PrivateRedis(folder), PrivatePostgres(), folder / "media")
    try:
        services.redis.start()
        services.postgres.init()
        services.manage("migrate", "--noinput", "-v", "0")
        yield services
    finally:
        services.redis.stop()
        services.postgres.remove()


@dataclass
class Stack:
    """daphne and a prefork Celery worker on the private services, each restartable."""

    services: PrivateServices
    folder: Path
    port: int = field(default_factory=free_port)
    daphne: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _log(self, name: str) -> Path:
        self.starts += 1
        return self.folder / f"{self.starts:02d}-{name}.log"

    def start_daphne(self) -> None:
        self.daphne = daphne_start(port=self.port, env=self.services.env(), log=self._log("daphne"))

    def start_worker(self) -> subprocess.Popen:
        worker = celery_worker_start(
            env=self.services.env(), log=self._log("worker"), pool="prefork", concurrency=1
        )
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for proc in [self.daphne, *self.workers]:
            if proc is not None and proc.poll() is None:
                process_stop(proc)

    def logs(self) -> str:
        return "\n".join(
            f"---- {log.name} ----\n{log.read_text(errors='replace')[-4000:]}"
            for log in sorted(self.folder.glob("*.log"))
        )


@pytest.fixture
def stack(private_services, tmp_path, request) -> Iterator[Stack]:
    private_services.redis.ensure_running()
    private_services.postgres.ensure_running()
    stack = Stack(private_services, tmp_path)
    try:
        stack.start_daphne()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()
        if has_failed(request):
            print(stack.logs())
