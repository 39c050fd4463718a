"""The Dockerfile builds its venv exactly like `make install` and runs unprivileged."""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def _pip_installs(commands: list[str]) -> list[list[str]]:
    """`pip install` argument lists, minus the pip path and cache flags."""
    installs = []
    for command in commands:
        words = shlex.split(command)
        for i, word in enumerate(words[:-1]):
            if word.endswith("pip") and words[i + 1] == "install":
                installs.append([w for w in words[i + 1 :] if w != "--no-cache-dir"])
                break
    return installs


def _dockerfile_pip_installs() -> list[list[str]]:
    builder = _stages()[0]
    commands = []
    for keyword, rest in builder:
        if keyword == "RUN":
            commands += [part.strip() for part in rest.split("&&")]
    return _pip_installs(commands)


def _makefile_pip_installs() -> list[list[str]]:
    dry_run = subprocess.run(
        ["make", "-n", "-B", "install"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return _pip_installs(dry_run.stdout.splitlines())


def test_it_installs_like_the_makefile() -> None:
    makefile = _makefile_pip_installs()
    assert makefile == [
        ["install", "--upgrade", "pip", "setuptools<81", "wheel"],
        ["install", "-r", "requirements.txt"],
    ]
    assert _dockerfile_pip_installs() == makefile


def test_it_copies_what_requirements_txt_refers_to_before_installing() -> None:
    builder = _stages()[0]
    copied_before_install = []
    for keyword, rest in builder:
        if keyword == "RUN" and "-r requirements.txt" in rest:
            break
        if keyword == "COPY":
            copied_before_install += shlex.split(rest)[:-1]
    local = ["requirements.txt"]
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("./"):
            local.append(str(Path(line) / "pyproject.toml"))
    for path in local:
        assert any(
            Path(path) == Path(src) or Path(src) in Path(path).parents for src in copied_before_install
        ), f"{path} not copied before pip install"


def test_it_is_multi_stage_and_copies_the_venv() -> None:
    stages = _stages()
    assert len(stages) >= 2
    assert ("RUN", "python -m venv /opt/venv") in stages[0]
    assert any(k == "COPY" and rest.startswith("--from=builder /opt/venv") for k, rest in stages[-1])


def test_it_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in _stages()[-1] if keyword == "USER"]
    assert users, "no USER in the runtime stage"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_it_collects_static_and_serves_on_8000() -> None:
    runtime = _stages()[-1]
    assert any(k == "RUN" and "manage.py collectstatic --noinput" in rest for k, rest in runtime)
    assert ("EXPOSE", "8000") in runtime
    assert any(k == "HEALTHCHECK" and "8000" in rest for k, rest in runtime)
    cmd = [rest for k, rest in runtime if k == "CMD"][-1]
    assert "proctor.asgi:application" in cmd


def test_it_caps_websocket_messages_at_the_settings_limit() -> None:
    import json

    from django.conf import settings

    cmd = json.loads([rest for k, rest in _stages()[-1] if k == "CMD"][-1])
    for flag in ("--websocket-max-message-size", "--websocket-max-frame-size"):
        assert cmd[cmd.index(flag) + 1] == str(settings.WEBSOCKET_MAX_MESSAGE_BYTES), flag


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern.removeprefix("**/")) or fnmatch.fnmatch(prefix, pattern)
        for pattern in patterns
        for prefix in prefixes
    )


@pytest.fixture(scope="module")
def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "negations are not modelled here"
    return patterns


@pytest.mark.parametrize(
    "path",
    [
        "manage.py",
        "proctor/settings.py",
        "exams/models.py",
        "detection/core/types.py",
        "detection/weights/model.tflite",
        "static/app.js",
        "requirements.txt",
        "packaging/dlib/pyproject.toml",
    ],
)
def test_it_sends_the_app_to_the_build(path: str, dockerignore: list[str]) -> None:
    assert not _ignored(path, dockerignore)


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".env",
        "var/secret_key",
        "var/db.sqlite3",
        "exams/__pycache__/models.cpython-311.pyc",
    ],
)
def test_it_keeps_local_state_and_secrets_out_of_the_build(path: str, dockerignore: list[str]) -> None:
    assert _ignored(path, dockerignore)


def test_it_runs_daphne_without_an_access_log() -> None:
    """daphne's default verbosity writes an access log line per request and socket,
    with the candidate's link token in the path."""
    import json

    cmd = json.loads([rest for k, rest in _stages()[-1] if k == "CMD"][-1])
    assert cmd[:3] == ["daphne", "-v", "0"]
    assert "--access-log" not in cmd
