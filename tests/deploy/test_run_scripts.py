"""bin/run and the CI scripts.

bin/run is run for real from a copy of it in a temporary checkout whose .venv
holds stand-ins for python, daphne and celery. The stand-ins log what they were
asked to do and, like Celery's pool, start a child process of their own, so the
tests see whether stopping reaches whole process groups.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ("bin/run", "bin/capacity", ".ci/run", ".ci/ensure-services")

PYTHON_STUB = """#!/usr/bin/env bash
echo "python $* SECRET_KEY=${SECRET_KEY:-}" >> "$STUB_LOG"
# What the real migrate leaves behind in embedded mode, and the umask it ran under.
[[ "$*" == *migrate* && -z "${DATABASE_URL:-}" ]] && touch "${VAR_DIR:-var}/db.sqlite3"
[[ "$*" == *migrate* ]] && umask > "$STUB_LOG.umask"
[[ "$*" == *"${STUB_FAIL_ON:-never}"* ]] && exit 3
exit 0
"""

SERVER_STUB = """#!/usr/bin/env bash
echo "server $$ $(basename "$0") $*" >> "$STUB_LOG"
[[ -n "${STUB_EXIT_AT_ONCE:-}" ]] && exit 0
sleep 300 &
echo "child $! $(basename "$0")" >> "$STUB_LOG"
wait
"""

# No access log (it would print link tokens) and the websocket message cap, as in
# docker-compose.yml and the Dockerfile.
DAPHNE_LIMITS = ["--websocket-max-message-size", "1048576", "--websocket-max-frame-size", "1048576"]
DAPHNE_ARGS = ["-v", "0", "-b", "127.0.0.1"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_it_has_executable_scripts_that_parse(script: str) -> None:
    path = REPO / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_it_refuses_unknown_ensure_services_modes() -> None:
    result = subprocess.run(
        [str(REPO / ".ci/ensure-services"), "--sometimes"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "usage" in result.stderr


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    shutil.copy2(REPO / "bin/run", tmp_path / "bin/run")
    venv_bin = tmp_path / ".venv/bin"
    venv_bin.mkdir(parents=True)
    for name, text in (("python", PYTHON_STUB), ("daphne", SERVER_STUB), ("celery", SERVER_STUB)):
        (venv_bin / name).write_text(text)
        (venv_bin / name).chmod(0o755)
    return tmp_path


# bin/run's grace period before it kills a process group, shortened for the
# tests; every wait below is derived from it.
STOP_GRACE_SECONDS = 5
# Time for the stubs to start or exit once told: they are shell one-liners.
STUB_SECONDS = 10


def _env(checkout: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PORT", "SECRET_KEY")
    }
    env.update(STUB_LOG=str(checkout / "stub.log"), STOP_GRACE_SECONDS=str(STOP_GRACE_SECONDS), **extra)
    return env


def _default_signals() -> None:
    """In the child before exec: a shell started from a non-interactive background
    job inherits SIGINT and SIGQUIT as ignored, and bash cannot trap a signal that
    was ignored on entry. A terminal gives bin/run the default disposition."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _run(checkout: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(checkout / "bin/run")], env=env, preexec_fn=_default_signals)


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _log(checkout: Path) -> list[list[str]]:
    path = checkout / "stub.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_for(predicate, timeout: float = STUB_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


SERVICES = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/proctor",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


