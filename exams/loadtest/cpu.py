"""CPU time of the server's processes, read from /proc (Linux).

The server is found by scanning /proc for daphne and celery processes whose
environment points at the same database as this process, so other servers on
the machine (other checkouts, other test runs) are not counted. ``pids`` given
explicitly replace the scan; their descendants are counted too.

Only live processes are read, at the start and at the end of the run: a
process that exits in between is lost, and one that started in between counts
with all its CPU time.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcessTime:
    pid: int
    role: str  # "daphne", "worker", "beat" or "celery"
    started: int  # clock ticks after boot: tells a reused pid apart
    cpu_seconds: float  # utime + stime


def _argv(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (part.decode("utf-8", "replace").partition("=") for part in raw.split(b"\0") if part)
    return {key: value for key, _, value in pairs}


def _stat(pid: int) -> tuple[int, int, float] | None:
    """(parent pid, start time in ticks, utime + stime in seconds)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may contain spaces; the fields after it do not.
    fields = raw[raw.rindex(")") + 2 :].split()
    # After the name: state(3) ppid(4) ... utime(14) stime(15) ... starttime(22), 1-based.
    return int(fields[1]), int(fields[19]), (int(fields[11]) + int(fields[12])) / TICKS


def role_of(argv: list[str]) -> str | None:
    names = [Path(arg).name for arg in argv]
    if any(name.startswith("daphne") for name in names):
        return "daphne"
    if any(name.startswith("celery") for name in names):
        for role in ("worker", "beat"):
            if role in argv:
                return role
        return "celery"
    return None


def _port(argv: list[str]) -> int | None:
    for flag in ("-p", "--port"):
        if flag in argv[:-1]:
            value = argv[argv.index(flag) + 1]
            return int(value) if value.isdigit() else None
    return None


def database_key(url: str) -> tuple[str, int, str] | None:
    """(host, port, name) of a postgres:// URL: what makes two URLs the same database."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        return None
    return (parts.hostname or "", parts.port or 5432, unquote(parts.path.lstrip("/")) or "postgres")


def _pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def find_server(*, database: tuple[str, int, str], ports: Collection[int] | None) -> dict[int, str]:
    """pid -> role of the daphne and celery processes using ``database``; daphne
    only if it listens on one of ``ports`` (when its command line says)."""
    found: dict[int, str] = {}
    me = os.getpid()
    for pid in _pids():
        if pid == me:
            continue
        role = role_of(_argv(pid))
        if role is None or database_key(_environ(pid).get("DATABASE_URL", "")) != database:
            continue
        if role == "daphne" and ports is not None and _port(_argv(pid)) not in (None, *ports):
            continue
        found[pid] = role
    return found


def with_descendants(pids: Iterable[int]) -> dict[int, str]:
    """pid -> role for ``pids`` and every process below them."""
    parent: dict[int, int] = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None:
            parent[pid] = stat[0]
    chosen = set(pids)
    grew = True
    while grew:
        below = {pid for pid, ppid in parent.items() if ppid in chosen} - chosen
        chosen |= below
        grew = bool(below)
    return {pid: role_of(_argv(pid)) or "other" for pid in chosen}


def sample(processes: dict[int, str]) -> dict[int, ProcessTime]:
    out: dict[int, ProcessTime] = {}
    for pid, role in processes.items():
        stat = _stat(pid)
        if stat is not None:
            out[pid] = ProcessTime(pid, role, stat[1], stat[2])
    return out


def used_between(before: dict[int, ProcessTime], after: dict[int, ProcessTime]) -> dict[str, float]:
    """CPU seconds per role between two samples. A process only in ``after`` (or
    with a reused pid) counts from its start."""
    used: dict[str, float] = {}
    for pid, end in after.items():
        start = before.get(pid)
        base = start.cpu_seconds if start is not None and start.started == end.started else 0.0
        used[end.role] = used.get(end.role, 0.0) + max(0.0, end.cpu_seconds - base)
    return used


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent busy since boot (all cores), from /proc/stat."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS
