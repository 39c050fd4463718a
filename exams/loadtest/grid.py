"""The proctors' grid in a real browser under a big exam: ``manage.py grid_bench``.

A running server (same DATABASE_URL and REDIS_URL as this process) gets a load
exam of simulated candidates (``exams.loadtest.data``). Chromium, signed in as
its proctor, opens the live grid. This process then plays what the workers
would push for that many streaming candidates, through the real channel layer
to the real proctor consumer (which batches tiles every GRID_PUSH_SECONDS):
every candidate's tile changes once per frame interval, with a new thumbnail
every PICTURE_EVERY_SECONDS, and alerts open and close at a steady rate as
real Event rows. No frame is analysed: this measures the browser, not the
workers (``manage.py loadtest`` measures those).

What it reports comes from the page itself: ``window.gridStats`` (the time
static/js/proctor_live.js spends applying each batch of tiles, measured with
performance.now around the DOM update) and Chromium's own metrics over the
DevTools protocol (JS heap used, DOM nodes), sampled through the run and once
more after a forced garbage collection at the end.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from PIL import Image

from exams import live
from exams.loadtest.data import LoadExam, load_data_remove, load_exam_create
from exams.loadtest.report import percentiles
from exams.models import Event, ExamSession

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO / "tests" / "data" / "photos"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
ALERT_TYPES = ("multiple_faces", "no_face", "looking_away", "identity_mismatch", "camera_blocked")
ALERT_SECONDS = 20  # how long a simulated alert stays open
SAMPLE_SECONDS = 15
TICK_SECONDS = 0.1
CONNECT_SECONDS = 120


@dataclass(frozen=True)
class GridBenchParams:
    url: str
    candidates: int = 200
    minutes: float = 10.0
    interval: float = 2.0
    alerts_per_minute: float = 20.0
    chromium: str = "/usr/bin/chromium"
    keep: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url must look like http://127.0.0.1:8000, not {self.url!r}")
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("--url must be this machine: the bench writes to the server's database directly")
        if not 1 <= self.candidates <= 2000:
            raise ValueError("--candidates must be 1 to 2000")
        if not 0 < self.minutes <= 120:
            raise ValueError("--minutes must be above 0 and at most 120")
        if not 0.5 <= self.interval <= 30:
            raise ValueError("--interval must be 0.5 to 30 seconds")


def _thumbnails(count: int = 8) -> list[str]:
    """A few 160x120 JPEG thumbnails as data URLs, cut from the test photos."""
    photos = sorted(PHOTOS.glob("*.jpg")) or [None]
    out = []
    for i in range(count):
        path = photos[i % len(photos)]
        image = Image.open(path).convert("RGB") if path else Image.new("RGB", (640, 480), (40, 40, 40))
        w, h = image.size
        box = (i * w // 40, i * h // 40, w - i * w // 40, h - i * h // 40)  # a slightly different crop each
        buf = io.BytesIO()
        image.crop(box).resize(live.THUMBNAIL_SIZE).save(buf, "JPEG", quality=70)
        out.append("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


def _tiles(load: LoadExam) -> list[dict[str, Any]]:
    sessions = ExamSession.objects.filter(candidate__exam__code=load.code).select_related("candidate__exam")
    return [live.session_payload(s) for s in sessions]


def _alert_open(session_id: str, kind: str) -> dict[str, Any]:
    close_old_connections()
    session = ExamSession.objects.select_related("candidate__exam").get(public_id=session_id)
    now = timezone.now()
    event = Event.objects.create(
        session=session, type=kind, key=kind, severity="high", started_at=now, ended_at=now, is_open=True
    )
    return {"event": live.event_payload(event), "tile": live.session_payload(session), "pk": event.pk}


def _alert_close(pk: int) -> dict[str, Any]:
    close_old_connections()
    event = Event.objects.select_related("session__candidate__exam").get(pk=pk)
    event.close(timezone.now())
    return {"event": live.event_payload(event), "tile": live.session_payload(event.session)}


class _Dropped(logging.Handler):
    """Counts the messages channels-redis drops because a proctor's channel is full
    (its capacity, 1000 here): the server did not read them as fast as they came."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "over capacity" in record.getMessage():
            self.count += 1


