""".env.example lists every environment variable the product reads, and only those.

Variables are found in the source text: the env_str / env_bool / env_int /
env_list helpers of proctor/env.py and direct os.environ / os.getenv reads,
always with the name as a string literal.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP_DIRS = ("proctor", "exams", "detection")
# Read by the deploy files rather than Python: bin/run, Makefile, compose.
DEPLOY_FILES = ("bin/run", "Makefile", "docker-compose.yml", "Dockerfile")
# Set by the framework's entry points, not configuration.
NOT_CONFIGURATION = {"DJANGO_SETTINGS_MODULE"}

READ = re.compile(
    r"""(?:\benv_(?:str|bool|int|list)\s*\(|os\.environ\.get\s*\(|os\.getenv\s*\(|os\.environ\s*\[)"""
    r"""\s*["']([A-Z_][A-Z0-9_]*)["']"""
)
EXAMPLE_LINE = re.compile(r"^#?\s*([A-Z_][A-Z0-9_]*)=")


def _python_sources() -> list[Path]:
    sources = [REPO / "manage.py"]
    for directory in APP_DIRS:
        sources += [p for p in (REPO / directory).rglob("*.py") if "migrations" not in p.parts]
    return [p for p in sources if p.exists()]


def _read_by_python() -> set[str]:
    names: set[str] = set()
    for source in _python_sources():
        names |= set(READ.findall(source.read_text()))
    return names - NOT_CONFIGURATION


def _example_lines() -> list[str]:
    return (REPO / ".env.example").read_text().splitlines()


def _documented() -> list[str]:
    return [m.group(1) for line in _example_lines() if (m := EXAMPLE_LINE.match(line))]


def test_it_reads_settings_from_the_environment() -> None:
    settings = REPO / "proctor" / "settings.py"
    assert settings.exists(), "proctor/settings.py is not written yet"
    assert READ.findall(settings.read_text()), "settings.py reads no variables through the env helpers"


def test_it_documents_every_variable_the_app_reads() -> None:
    missing = _read_by_python() - set(_documented())
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_it_documents_only_variables_something_reads() -> None:
    deploy_text = "\n".join((REPO / f).read_text() for f in DEPLOY_FILES)
    read = _read_by_python()
    unused = [
        name for name in _documented() if name not in read and not re.search(rf"\b{name}\b", deploy_text)
    ]
    assert not unused, f"documented in .env.example but read nowhere: {unused}"


def test_it_documents_each_variable_once() -> None:
    documented = _documented()
    assert len(documented) == len(set(documented))


def test_it_explains_each_variable_in_a_comment_line_above_it() -> None:
    lines = _example_lines()
    for i, line in enumerate(lines):
        if EXAMPLE_LINE.match(line):
            above = lines[i - 1] if i else ""
            assert above.startswith("# ") and not EXAMPLE_LINE.match(above), f"no comment above {line!r}"


@pytest.mark.parametrize("name", ["SECRET_KEY", "POSTGRES_PASSWORD"])
def test_it_ships_no_secret_values(name: str) -> None:
    assert f"{name}=" in _example_lines()


GROUPS = ("REQUIRED", "RECOMMENDED", "TUNING")


def _group_of_each_variable() -> dict[str, str]:
    group, found = "", {}
    for line in _example_lines():
        heading = re.match(r"^# ([A-Z]+)\b", line)
        if heading and heading.group(1) in GROUPS:
            group = heading.group(1)
        elif match := EXAMPLE_LINE.match(line):
            found[match.group(1)] = group
    return found


def test_it_groups_the_variables_as_required_recommended_and_tuning() -> None:
    groups = _group_of_each_variable()
    assert set(groups.values()) == set(GROUPS), "every variable is under one of the three headings"
    order = [groups[name] for name in _documented()]
    assert order == sorted(order, key=GROUPS.index), "the groups come in order, each once"
    # What a server cannot run without, and what issue 17 found missing from the docs.
    for name in ("SECRET_KEY", "POSTGRES_PASSWORD", "POSTGRES_APP_PASSWORD", "ALLOWED_HOSTS"):
        assert groups[name] == "REQUIRED", name
    for name in ("SITE_URL", "CSRF_TRUSTED_ORIGINS", "EMAIL_BACKEND"):
        assert groups[name] == "REQUIRED", name
