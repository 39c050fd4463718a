"""One load run from start to end: frames, data, CPU readings, the sockets, the
drain, the figures, and the removal of what it made."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import close_old_connections, connection

from detection.core import decode_image, encode_reference
from exams.analysis.pipeline import FIRST_IDENTITY_WITHIN_SECONDS
from exams.loadtest import cpu, data, frames
from exams.loadtest.report import ServerCpu, SettledCpu, build_result, walk_in_result
from exams.loadtest.runner import LoadRun, Plan
from exams.loadtest.walkin import WalkIn, WalkPlan

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PHOTOS = REPO / "tests" / "data" / "photos"
EPISODE_SHARE = 0.1
# The settled figures need at least this many seconds of streaming after the
# streams settle (see settled_from); a shorter run reports none.
SETTLED_MIN_SECONDS = 15.0


@dataclass(frozen=True)
class LoadParams:
    url: str
    candidates: int
    duration: float
    interval: float = 2.0
    ramp: float = 10.0
    proctors: int = 1
    photos: str = str(DEFAULT_PHOTOS)
    episode_share: float = EPISODE_SHARE
    drain: float = 20.0
    seed: int = 0
    server_pids: tuple[int, ...] = ()
    bench: bool = True  # run the detection bench after the load, for live_vs_bench
    walk_in: bool = False  # candidates walk in through the pages (exams.loadtest.walkin)
    neighbour_per_minute: float = 0.0  # walk-in only: made-up tokens a minute from the same address

    def __post_init__(self) -> None:
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"--url must look like http://127.0.0.1:8000, not {url!r}")
            if not _is_loopback(parts.hostname):
                # The run writes to the server's database directly, so it belongs on the server's machine.
                raise ValueError(
                    f"--url must be this machine (127.0.0.1, localhost or ::1), not {parts.hostname}"
                )
        if self.candidates < 1:
            raise ValueError("--candidates must be at least 1")
        if not 0.5 <= self.interval <= 30:
            raise ValueError("--interval must be between 0.5 and 30 seconds (the exam's limits)")
        if self.duration <= 0 or not 0 <= self.ramp < self.duration:
            raise ValueError("--duration must be positive and --ramp at least 0 and shorter than it")
        if self.proctors < 0 or not 0 <= self.episode_share <= 1 or self.drain < 0:
            raise ValueError("--proctors, --episode-share and --drain must not be negative")
        if self.neighbour_per_minute < 0 or (self.neighbour_per_minute and not self.walk_in):
            raise ValueError("--neighbour takes a rate a minute from 0, and only with --walk-in")
        if not (Path(self.photos) / "obama.jpg").is_file():
            raise ValueError(f"--photos {self.photos} has no obama.jpg (the candidate's face)")

    @property
    def urls(self) -> tuple[str, ...]:
        """``url`` may list several daphne processes of one server, comma-separated."""
        return tuple(url.strip().rstrip("/") for url in self.url.split(","))

    @property
    def base_url(self) -> str:
        return self.urls[0]

    @property
    def ports(self) -> set[int]:
        parts = [urlsplit(url) for url in self.urls]
        return {p.port or (443 if p.scheme == "https" else 80) for p in parts}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scripted_candidates(count: int, share: float) -> set[int]:
    """Indexes of the candidates with episodes: ``share`` of them rounded up (at
    least one unless the share is 0), spread evenly over the ramp."""
    chosen = min(count, math.ceil(share * count - 1e-9))
    return {k * count // chosen for k in range(chosen)} if chosen else set()


def _walks(params: LoadParams, pools: dict[str, list[bytes]]) -> list[frames.FrameWalk]:
    count = params.candidates
    step = params.ramp / count if count > 1 else 0.0
    size = len(pools[frames.STILL])
    with_episodes = scripted_candidates(count, params.episode_share)
    walks = []
    for i in range(count):
        stream_seconds = params.duration - i * step
        episodes = frames.episodes_for(stream_seconds, params.interval) if i in with_episodes else ()
        # Offsets spread over the pool: neighbours in the ramp do not send the same picture.
        walks.append(frames.FrameWalk(pools, offset=(i * 7919) % size, episodes=episodes))
    return walks


def settled_from(params: LoadParams, processes: dict[int, str]) -> float | None:
    """Seconds into the run after which every stream is past its start: the
    last candidate has connected (the ramp), its scripted episodes are over
    and its first identity check came (put off while the server runs behind),
    plus two frames. None if the streaming ends less than SETTLED_MIN_SECONDS
    after that, or if no worker process was found (embedded mode analyses in
    daphne, whose CPU is not only analysis)."""
    if "worker" not in processes.values():
        return None
    start_over = max(frames.SCRIPT_END_SECONDS, FIRST_IDENTITY_WITHIN_SECONDS)
    at = params.ramp + start_over + 2 * params.interval
    return at if params.duration - at >= SETTLED_MIN_SECONDS else None


class _SettledSample:
    """The workers' CPU and the frames analysed so far, read once on a timer
    thread ``at`` seconds after start()."""

    def __init__(self, at: float | None, processes: dict[int, str], load: data.LoadExam) -> None:
        self.at, self.processes, self.load = at, processes, load
        self.cpu: dict[int, cpu.ProcessTime] | None = None
        self.frames_analysed = 0
        self._timer = threading.Timer(at, self._read) if at is not None else None

    def start(self) -> None:
        if self._timer is not None:
            self._timer.start()

    def _read(self) -> None:
        try:
            sampled = cpu.sample(self.processes)
            self.frames_analysed = data.load_frames_analysed(self.load)
            self.cpu = sampled  # last: a sample is whole once this is set
        finally:
            connection.close()  # a thread of its own: never leave its connection open

    def until(self, after: dict[int, cpu.ProcessTime], frames_analysed: int) -> SettledCpu | None:
        """From the sample to ``after``; None if the run ended before the sample was read."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
        if self.cpu is None or self.at is None:
            return None
        return SettledCpu(
            from_s=self.at,
            worker_seconds=cpu.used_between(self.cpu, after).get("worker", 0.0),
            frames_analysed=frames_analysed - self.frames_analysed,
        )


