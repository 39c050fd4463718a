"""The result of a load run: one JSON-ready dict, and a short text for people.

Every figure is measured, none is estimated. Latencies use one clock: the
server stamps a frame's ``last_frame_at`` with ``time.time()`` when it receives
the frame, and the proctor socket stamps the push that carries it with the same
machine's ``time.time()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from exams.loadtest.runner import Observations
from exams.loadtest.walkin import STAGES, WalkObservations

RESULT_VERSION = 2  # 2: candidates reconnect; handshake_failures counts every failed dial


def percentiles(values: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, Any]:
    """Nearest-rank percentiles in ms (None without samples), with the sample count and the maximum."""
    ordered = sorted(values)
    out: dict[str, Any] = {}
    for point in points:
        out[f"p{point}"] = (
            round(ordered[max(0, math.ceil(point / 100 * len(ordered)) - 1)], 1) if ordered else None
        )
    out["max"] = round(ordered[-1], 1) if ordered else None
    out["n"] = len(ordered)
    return out


@dataclass(frozen=True)
class SettledCpu:
    """The workers' CPU seconds and the frames they analysed from ``from_s``
    seconds into the run to its end (the drain included): once every stream is
    past its start. A stream's first frame runs every check and the scripted
    episodes run them again; a real exam spreads those over an hour or more,
    a one-minute run over a few dozen frames."""

    from_s: float
    worker_seconds: float
    frames_analysed: int


@dataclass(frozen=True)
class ServerCpu:
    """CPU seconds per server role over the run, and the processes read."""

    seconds: dict[str, float]
    processes: dict[str, list[int]]
    machine_busy_seconds: float | None
    client_seconds: float
    settled: SettledCpu | None = None  # None when the run ends before its streams settle


WINDOW_SECONDS = 10.0


def latency_windows(obs: Observations, window: float = WINDOW_SECONDS) -> list[dict[str, Any]]:
    """The first proctor's latency per ``window`` seconds of the run (by when the
    server received the frame): where in the run a high percentile comes from,
    e.g. everyone's first frame at 9:00 (each runs every check) or a safety-net
    re-run that comes due for many candidates at once."""
    buckets: dict[int, list[float]] = {}
    for _, received, told in obs.analysed_pushes:
        index = max(0, int((received - obs.started_at) // window))
        buckets.setdefault(index, []).append((told - received) * 1000.0)
    return [
        {"from_s": index * window, **percentiles(values, (50, 95))}
        for index, values in sorted(buckets.items())
    ]


def _per_frame(seconds: float | None, frames: int) -> float | None:
    return round(seconds / frames, 4) if seconds is not None and frames else None


def _ratio(worker_per_frame: float | None, bench: dict[str, Any] | None) -> float | None:
    if worker_per_frame is None or not bench or not bench.get("amortised_ms_per_frame"):
        return None
    return round(worker_per_frame * 1000 / bench["amortised_ms_per_frame"], 2)


def _settled(settled: SettledCpu | None, bench: dict[str, Any] | None) -> dict[str, Any] | None:
    if settled is None:
        return None
    per_frame = _per_frame(settled.worker_seconds, settled.frames_analysed)
    return {
        "from_s": settled.from_s,
        "worker_s": round(settled.worker_seconds, 2),
        "frames_analysed": settled.frames_analysed,
        "worker_per_analysed_frame_s": per_frame,
        "live_vs_bench": _ratio(per_frame, bench),
    }


def build_result(
    *,
    parameters: dict[str, Any],
    obs: Observations,
    frames_analysed: int,
    cpu: ServerCpu,
    machine: dict[str, Any],
    bench: dict[str, Any] | None = None,
) -> dict[str, Any]:
    episodes = obs.episodes
    started = [e for e in episodes if e.started_at is not None]
    alerted = [e for e in started if e.alerted_at is not None]
    by_type: dict[str, dict[str, int]] = {}
    for e in started:
        row = by_type.setdefault(e.episode.expected_event, {"episodes": 0, "alerted": 0})
        row["episodes"] += 1
        row["alerted"] += e.alerted_at is not None
    daphne = cpu.seconds.get("daphne")
    worker = cpu.seconds.get("worker")
    total = sum(cpu.seconds.values()) if cpu.seconds else None
    worker_per_frame = _per_frame(worker, frames_analysed)
    return {
        "version": RESULT_VERSION,
        "parameters": parameters,
        "candidates": parameters["candidates"],
        "connected": obs.connected,
        "never_connected": parameters["candidates"] - obs.connected,
        "connect_ms": percentiles(obs.connect_ms, (50, 95)),
        # Every dial that did not get to the server's "status", first or after a reconnect.
        "handshake_failures": sum(obs.handshake_failures.values()),
        "handshake_failure_reasons": dict(obs.handshake_failures),
        "disconnects_by_server": dict(obs.disconnects),
        # Candidates dial again after any close that is not fatal, as the exam page does:
        # re-dials by why the socket before closed, and how many got back in.
        "reconnects": dict(obs.reconnects),
        "reconnected": obs.reconnected,
        "proctor_reconnects": dict(obs.proctor_failures),  # a proctor socket dials again after each
        # Candidates the server asked for fewer frames (a status with a longer interval).
        "slowed_down": len(obs.slowed_down),
        "max_interval_asked": obs.max_interval_asked,
        "latency_ms": percentiles(obs.latency_ms),
        "latency_ms_by_window": latency_windows(obs),
        "frames_sent": obs.frames_sent,
        "frames_skipped": {
            "late": obs.frames_skipped_late,
            "send_buffer_full": obs.frames_skipped_buffered,
            "disconnected": obs.frames_skipped_disconnected,
        },
        "frames_analysed": frames_analysed,
        # Analysed frames whose result reached the first proctor socket by the end of the drain.
        "frames_pushed_to_proctor": obs.pushes_analysed,
        "analysed_share": round(frames_analysed / obs.frames_sent, 3) if obs.frames_sent else None,
        "episodes": len(started),
        "episodes_alerted": len(alerted),
        "episodes_by_type": by_type,
        "alert_latency_ms": percentiles([(e.alerted_at - e.started_at) * 1000.0 for e in alerted], (50, 95)),
        "events_opened": dict(obs.events_opened),
        "errors": {
            "server": dict(obs.server_errors),
            "client": dict(obs.client_errors),
            "proctor_sockets": dict(obs.proctor_failures),
        },
        "cpu_seconds_per_analysed_frame": _per_frame(total, frames_analysed),
        "cpu": {
            "daphne_s": round(daphne, 2) if daphne is not None else None,
            "worker_s": round(worker, 2) if worker is not None else None,
            "beat_s": round(cpu.seconds.get("beat", 0.0), 2),
            "total_s": round(total, 2) if total is not None else None,
            "daphne_per_analysed_frame_s": _per_frame(daphne, frames_analysed),
            # daphne checks that every frame it receives decodes, analysed or not.
            "daphne_per_sent_frame_s": _per_frame(daphne, obs.frames_sent),
            "worker_per_analysed_frame_s": worker_per_frame,
            # The worker's CPU per analysed frame over the bench's amortised cost per frame.
            "live_vs_bench": _ratio(worker_per_frame, bench),
            # The same once every stream is past its start (see SettledCpu).
            "settled": _settled(cpu.settled, bench),
            "processes": cpu.processes,
            "client_s": round(cpu.client_seconds, 2),
            "machine_busy_s": round(cpu.machine_busy_seconds, 2)
            if cpu.machine_busy_seconds is not None
            else None,
        },
        # The detection bench run after the load (None with --no-bench).
        "bench": bench,
        "drained": obs.drained,
        "wall_s": round(obs.ended_at - obs.started_at, 1),
        "machine": machine,
    }


def summary_text(result: dict[str, Any]) -> str:
    p = result["parameters"]
    cpu = result["cpu"]
    lat = result["latency_ms"]
    con = result["connect_ms"]
    alert = result["alert_latency_ms"]
    lines = [
        f"{p['candidates']} candidates for {p['duration']:g} s (ramp {p['ramp']:g} s, a frame every "
        f"{p['interval']:g} s, {p['proctors']} proctor socket(s)) against {p['url']}",
        f"  connected        {result['connected']}, handshake failures {result['handshake_failures']}"
        + (f" {result['handshake_failure_reasons']}" if result["handshake_failures"] else ""),
        f"  connect          p50 {con['p50']} ms, p95 {con['p95']} ms",
        f"  frames           sent {result['frames_sent']}, analysed {result['frames_analysed']} "
        f"(share {result['analysed_share']}), pushed to the proctor {result['frames_pushed_to_proctor']}",
        f"  latency          receive -> proctor told: p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
        f"p99 {lat['p99']} ms ({lat['n']} pushes)",
        f"  episodes         {result['episodes_alerted']} of {result['episodes']} alerted, "
        f"start -> alert p50 {alert['p50']} ms, p95 {alert['p95']} ms",
        f"  server CPU       {cpu['total_s']} s (daphne {cpu['daphne_s']}, worker {cpu['worker_s']}), "
        f"{result['cpu_seconds_per_analysed_frame']} s per analysed frame",
        f"  errors           {result['errors']}",
    ]
    if result.get("bench") and cpu.get("live_vs_bench") is not None:
        lines.insert(
            -1,
            f"  live vs bench    worker {cpu['worker_per_analysed_frame_s'] * 1000:.1f} ms CPU per analysed "
            f"frame, bench {result['bench']['amortised_ms_per_frame']} ms amortised: "
            f"{cpu['live_vs_bench']}x",
        )
        settled = cpu.get("settled")
        if settled and settled.get("live_vs_bench") is not None:
            lines.insert(
                -1,
                f"  ... settled      from {settled['from_s']:g} s on: worker "
                f"{settled['worker_per_analysed_frame_s'] * 1000:.1f} ms CPU per analysed frame "
                f"({settled['frames_analysed']} frames): {settled['live_vs_bench']}x the bench",
            )
    if result["disconnects_by_server"]:
        lines.append(f"  dropped mid-run  {result['disconnects_by_server']}")
    if result["reconnects"] or result["proctor_reconnects"]:
        lines.append(
            f"  reconnects       candidates {result['reconnects']} ({result['reconnected']} got back in), "
            f"proctors {result['proctor_reconnects']}"
        )
    if result["slowed_down"]:
        lines.append(
            f"  slowed down      {result['slowed_down']} candidates, "
            f"up to a frame every {result['max_interval_asked']:g} s"
        )
    return "\n".join(lines)


def walk_in_result(
    *,
    parameters: dict[str, Any],
    obs: WalkObservations,
    states: dict[str, int],
    cpu_seconds: dict[str, float],
    machine: dict[str, Any],
) -> dict[str, Any]:
    """The walk-in's figures: seconds from each candidate's arrival to each stage."""
    return {
        "mode": "walk_in",
        "parameters": parameters,
        "candidates": parameters["candidates"],
        "arrived": obs.arrived,
        # By the database at the end: the sessions' states (in_progress is the goal).
        "states": states,
        "reached": {stage: obs.reached[stage] for stage in STAGES},
        "seconds_to": {
            stage: {k: (round(v / 1000, 2) if k != "n" and v is not None else v) for k, v in p.items()}
            for stage in STAGES
            for p in [percentiles([s * 1000 for s in obs.seconds_to[stage]], (50, 95))]
        },
        "last_in_progress_s": round(obs.last_in_progress_s, 1) if obs.last_in_progress_s else None,
        "http_429": obs.too_many_requests,
        "socket_4429": obs.sockets_4429,
        # Every HTTP status other than 2xx/3xx, every unexpected answer, every socket refusal.
        "unexpected": dict(sorted(obs.unexpected.items())),
        "uploads": obs.uploads,
        "retakes": dict(obs.retakes),
        "status_polls": obs.polls,
        "frames_sent": obs.frames_sent,
        "neighbour": dict(sorted(obs.neighbour.items())),
        "client_errors": dict(obs.client_errors),
        "cpu_seconds": {role: round(seconds, 1) for role, seconds in sorted(cpu_seconds.items())},
        "wall_s": round(obs.ended_at - obs.started_at, 1),
        "machine": machine,
    }


def walk_in_summary_text(result: dict[str, Any]) -> str:
    p = result["parameters"]
    states = result["states"]
    lines = [
        f"walk-in: {p['candidates']} candidates arriving over {p['ramp']:g} s, stopped at "
        f"{p['duration']:g} s, against {p['url']}"
        + (
            f", a neighbour at {p['neighbour_per_minute']:g} made-up tokens a minute"
            if p["neighbour_per_minute"]
            else ""
        ),
        f"  in progress      {states.get('in_progress', 0)} of {p['candidates']} (database), "
        f"the last {result['last_in_progress_s']} s after the first arrival; states {states}",
        "  seconds from arrival to (p50 / p95 / max, n):",
    ]
    for stage in STAGES:
        s = result["seconds_to"][stage]
        lines.append(f"    {stage:<16} {s['p50']} / {s['p95']} / {s['max']}  ({s['n']})")
    lines += [
        f"  429 / 4429       {result['http_429']} / {result['socket_4429']} (valid candidates)",
        f"  unexpected       {result['unexpected'] or 'none'}",
        f"  verification     {result['uploads']} uploads, retakes {result['retakes'] or 'none'}, "
        f"{result['status_polls']} status polls",
        f"  server CPU s     {result['cpu_seconds']}; machine {result['machine']}",
    ]
    if p["neighbour_per_minute"]:
        lines.append(f"  neighbour        {result['neighbour']}")
    if result["client_errors"]:
        lines.append(f"  client errors    {result['client_errors']}")
    return "\n".join(lines)
