"""The capacity chart: results of several ``manage.py loadtest --json`` runs
against the number of candidates.

matplotlib is a development requirement (requirements-dev.txt); it is imported
only when a chart is drawn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_results(paths: list[Path]) -> list[dict[str, Any]]:
    """Results sorted by candidates. Raises ValueError for a file that is not a load test result."""
    results = []
    for path in paths:
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        if not isinstance(result, dict) or "latency_ms" not in result or "candidates" not in result:
            raise ValueError(f"{path}: not a manage.py loadtest --json result")
        results.append(result)
    return sorted(results, key=lambda r: r["candidates"])


def _bench_ms(result: dict[str, Any]) -> float | None:
    """The detection bench's amortised ms per frame that loadtest ran after the load, if it did."""
    return (result.get("bench") or {}).get("amortised_ms_per_frame")


def _settled(result: dict[str, Any], key: str) -> float | None:
    """A figure of the run's settled part (``cpu.settled``), if the run was long enough to have one."""
    return ((result.get("cpu") or {}).get("settled") or {}).get(key)


def _values(results: list[dict[str, Any]], get) -> list[float]:
    out = []
    for result in results:
        value = get(result)
        out.append(float("nan") if value is None else float(value))
    return out


def plot_capacity(results: list[dict[str, Any]], output: Path, *, title: str = "") -> Path:
    """Four panels over candidates: p50/p95 latency, analysed and connected
    shares, server CPU seconds per analysed frame (daphne, worker, total), and
    connect times with handshake failures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["candidates"] for r in results]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), constrained_layout=True)
    (latency, share), (cpu, connect) = axes

    latency.plot(x, _values(results, lambda r: r["latency_ms"]["p95"]), "o-", label="p95")
    latency.plot(x, _values(results, lambda r: r["latency_ms"]["p50"]), "o--", label="p50")
    latency.set_title("Frame received → proctor told")
    latency.set_ylabel("ms")

    share.plot(x, _values(results, lambda r: r["analysed_share"]), "o-", label="frames analysed / sent")
    share.plot(
        x,
        _values(results, lambda r: r["connected"] / r["candidates"] if r["candidates"] else None),
        "s--",
        label="candidates connected",
    )
    share.plot(
        x,
        _values(results, lambda r: r["episodes_alerted"] / r["episodes"] if r["episodes"] else None),
        "^:",
        label="episodes alerted",
    )
    share.set_ylim(0, 1.05)
    share.set_title("Share")

    cpu.plot(x, _values(results, lambda r: r["cpu_seconds_per_analysed_frame"]), "o-", label="total")
    cpu.plot(x, _values(results, lambda r: r["cpu"]["worker_per_analysed_frame_s"]), "s--", label="worker")
    cpu.plot(x, _values(results, lambda r: r["cpu"]["daphne_per_analysed_frame_s"]), "^:", label="daphne")
    settled = _values(results, lambda r: _settled(r, "worker_per_analysed_frame_s"))
    if any(v == v for v in settled):  # not all NaN: the runs were long enough to settle
        cpu.plot(x, settled, "d--", label="worker, streams settled")
    bench = [ms / 1000 for ms in _values(results, _bench_ms)]  # NaN where a run had no bench
    if any(v == v for v in bench):  # not all NaN: the runs had the bench
        cpu.plot(x, bench, "x-.", label="detection bench (computer vision alone)")
    cpu.set_title("Server CPU per analysed frame")
    cpu.set_ylabel("CPU seconds")

    connect.plot(x, _values(results, lambda r: r["connect_ms"]["p95"]), "o-", label="p95")
    connect.plot(x, _values(results, lambda r: r["connect_ms"]["p50"]), "o--", label="p50")
    failures = connect.twinx()
    failed = [r["handshake_failures"] for r in results]
    failures.bar(x, failed, width=1.5, alpha=0.3, color="tab:red")
    failures.set_ylabel("handshake failures (bars)")
    failures.set_ylim(0, max([1, *failed]) * 1.1)
    failures.yaxis.get_major_locator().set_params(integer=True)
    connect.set_title("Candidate socket: dial → status")
    connect.set_ylabel("ms")

    for panel in (latency, share, cpu, connect):
        panel.set_xlabel("candidates")
        panel.set_xticks(x)
        panel.grid(alpha=0.3)
        panel.legend(fontsize="small", loc="lower left" if panel is share else "upper left")
        if panel is not share:
            panel.set_ylim(bottom=0)
    # Head room above the CPU lines for their five-line legend.
    cpu.set_ylim(top=cpu.get_ylim()[1] * 1.5)
    first = results[0] if results else {"parameters": {}, "machine": {}}
    params, cpus = first["parameters"], first["machine"].get("cpus", "?")
    fig.suptitle(
        title
        or f"manage.py loadtest: a frame every {params.get('interval', '?')} s, "
        f"{params.get('duration', '?')} s runs, server and load on one {cpus}-CPU machine"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def _cell(value, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The figures docs/performance.md quotes, one row per run, as a Markdown table."""
    lines = [
        "| candidates | handshake failures | connect p95 ms | latency p50 / p95 / p99 ms "
        "| analysed share | episodes alerted | worker CPU ms per analysed frame "
        "| bench ms amortised | live / bench | settled live / bench "
        "| daphne CPU ms per sent frame | slowed down |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = r.get("cpu") or {}
        latency = r["latency_ms"]
        ms = [latency.get(k) for k in ("p50", "p95", "p99")]
        worker = cpu.get("worker_per_analysed_frame_s")
        daphne = cpu.get("daphne_per_sent_frame_s")
        bench = _bench_ms(r)
        lines.append(
            f"| {r['candidates']} | {r['handshake_failures']} | {_cell(r['connect_ms'].get('p95'))} "
            f"| {' / '.join(_cell(v) for v in ms)} | {_cell(r['analysed_share'], 3)} "
            f"| {r['episodes_alerted']} of {r['episodes']} "
            f"| {_cell(None if worker is None else worker * 1000, 1)} "
            f"| {_cell(bench, 1)} | {_cell(cpu.get('live_vs_bench'), 2)} "
            f"| {_cell(_settled(r, 'live_vs_bench'), 2)} "
            f"| {_cell(None if daphne is None else daphne * 1000, 1)} "
            f"| {_cell(r.get('slowed_down'))} |"
        )
    return "\n".join(lines) + "\n"