def _database_key() -> tuple[str, int, str]:
    db = settings.DATABASES["default"]
    return (db.get("HOST") or "", int(db.get("PORT") or 5432), str(db["NAME"]))


def _server_processes(params: LoadParams) -> dict[int, str]:
    if params.server_pids:
        return cpu.with_descendants(params.server_pids)
    return cpu.find_server(database=_database_key(), ports=params.ports)


def _by_role(processes: dict[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for pid, role in sorted(processes.items()):
        out.setdefault(role, []).append(pid)
    return out


def bench_amortised(photos: Path) -> dict[str, Any]:
    """``python -m detection bench`` on the same photos, in a process of its own
    (pinned to one core, as docs/detection.md quotes it): what its replayed
    ten-minute stream costs per frame, amortised."""
    command = [sys.executable, "-m", "detection", "bench", "--photos", str(photos), "--json"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=True)
    stream = json.loads(done.stdout.strip().splitlines()[-1])["stream"]
    return {
        "command": shlex.join(["python", *command[1:]]),
        "frames": stream["frames"],
        "amortised_ms_per_frame": stream["amortised_ms_per_frame"],
        "amortised_cpu_ms_per_frame": stream["amortised_cpu_ms_per_frame"],
    }


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_load_test(
    params: LoadParams, *, progress: Callable[[str], None], keep: bool = False
) -> dict[str, Any]:
    """Run the load described by ``params`` and return the result (see ``report``)."""
    photos = Path(params.photos)
    progress("building frames and the load exam")
    pools = frames.build_pools(photos, frames.pool_sizes(params.duration, params.interval), seed=params.seed)
    walks = _walks(params, pools)
    encoding = encode_reference(decode_image((photos / "obama.jpg").read_bytes())).tolist()
    load = data.load_exam_create(
        candidates=params.candidates,
        interval=params.interval,
        encoding=encoding,
        label=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
    progress(f"exam {load.code}: {params.candidates} candidates in progress, proctor {load.proctor_username}")
    try:
        processes = _server_processes(params)
        if not any(role == "daphne" for role in processes.values()):
            progress("warning: no daphne process of this database found; CPU figures will lack it")
        plan = Plan(
            base_url=params.base_url,
            more_urls=params.urls[1:],
            load=load,
            walks=walks,
            duration=params.duration,
            interval=params.interval,
            ramp=params.ramp,
            proctors=params.proctors,
            drain=params.drain,
        )

        def drained() -> bool:
            try:
                return data.load_queue_idle(load)
            finally:
                connection.close()  # a thread of its own: never leave its connection open

        loadavg_start = os.getloadavg()
        settled = _SettledSample(settled_from(params, processes), processes, load)
        before, client_before, machine_before = (
            cpu.sample(processes),
            _client_cpu(),
            cpu.machine_busy_seconds(),
        )
        settled.start()
        obs = asyncio.run(LoadRun(plan, drained=drained, progress=progress).run())
        after_processes = {**processes, **_server_processes(params)}
        after, client_after, machine_after = (
            cpu.sample(after_processes),
            _client_cpu(),
            cpu.machine_busy_seconds(),
        )
        close_old_connections()
        analysed = data.load_frames_analysed(load)
        settled_cpu = settled.until(after, analysed)
        bench = None
        if params.bench:
            progress("running the detection bench for the live-against-bench figure")
            bench = bench_amortised(photos)
        result = build_result(
            parameters={**asdict(params), "server_pids": list(params.server_pids), "exam": load.code},
            obs=obs,
            frames_analysed=analysed,
            bench=bench,
            cpu=ServerCpu(
                seconds=cpu.used_between(before, after),
                processes=_by_role(after_processes),
                machine_busy_seconds=(
                    machine_after - machine_before
                    if machine_after is not None and machine_before is not None
                    else None
                ),
                client_seconds=client_after - client_before,
                settled=settled_cpu,
            ),
            machine=_machine(loadavg_start, obs.started_at),
        )
    finally:
        if not keep:
            removed = data.load_data_remove(code=load.code)
            progress(f"removed the load exam: {removed}")
    return result


def _machine(loadavg_start: tuple[float, ...], started_at: float) -> dict[str, Any]:
    """What a result says about the machine it ran on."""
    return {
        "cpus": os.cpu_count(),
        "loadavg_start": [round(v, 2) for v in loadavg_start],
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "started_at": datetime.fromtimestamp(started_at, UTC).isoformat(timespec="seconds"),
    }


def run_walk_in(params: LoadParams, *, progress: Callable[[str], None], keep: bool = False) -> dict[str, Any]:
    """Invited candidates walk in through the real pages from this one address
    (exams.loadtest.walkin); returns how many got in, when, and what refused them.

    Every candidate has a roster photo (the reference encoding of obama.jpg), as
    a school's roster import gives them: each verification picture is then
    compared against it, the path most candidates take (the one without a photo
    captures its first picture instead and writes a file per candidate)."""
    photos = Path(params.photos)
    progress("building pictures and the walk-in exam")
    size = frames.frames_in(params.duration, params.interval) + 2
    pool = frames.build_pools(photos, {frames.STILL: size}, seed=params.seed)[frames.STILL]
    encoding = encode_reference(decode_image((photos / "obama.jpg").read_bytes())).tolist()
    load = data.load_exam_create(
        candidates=params.candidates,
        interval=params.interval,
        encoding=encoding,
        label="walk-in " + datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        in_progress=False,
    )
    close_old_connections()
    progress(f"exam {load.code}: {params.candidates} candidates invited")
    try:
        processes = _server_processes(params)
        offsets = [(c.index * 7919) % len(pool) for c in load.candidates]
        plan = WalkPlan(
            base_url=params.base_url,
            more_urls=params.urls[1:],
            tokens=[c.token for c in load.candidates],
            pictures=[pool[offset:] + pool[:offset] for offset in offsets],
            ramp=params.ramp,
            duration=params.duration,
            interval=params.interval,
            neighbour_per_minute=params.neighbour_per_minute,
        )
        loadavg_start = os.getloadavg()
        before, machine_before, client_before = (
            cpu.sample(processes),
            cpu.machine_busy_seconds(),
            _client_cpu(),
        )
        obs = asyncio.run(WalkIn(plan, progress=progress).run())
        after_processes = {**processes, **_server_processes(params)}
        after, machine_after, client_after = (
            cpu.sample(after_processes),
            cpu.machine_busy_seconds(),
            _client_cpu(),
        )
        close_old_connections()
        result = walk_in_result(
            parameters={
                "url": params.url,
                "candidates": params.candidates,
                "ramp": params.ramp,
                "duration": params.duration,
                "interval": params.interval,
                "neighbour_per_minute": params.neighbour_per_minute,
                "exam": load.code,
            },
            obs=obs,
            states=data.load_states(load),
            cpu_seconds={**cpu.used_between(before, after), "load_generator": client_after - client_before},
            machine={
                **_machine(loadavg_start, obs.started_at),
                "machine_busy_s": round(machine_after - machine_before, 1)
                if machine_after is not None and machine_before is not None
                else None,
            },
        )
    finally:
        if not keep:
            removed = data.load_data_remove(code=load.code)
            progress(f"removed the walk-in exam: {removed}")
    return result