class Feeder:
    """Plays the workers' pushes for every candidate at the real rates."""

    def __init__(
        self, params: GridBenchParams, load: LoadExam, tiles: list[dict], pictures: list[str]
    ) -> None:
        self.params, self.load, self.pictures = params, load, pictures
        self.tiles = {t["id"]: t for t in tiles}
        self.group = live.exam_group(uuid.UUID(load.code))
        self.layer = get_channel_layer()
        self.pushes = self.tile_pushes = self.thumbnails = self.alerts = 0
        self.behind_s = 0.0

    async def _push(self, payload: dict[str, Any]) -> None:
        await self.layer.group_send(self.group, {"type": "push", "payload": payload})
        self.pushes += 1

    async def run(self, seconds: float) -> None:
        ids = list(self.tiles)
        rng = random.Random(0)
        n = len(ids)
        start = time.monotonic()
        # Candidate i's frames land at offset_i + k * interval, spread across one interval.
        next_frame = {sid: start + self.params.interval * i / n for i, sid in enumerate(ids)}
        next_picture = {sid: start + live.PICTURE_EVERY_SECONDS * i / n for i, sid in enumerate(ids)}
        alert_every = 60.0 / self.params.alerts_per_minute if self.params.alerts_per_minute > 0 else None
        next_alert = start + (alert_every or 0)
        closing: list[tuple[float, int]] = []
        while (now := time.monotonic()) - start < seconds:
            for sid in ids:
                if next_frame[sid] > now:
                    continue
                self.behind_s = max(self.behind_s, now - next_frame[sid])
                next_frame[sid] += self.params.interval
                tile = self.tiles[sid]
                tile["frames_analysed"] += 1
                tile["last_frame_at"] = timezone.now().isoformat()
                tile["faces"] = 1
                tile["connected"] = True  # the simulated pages are all connected
                session = dict(tile)
                if next_picture[sid] <= now:
                    next_picture[sid] += live.PICTURE_EVERY_SECONDS
                    session["thumbnail"] = rng.choice(self.pictures)
                    self.thumbnails += 1
                await self._push({"type": "session", "session": session})
                self.tile_pushes += 1
            if alert_every and now >= next_alert:
                next_alert += alert_every
                opened = await sync_to_async(_alert_open)(rng.choice(ids), rng.choice(ALERT_TYPES))
                await self._alert(opened)
                closing.append((now + ALERT_SECONDS, opened["pk"]))
                self.alerts += 1
            while closing and closing[0][0] <= now:
                await self._alert(await sync_to_async(_alert_close)(closing.pop(0)[1]))
            await asyncio.sleep(TICK_SECONDS)

    async def _alert(self, change: dict[str, Any]) -> None:
        tile = change["tile"]
        kept = self.tiles[tile["id"]]
        tile.update({k: kept[k] for k in ("frames_analysed", "last_frame_at", "faces", "connected")})
        self.tiles[tile["id"]] = tile
        await self._push({"type": "session", "session": dict(tile)})
        self.tile_pushes += 1
        await self._push({"type": "event", "event": change["event"]})


async def _metrics(cdp) -> dict[str, float]:
    found = await cdp.send("Performance.getMetrics")
    return {m["name"]: m["value"] for m in found["metrics"]}


async def _sample(page, cdp, started: float) -> dict[str, Any]:
    metrics = await _metrics(cdp)
    stats = await page.evaluate("({batches: gridStats.batches, tiles: gridStats.tiles})")
    return {
        "t_s": round(time.monotonic() - started),
        "heap_mb": round(metrics["JSHeapUsedSize"] / 2**20, 1),
        "dom_nodes": int(metrics["Nodes"]),
        "batches": stats["batches"],
    }


async def _run(params: GridBenchParams, load: LoadExam, progress) -> dict[str, Any]:

    dropped = _Dropped()
    channels_log = logging.getLogger("channels_redis.core")
    channels_log.addHandler(dropped)
    channels_log.setLevel(logging.INFO)
    try:
        return await _browse(params, load, progress, dropped)
    finally:
        channels_log.removeHandler(dropped)