@pytest.fixture
def services_run(checkout: Path) -> Iterator[tuple[subprocess.Popen, Path, str]]:
    """bin/run in services mode on a free port, once all three processes and their children are up."""
    port = _free_port()
    process = _run(checkout, _env(checkout, PORT=port, **SERVICES))
    try:
        assert _wait_for(lambda: sum(entry[0] == "child" for entry in _log(checkout)) == 3)
        yield process, checkout, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for entry in _log(checkout):
            if entry[0] in ("server", "child"):
                try:
                    os.kill(int(entry[1]), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _pids(checkout: Path) -> list[int]:
    return [int(entry[1]) for entry in _log(checkout) if entry[0] in ("server", "child")]


def _steps(checkout: Path) -> list[str]:
    return [entry[2] for entry in _log(checkout) if entry[0] == "python"]


def test_it_checks_migrates_seeds_and_execs_daphne_on_embedded_modes_first_run(checkout: Path) -> None:
    port = _free_port()
    process = _run(checkout, _env(checkout, PORT=port, STUB_EXIT_AT_ONCE="1"))
    assert process.wait(timeout=STUB_SECONDS) == 0
    log = _log(checkout)
    assert [entry[:3] for entry in log[:3]] == [
        ["python", "manage.py", "preflight"],
        ["python", "manage.py", "migrate"],
        ["python", "manage.py", "seed_demo"],
    ]
    assert log[3][2:] == ["daphne", *DAPHNE_ARGS, "-p", port, *DAPHNE_LIMITS, "proctor.asgi:application"]
    assert int(log[3][1]) == process.pid, "daphne should replace bin/run (exec), not run beside it"
    assert len(log) == 4


def test_it_seeds_the_demo_again_only_when_asked(checkout: Path) -> None:
    (checkout / "var").mkdir()
    (checkout / "var/db.sqlite3").touch()
    env = _env(checkout, PORT=_free_port(), STUB_EXIT_AT_ONCE="1")
    assert subprocess.run([str(checkout / "bin/run")], env=env, timeout=30).returncode == 0
    assert _steps(checkout) == ["preflight", "migrate"]
    (checkout / "stub.log").unlink()
    assert subprocess.run([str(checkout / "bin/run")], env={**env, "DEMO": "1"}, timeout=30).returncode == 0
    assert _steps(checkout) == ["preflight", "migrate", "seed_demo"]


def test_it_never_seeds_when_told_not_to(checkout: Path) -> None:
    env = _env(checkout, PORT=_free_port(), STUB_EXIT_AT_ONCE="1", DEMO="0")
    assert subprocess.run([str(checkout / "bin/run")], env=env, timeout=30).returncode == 0
    assert _steps(checkout) == ["preflight", "migrate"]


def test_it_creates_var_files_for_its_user_only(checkout: Path) -> None:
    env = _env(checkout, PORT=_free_port(), STUB_EXIT_AT_ONCE="1")
    assert subprocess.run([str(checkout / "bin/run")], env=env, timeout=30).returncode == 0
    assert (checkout / "stub.log.umask").read_text().strip() == "0077"
    assert (checkout / "var/db.sqlite3").stat().st_mode & 0o777 == 0o600


def test_it_starts_daphne_worker_and_beat_with_both_services(services_run) -> None:
    _, checkout, port = services_run
    started = sorted(" ".join(entry[2:]) for entry in _log(checkout) if entry[0] == "server")
    assert started == [
        "celery -A proctor beat -l info -s var/celerybeat-schedule",
        "celery -A proctor worker -Q celery,housekeeping -l info --concurrency 2",
        f"daphne {' '.join(DAPHNE_ARGS)} -p {port} {' '.join(DAPHNE_LIMITS)} proctor.asgi:application",
    ]
    # Services mode seeds no demo accounts unless DEMO=1 asks.
    assert _steps(checkout) == ["preflight", "migrate"]


def test_it_starts_as_many_daphne_processes_as_asked_on_consecutive_ports(checkout: Path) -> None:
    port = int(_free_port())
    process = _run(checkout, _env(checkout, PORT=str(port), DAPHNE_PROCESSES="2", **SERVICES))
    try:
        assert _wait_for(lambda: sum(entry[0] == "child" for entry in _log(checkout)) == 4)
        daphnes = sorted(
            entry[2:] for entry in _log(checkout) if entry[0] == "server" and entry[2] == "daphne"
        )
        assert [d[d.index("-p") + 1] for d in daphnes] == [str(port), str(port + 1)]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_GRACE_SECONDS + STUB_SECONDS) == 143
        assert _wait_for(lambda: not any(_alive(pid) for pid in _pids(checkout)))


def test_it_refuses_a_daphne_count_that_is_not_a_number(checkout: Path) -> None:
    process = subprocess.run(
        [str(checkout / "bin/run")],
        env=_env(checkout, PORT=_free_port(), DAPHNE_PROCESSES="two", **SERVICES),
        timeout=30,
        capture_output=True,
        text=True,
    )
    assert process.returncode == 2 and "DAPHNE_PROCESSES must be a whole number" in process.stderr
    assert not any(entry[0] == "server" for entry in _log(checkout))


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_it_stops_everything_on_a_signal(services_run, sig: signal.Signals, status: int) -> None:
    process, checkout, _ = services_run
    process.send_signal(sig)
    assert process.wait(timeout=STOP_GRACE_SECONDS + STUB_SECONDS) == status
    assert _wait_for(lambda: not any(_alive(pid) for pid in _pids(checkout)))


def test_it_stops_the_others_when_one_dies(services_run) -> None:
    process, checkout, _ = services_run
    worker = next(int(e[1]) for e in _log(checkout) if e[0] == "server" and e[5:6] == ["worker"])
    os.kill(worker, signal.SIGKILL)
    assert process.wait(timeout=STOP_GRACE_SECONDS + STUB_SECONDS) != 0
    assert _wait_for(lambda: not any(_alive(pid) for pid in _pids(checkout)))


@pytest.mark.parametrize("step", ["preflight", "migrate"])
def test_it_stops_before_serving_when_a_step_fails(checkout: Path, step: str) -> None:
    process = subprocess.run(
        [str(checkout / "bin/run")],
        env=_env(checkout, STUB_FAIL_ON=step, **SERVICES),
        timeout=30,
    )
    assert process.returncode != 0
    assert [entry[0] for entry in _log(checkout)] == ["python"] * (1 + (step == "migrate"))


def test_it_takes_dotenv_values_literally_without_overriding_the_environment(checkout: Path) -> None:
    (checkout / ".env").write_text("# comment\nSECRET_KEY='a$b\"c d'\nPORT=9999\nREDIS_URL=\n")
    process = subprocess.run(
        [str(checkout / "bin/run")],
        env=_env(checkout, PORT="8124", STUB_EXIT_AT_ONCE="1"),
        timeout=30,
    )
    assert process.returncode == 0
    log = (checkout / "stub.log").read_text().splitlines()
    assert log[0].endswith('SECRET_KEY=a$b"c d')
    assert "-p 8124 " in log[-1]
