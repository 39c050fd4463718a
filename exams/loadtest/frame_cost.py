"""Where a worker's CPU goes for each analysed frame: ``manage.py frame_cost``.

``manage.py loadtest`` reports the worker's CPU per analysed frame beside the
detection bench's; this says what the difference is made of. It runs the
worker's own code (``exams.analysis.pipeline.analyse_next_frame``, as the
Celery task does) in this process, against the configured database and Redis,
on one load-test candidate streaming the load test's still frames every
``interval`` of stream time, and charges this process's CPU time to each stage
the pipeline calls. The stream's first frame (every check, and the models
loading) is analysed before counting starts. Celery itself is not included:
the task wrapper, the broker message and the worker's main process add to the
live figure.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from detection.core import decode_image, encode_reference
from exams import clips, live, services
from exams.analysis import intake, pipeline
from exams.analysis.pacing import pacing
from exams.analysis.queue import QueuedFrame, frame_queue
from exams.loadtest import data, frames

# (label, object, attribute): what the pipeline calls, by the name it calls it.
# "write" includes "push", which runs when the write commits.
STAGES = (
    ("load the session", pipeline, "_load"),
    ("decode the JPEG", pipeline, "decode_image"),
    ("computer vision", pipeline, "analyse_stream"),
    ("rules", pipeline, "debounce"),
    ("write (lock, state, events)", services, "analysis_record"),
    ("push to the proctors", live, "session_changed"),
    ("clip buffer", clips, "clip_frame_seen"),
    ("picture for the grid", live, "picture_due"),
    ("picture for the grid", pipeline, "encode_jpeg"),
    ("picture for the grid", live, "picture_keep"),
    ("queue hand-off", intake, "finished"),
)


@contextmanager
def _charged(stages: Counter[str], checks: Counter[str]) -> Iterator[None]:
    """Wrap each stage so its CPU time adds to ``stages``; undone on exit."""
    originals: list[tuple[object, str, Callable]] = []

    def wrap(label: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                result = fn(*args, **kwargs)
            finally:
                stages[label] += time.process_time() - start
            if fn.__name__ == "analyse_stream":
                checks.update(result[0].checks_run)
            return result

        return timed

    queue, pace = frame_queue(), pacing()
    targets = [*STAGES, ("queue hand-off", queue, "take"), ("queue hand-off", pace, "report")]
    try:
        for label, owner, name in targets:
            originals.append((owner, name, getattr(owner, name)))
            setattr(owner, name, wrap(label, getattr(owner, name)))
        yield
    finally:
        for owner, name, original in reversed(originals):
            if isinstance(owner, ModuleType):
                setattr(owner, name, original)
            else:
                delattr(owner, name)  # the wrapper shadowed the method on this instance


def measure_frame_cost(
    *, photos: Path, frame_count: int, interval: float = 2.0, pause: float = 0.0
) -> dict[str, Any]:
    """Analyse ``frame_count`` still frames of one load-test candidate and say
    what each stage cost per frame, in CPU milliseconds of this process.

    ``pause`` seconds of sleep between frames (not counted) leave the CPU's
    caches to other work, as a worker's are between the frames of a lightly
    loaded server; without it the frames run back to back, as in the bench."""
    if frame_count < 1:
        raise ValueError("frame_count must be at least 1")
    pool = frames.build_pools(photos, {frames.STILL: frame_count + 1})[frames.STILL]
    encoding = encode_reference(decode_image((photos / "obama.jpg").read_bytes())).tolist()
    load = data.load_exam_create(candidates=1, interval=interval, encoding=encoding, label="frame cost")
    session_id = load.candidates[0].session_id
    start = time.time() - (frame_count + 1) * interval  # stream time ends now

    def analyse(index: int) -> None:
        at = start + index * interval
        frame = QueuedFrame(session_id=session_id, seq=int(at * 1_000_000), received_at=at, data=pool[index])
        put = frame_queue().put(intake.FRAME, frame)
        pipeline.analyse_next_frame(session_id, owner=put.owner)

    stages: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    try:
        analyse(0)
        with _charged(stages, checks):
            began = time.process_time()
            for index in range(1, frame_count + 1):
                if pause:
                    time.sleep(pause)
                analyse(index)
            total = time.process_time() - began
    finally:
        data.load_data_remove(code=load.code)
    stages["write (lock, state, events)"] -= stages["push to the proctors"]
    per_frame = {label: round(seconds * 1000 / frame_count, 2) for label, seconds in stages.items()}
    return {
        "frames": frame_count,
        "interval_s": interval,
        "pause_s": pause,
        "cpu_ms_per_frame": round(total * 1000 / frame_count, 2),
        "stages_ms": per_frame,
        "other_ms": round((total - sum(stages.values())) * 1000 / frame_count, 2),
        "checks_run": {name: checks[name] for name in sorted(checks)},
    }


def summary_text(result: dict[str, Any]) -> str:
    lines = [
        f"{result['frames']} still frames, one every {result['interval_s']:g} s of stream time"
        + (f", {result['pause_s']:g} s apart" if result["pause_s"] else ", back to back")
        + f": {result['cpu_ms_per_frame']} ms of CPU per frame",
    ]
    for label, ms in sorted(result["stages_ms"].items(), key=lambda item: -item[1]):
        lines.append(f"  {label:<30} {ms:7.2f} ms")
    lines.append(f"  {'other (task body, config)':<30} {result['other_ms']:7.2f} ms")
    lines.append(f"  checks run: {result['checks_run']}")
    return "\n".join(lines)