async def _browse(params: GridBenchParams, load: LoadExam, progress, dropped: _Dropped) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    tiles = await sync_to_async(_tiles)(load)
    pictures = _thumbnails()
    name, value = load.session_cookie.split("=", 1)
    host = urlsplit(params.url).hostname
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=params.chromium, headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1366, "height": 768})
        await context.add_cookies([{"name": name, "value": value, "domain": host, "path": "/"}])
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        cdp = await context.new_cdp_session(page)
        await cdp.send("Performance.enable")
        opened = time.monotonic()
        await page.goto(f"{params.url.rstrip('/')}/proctor/exams/{load.code}/live")
        # A busy machine is slow to start Chromium's renderer: wait up to CONNECT_SECONDS.
        try:
            # Polled through page.evaluate: wait_for_function evaluates its expression
            # inside the page, which the product's CSP (no 'unsafe-eval') refuses.
            drawn = f"window.gridStats && gridStats.batches > 0 && gridStats.tiles >= {len(tiles)}"
            deadline = time.monotonic() + CONNECT_SECONDS
            while not await page.evaluate(drawn):
                if time.monotonic() > deadline:
                    raise TimeoutError(drawn)
                await asyncio.sleep(0.1)
        except Exception:
            raise RuntimeError(f"the grid did not draw its snapshot; page errors: {errors}") from None
        first_render_s = time.monotonic() - opened
        snapshot_ms = await page.evaluate("gridStats.recentMs[0]")
        await page.evaluate("gridStats.recentMs.length = 0")  # the snapshot is reported on its own
        started = time.monotonic()
        samples = [await _sample(page, cdp, started)]
        feeder = Feeder(params, load, tiles, pictures)
        feeding = asyncio.create_task(feeder.run(params.minutes * 60))
        while not feeding.done():
            await asyncio.wait({feeding}, timeout=SAMPLE_SECONDS)
            samples.append(await _sample(page, cdp, started))
            progress(
                f"{samples[-1]['t_s']:>5} s  heap {samples[-1]['heap_mb']} MB  "
                f"nodes {samples[-1]['dom_nodes']}  batches {samples[-1]['batches']}"
            )
        feeding.result()
        await asyncio.sleep(1.0)  # the last batch lands
        stats = await page.evaluate(
            "({batches: gridStats.batches, tiles: gridStats.tiles, ms: gridStats.recentMs, "
            "feed: document.querySelectorAll('#feed li').length})"
        )
        before_gc = await _metrics(cdp)
        await cdp.send("HeapProfiler.collectGarbage")
        after_gc = await _metrics(cdp)
        await browser.close()
    elapsed = time.monotonic() - started
    return {
        "candidates": params.candidates,
        "minutes": round(elapsed / 60, 2),
        "interval_s": params.interval,
        "pushes": {
            "messages": feeder.pushes,
            "tile_updates": feeder.tile_pushes,
            "dropped_by_channel_layer": dropped.count,
            "per_second": round(feeder.pushes / elapsed, 1),
            "thumbnails": feeder.thumbnails,
            "alerts": feeder.alerts,
            "feeder_late_s_max": round(feeder.behind_s, 2),
        },
        "first_render_s": round(first_render_s, 2),
        "snapshot_render_ms": round(snapshot_ms, 1),
        "batches": stats["batches"] - 1,
        "tiles_drawn": stats["tiles"] - len(tiles),
        "tiles_per_batch": round((stats["tiles"] - len(tiles)) / max(1, stats["batches"] - 1), 1),
        "render_ms_per_batch": percentiles(stats["ms"]),
        "heap_mb": {
            "after_snapshot": samples[0]["heap_mb"],
            "at_end": round(before_gc["JSHeapUsedSize"] / 2**20, 1),
            "at_end_after_gc": round(after_gc["JSHeapUsedSize"] / 2**20, 1),
            "max_sampled": max(s["heap_mb"] for s in samples),
        },
        "dom_nodes": {"after_snapshot": samples[0]["dom_nodes"], "at_end": int(after_gc["Nodes"])},
        "feed_entries_at_end": stats["feed"],
        "samples": samples,
        "page_errors": errors,
    }


def run_grid_bench(params: GridBenchParams, progress=lambda line: None) -> dict[str, Any]:
    """Make the load exam, run the browser and the pushes, remove the exam (unless
    ``keep``), and return the figures."""
    if get_channel_layer() is None:
        raise RuntimeError("no channel layer configured: set REDIS_URL to the server's")
    load = load_exam_create(
        candidates=params.candidates, interval=params.interval, encoding=[0.0] * 128, label="grid"
    )
    progress(f"load exam {load.code}: {params.candidates} candidates, proctor {load.proctor_username}")
    try:
        result = asyncio.run(_run(params, load, progress))
    finally:
        if not params.keep:
            load_data_remove(code=load.code)
    result["debug"] = settings.DEBUG
    return result


def summary_text(result: dict[str, Any]) -> str:
    r, heap = result["render_ms_per_batch"], result["heap_mb"]
    push = result["pushes"]
    return "\n".join(
        [
            f"grid bench: {result['candidates']} candidates for {result['minutes']} min, "
            f"a frame each every {result['interval_s']} s",
            f"  pushed {push['messages']} messages ({push['per_second']}/s) to the proctor consumer, "
            f"{push['thumbnails']} thumbnails, {push['alerts']} alerts; "
            f"feeder at most {push['feeder_late_s_max']} s late",
            f"  first render (page load to all tiles drawn): {result['first_render_s']} s; "
            f"snapshot drawn in {result['snapshot_render_ms']} ms",
            f"  {result['batches']} batches, {result['tiles_per_batch']} tiles per batch; "
            f"{result['tiles_drawn']} tiles drawn of {push['tile_updates']} tile updates pushed, "
            f"{push['dropped_by_channel_layer']} messages dropped by a full channel",
            f"  render per batch: p50 {r['p50']} ms, p95 {r['p95']} ms, p99 {r['p99']} ms, "
            f"max {r['max']} ms (n={r['n']})",
            f"  JS heap: {heap['after_snapshot']} MB after the snapshot, {heap['at_end']} MB at the end "
            f"({heap['at_end_after_gc']} MB after a forced GC), at most {heap['max_sampled']} MB sampled",
            f"  DOM nodes: {result['dom_nodes']['after_snapshot']} after the snapshot, "
            f"{result['dom_nodes']['at_end']} at the end; feed entries {result['feed_entries_at_end']}",
            f"  page errors: {len(result['page_errors'])}",
        ]
    )
