"""manage.py loadtest and loadtest_plot: the frames it sends, the data it makes
and removes, the processes it counts, and a small run against a real daphne and
Celery worker. Timing figures are reported, never asserted."""

from __future__ import annotations

import asyncio
import bisect
import io
import json
import os
import random
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone
from websockets.asyncio.client import connect

from detection.core import decode_image
from detection.core.camera import frame_digest, gray_thumbnail
from exams import live
from exams.analysis.queue import frame_queue
from exams.loadtest import cpu, data, frames, plot, report, runner
from exams.loadtest.harness import (
    DEFAULT_PHOTOS,
    LoadParams,
    _SettledSample,
    scripted_candidates,
    settled_from,
)
from exams.models import Candidate, Event, EventFrame, Exam, ExamSession
from tests.conftest import daphne_start, free_port, process_stop, service_env, until
from tests.e2e.conftest import server_url  # noqa: F401  (a fixture: daphne on a free port)

RESULT_FIELDS = {
    "parameters",
    "candidates",
    "connected",
    "connect_ms",
    "handshake_failures",
    "handshake_failure_reasons",
    "disconnects_by_server",
    "never_connected",
    "reconnects",
    "reconnected",
    "proctor_reconnects",
    "slowed_down",
    "max_interval_asked",
    "latency_ms",
    "frames_sent",
    "frames_skipped",
    "frames_analysed",
    "frames_pushed_to_proctor",
    "analysed_share",
    "episodes",
    "episodes_alerted",
    "episodes_by_type",
    "alert_latency_ms",
    "events_opened",
    "errors",
    "cpu_seconds_per_analysed_frame",
    "cpu",
    "bench",
    "drained",
    "wall_s",
    "machine",
}


def _run(*args) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue()


def _encoding() -> list[float]:
    return [0.0] * 128  # the data tests never analyse a frame


def _stream(walk: frames.FrameWalk, seconds: float, interval: float) -> list[tuple[str, bytes]]:
    return [walk.frame(k * interval) for k in range(frames.frames_in(seconds, interval))]


# ---------------------------------------------------------------- frames


def test_it_never_sends_a_candidate_the_same_frame_twice():
    duration, interval = 60.0, 2.0
    pools = frames.build_pools(DEFAULT_PHOTOS, frames.pool_sizes(duration, interval))
    still = frames.FrameWalk(pools, offset=5, episodes=())
    scripted = frames.FrameWalk(pools, offset=11, episodes=frames.episodes_for(duration, interval))

    for walk in (still, scripted):
        stream = _stream(walk, duration, interval)
        sent = [jpeg for _, jpeg in stream]
        assert len(set(sent)) == len(sent), "no frame is sent twice in a run"
        pixels = [decode_image(jpeg) for jpeg in sent]
        for before, after in zip(pixels, pixels[1:], strict=False):
            assert not (before == after).all()
            # What the server's frozen-camera check compares.
            assert frame_digest(gray_thumbnail(before)) != frame_digest(gray_thumbnail(after))
    scenes = [
        scene for scene, _ in _stream(frames.FrameWalk(pools, 0, scripted.episodes), duration, interval)
    ]
    assert scenes.count("second_person") == 4 and scenes.count("no_face") == 4, "8 s each at 2 s"


def test_it_gives_episodes_to_a_tenth_of_the_candidates_that_fit_the_run():
    assert scripted_candidates(3, 0.1) == {0}
    assert len(scripted_candidates(25, 0.1)) == 3 and len(scripted_candidates(50, 0.1)) == 5
    assert scripted_candidates(10, 0.0) == set()
    assert [e.expected_event for e in frames.episodes_for(60, 2)] == ["multiple_faces", "no_face"]
    assert [e.expected_event for e in frames.episodes_for(14, 2)] == ["multiple_faces"]
    assert frames.episodes_for(10, 2) == ()


# ---------------------------------------------------------------- data


@pytest.mark.django_db
def test_it_starts_every_load_candidate_in_progress_with_a_signed_in_proctor():
    load = data.load_exam_create(candidates=3, interval=2.0, encoding=_encoding())
    exam = Exam.objects.get(code=load.code)
    assert exam.title.startswith("[loadtest]")
    sessions = ExamSession.objects.filter(candidate__exam=exam)
    assert {s.state for s in sessions} == {"in_progress"}
    assert all(c.email.endswith("@loadtest.invalid") and c.reference_encodings for c in exam.candidates.all())
    proctor = exam.proctors.get()
    assert proctor.groups.filter(name="Proctor").exists()
    key = load.session_cookie.split("=", 1)[1]
    assert Session.objects.get(session_key=key).get_decoded()["_auth_user_id"] == str(proctor.pk)


@pytest.mark.django_db
def test_it_removes_everything_it_created_and_nothing_else(proctor, live_session, settings):
    kept_event = Event.objects.create(
        session=live_session,
        type="no_face",
        key="no_face",
        severity="medium",
        started_at=timezone.now(),
        ended_at=timezone.now(),
    )
    kept_event.evidence.save("kept.jpg", ContentFile(b"\xff\xd8\xffkept"))
    lookalike = Exam.objects.create(title="[loadtest] but a real candidate is on it")
    Candidate.objects.create(exam=lookalike, name="Real Person", email="real@example.org")
    real_user = get_user_model().objects.create(username="loadtest-proctor-real", email="me@example.org")

    load = data.load_exam_create(candidates=3, interval=2.0, encoding=_encoding())
    session = ExamSession.objects.get(public_id=load.candidates[0].session_id)
    event = Event.objects.create(
        session=session,
        type="multiple_faces",
        key="multiple_faces",
        severity="high",
        started_at=timezone.now(),
        ended_at=timezone.now(),
    )
    event.evidence.save("load.jpg", ContentFile(b"\xff\xd8\xffload"))
    load_file = event.evidence.path
    clip_frame = EventFrame(event=event, taken_at=timezone.now())
    clip_frame.image.save("clip.jpg", ContentFile(b"\xff\xd8\xffclip"))
    kept_frame = EventFrame(event=kept_event, taken_at=timezone.now())
    kept_frame.image.save("kept-clip.jpg", ContentFile(b"\xff\xd8\xffkept-clip"))
    live.picture_keep(load.candidates[0].session_id, frame=b"load-frame", thumbnail=b"load-thumb")
    live.picture_keep(str(live_session.public_id), frame=b"kept-frame", thumbnail=b"kept-thumb")

    removed = json.loads(_run("loadtest", "--cleanup", "--json"))

    assert removed == {
        "exams": 1,
        "candidates": 3,
        "sessions": 3,
        "events": 1,
        "evidence_files": 2,  # the evidence frame and the clip frame
        "django_sessions": 1,
        "users": 1,
    }
    assert not Exam.objects.filter(code=load.code).exists()
    assert not get_user_model().objects.filter(username=load.proctor_username).exists()
    assert not os.path.exists(load_file) and not os.path.exists(clip_frame.image.path)
    assert os.path.exists(kept_frame.image.path)
    assert live.picture(load.candidates[0].session_id) is None
    assert live.thumbnails([load.candidates[0].session_id]) == {}
    # Everything else stays.
    assert Exam.objects.filter(pk__in=[live_session.exam.pk, lookalike.pk]).count() == 2
    assert ExamSession.objects.filter(pk=live_session.pk).exists()
    kept_event.refresh_from_db()
    assert os.path.exists(kept_event.evidence.path)
    assert live.picture(str(live_session.public_id)) == b"kept-frame"
    assert get_user_model().objects.filter(pk__in=[proctor.pk, real_user.pk]).count() == 2
    assert Group.objects.filter(name="Proctor").exists()
    assert json.loads(_run("loadtest", "--cleanup", "--json"))["exams"] == 0


# ---------------------------------------------------------------- server processes


def test_it_counts_only_the_server_processes_of_its_own_database():
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    ours = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/loadtest_ours"}
    theirs = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/loadtest_theirs"}
    procs = [
        subprocess.Popen([*sleeper, "daphne", "-p", "8123"], env=ours),
        subprocess.Popen([*sleeper, "celery", "-A", "proctor", "worker"], env=ours),
        subprocess.Popen([*sleeper, "daphne", "-p", "8124"], env=ours),  # another port
        subprocess.Popen([*sleeper, "celery", "-A", "proctor", "worker"], env=theirs),
    ]
    try:
        found = cpu.find_server(database=("127.0.0.1", 5432, "loadtest_ours"), ports={8123})
        assert found == {procs[0].pid: "daphne", procs[1].pid: "worker"}
        two = cpu.find_server(database=("127.0.0.1", 5432, "loadtest_ours"), ports={8123, 8124})
        assert two == {procs[0].pid: "daphne", procs[1].pid: "worker", procs[2].pid: "daphne"}
        before = cpu.sample(found)
        assert set(cpu.used_between(before, cpu.sample(found))) == {"daphne", "worker"}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- a real run


@pytest.mark.services
@pytest.mark.slow
def test_it_reports_every_field_of_a_run_and_cleans_up(server_url, celery_worker_process, exam):  # noqa: F811
    out = _run(
        "loadtest",
        "--url",
        server_url,
        "--candidates",
        "3",
        "--duration",
        "14",
        "--ramp",
        "2",
        "--json",
        "--keep",
    )
    result = json.loads(out)

    assert RESULT_FIELDS <= set(result)
    assert result["connected"] + result["handshake_failures"] == 3
    assert result["never_connected"] == 0
    assert result["reconnects"] == {} and result["proctor_reconnects"] == {}, "nothing closed mid-run"
    assert result["frames_sent"] > 0
    assert 0 < result["frames_analysed"] <= result["frames_sent"]
    assert result["latency_ms"]["n"] > 0 and set(result["latency_ms"]) >= {"p50", "p95", "p99"}
    assert set(result["connect_ms"]) >= {"p50", "p95"}
    assert result["episodes"] == 1, "the first candidate shows a second person for 8 s"
    assert set(result["alert_latency_ms"]) >= {"p50", "p95"}
    assert result["cpu"]["processes"]["worker"] == [celery_worker_process.pid]
    assert len(result["cpu"]["processes"]["daphne"]) == 1
    assert result["cpu_seconds_per_analysed_frame"] is not None
    # The bench ran after the load on the same photos, and the ratio is the worker's figure over it.
    bench = result["bench"]
    assert bench["frames"] == 300 and bench["amortised_ms_per_frame"] > 0
    ratio = result["cpu"]["worker_per_analysed_frame_s"] * 1000 / bench["amortised_ms_per_frame"]
    assert result["cpu"]["live_vs_bench"] == pytest.approx(ratio, rel=0.01)
    assert result["errors"]["client"] == {} and result["errors"]["proctor_sockets"] == {}
    assert result["parameters"]["candidates"] == 3 and result["parameters"]["interval"] == 2.0

    load = Exam.objects.get(code=result["parameters"]["exam"])
    assert ExamSession.objects.filter(candidate__exam=load).count() == 3
    _run("loadtest", "--cleanup")
    assert not Exam.objects.filter(title__startswith="[loadtest]").exists()
    assert Exam.objects.filter(pk=exam.pk).exists()
    assert not Event.objects.filter(session__candidate__email__endswith="@loadtest.invalid").exists()
    assert not get_user_model().objects.filter(username__startswith="loadtest-proctor-").exists()


def test_it_splits_the_latency_into_windows_of_the_run():
    obs = runner.Observations(started_at=1000.0)
    # (session, received by the server, told the proctor): two slow first frames, then quick ones.
    obs.analysed_pushes = [("a", 1001.0, 1004.0), ("b", 1002.0, 1006.0), ("a", 1012.0, 1012.3)]
    windows = report.latency_windows(obs)
    assert [w["from_s"] for w in windows] == [0.0, 10.0]
    assert windows[0]["p95"] == 4000.0 and windows[0]["n"] == 2
    assert windows[1]["p50"] == 300.0


def test_it_plots_results_against_candidates(tmp_path):
    runs = []
    for candidates, p95 in ((10, 900.0), (25, 4000.0)):
        result = {name: None for name in RESULT_FIELDS}
        result.update(
            candidates=candidates,
            connected=candidates,
            parameters={"interval": 2.0, "duration": 60.0},
            machine={"cpus": 2},
            latency_ms={"p50": p95 / 3, "p95": p95},
            connect_ms={"p50": 40.0, "p95": p95 / 2},
            handshake_failures=candidates // 10,
            analysed_share=0.9,
            episodes=1,
            episodes_alerted=1,
            cpu_seconds_per_analysed_frame=0.2,
            cpu={"worker_per_analysed_frame_s": 0.18, "daphne_per_analysed_frame_s": 0.02},
        )
        path = tmp_path / f"{candidates}.json"
        path.write_text(json.dumps(result))
        runs.append(str(path))
    output = tmp_path / "capacity.png"

    assert "wrote" in _run("loadtest_plot", *runs, "--output", str(output))
    assert output.read_bytes().startswith(b"\x89PNG")


# ---------------------------------------------------------------- like the exam page


def test_it_waits_before_reconnecting_as_the_exam_page_does():
    # static/js/socket.js: 1 s doubling to 15 s, each wait between half and all of its step.
    for attempt, step in enumerate((1, 2, 4, 8, 15, 15, 15)):
        waits = [runner.reconnect_delay(attempt) for _ in range(200)]
        assert all(step / 2 <= wait <= step for wait in waits), (attempt, min(waits), max(waits))
        assert len(set(waits)) > 1, "jittered"
    assert runner.reconnect_delay(10_000) <= runner.LONGEST_WAIT_SECONDS


@pytest.fixture(scope="module")
def pools() -> dict[str, list[bytes]]:
    return frames.build_pools(DEFAULT_PHOTOS, frames.pool_sizes(120, 2.0))


def _load_run(
    url: str, load: data.LoadExam, pools, *, proctors: int = 0, duration: float = 120
) -> runner.LoadRun:
    plan = runner.Plan(
        base_url=url,
        load=load,
        walks=[frames.FrameWalk(pools, offset=7 * c.index, episodes=()) for c in load.candidates],
        duration=duration,
        interval=2.0,  # as every load exam below is made
        ramp=0.0,
        proctors=proctors,
        drain=0.0,
    )
    return runner.LoadRun(plan, drained=lambda: True, progress=lambda line: None)


# A page gets in, or is refused, within one handshake; a page that waits reconnects
# within the longest backoff step.
BACK_WITHIN = runner.HANDSHAKE_TIMEOUT + runner.LONGEST_WAIT_SECONDS


@pytest.fixture
def no_analysis():
    """No Celery worker runs: every frame stays waiting, so the server sees each
    stream lagging. The analysis tasks queued meanwhile are dropped afterwards."""
    import redis
    from django.conf import settings

    yield
    redis.Redis.from_url(settings.REDIS_URL).delete("celery")


@pytest.mark.services
@pytest.mark.slow
def test_it_keeps_retrying_while_another_tab_holds_the_session(server_url, pools, no_analysis):  # noqa: F811
    load = data.load_exam_create(candidates=1, interval=2.0, encoding=_encoding())
    run = _load_run(server_url, load, pools)
    token = load.candidates[0].token

    async def scenario() -> runner.Observations:
        async with connect(
            f"{run.plan.ws_url()}/ws/take/{token}/?resume=another-tab-0001", origin=server_url
        ) as other_tab:
            assert json.loads(await other_tab.recv())["type"] == "status"
            task = asyncio.create_task(run.run())
            await until(
                lambda: run.obs.reconnects["closed_before_status_4409"] >= 2,
                within=2 * BACK_WITHIN,
                what="the candidate retried after 'duplicate_session'",
            )
        await until(lambda: run.obs.connected == 1, within=BACK_WITHIN, what="it got in")
        run.stop_streaming.set()
        return await task

    obs = asyncio.run(scenario())

    assert obs.connected == 1 and obs.reconnected == 0
    assert set(obs.reconnects) == {"closed_before_status_4409"}
    assert obs.handshake_failures == obs.reconnects, "every refusal was followed by a retry"
    assert obs.server_errors["duplicate_session"] == obs.reconnects["closed_before_status_4409"]
    assert "taken_over" not in obs.server_errors
    session = ExamSession.objects.get(public_id=load.candidates[0].session_id)
    assert session.events.filter(type="duplicate_session").count() == 1, "recorded once per claim"


@pytest.mark.services
@pytest.mark.slow
def test_it_never_reconnects_after_a_fatal_error(server_url, pools):  # noqa: F811
    load = data.load_exam_create(candidates=1, interval=2.0, encoding=_encoding())
    session = ExamSession.objects.get(public_id=load.candidates[0].session_id)
    session.submit(now=timezone.now())
    session.save()
    run = _load_run(server_url, load, pools)

    async def scenario() -> None:
        # The candidate gives up by itself; a retry would keep it going until the run ends.
        await asyncio.wait_for(run.candidate(0, 0.0), timeout=BACK_WITHIN)

    asyncio.run(scenario())

    assert run.obs.handshake_failures == {"error_not_in_progress": 1}
    assert run.obs.reconnects == {} and run.obs.connected == 0
    assert run.pages[0].finished


@pytest.mark.services
@pytest.mark.slow
def test_it_sends_frames_at_the_pace_the_server_asks(server_url, pools, no_analysis):  # noqa: F811
    load = data.load_exam_create(candidates=2, interval=2.0, encoding=_encoding())
    duration = 12.0
    run = _load_run(server_url, load, pools, duration=duration)

    obs = asyncio.run(run.run())

    # No frame is ever analysed, so from its second frame the server finds each
    # stream lagging and asks for a longer interval.
    assert obs.connected == 2
    assert obs.slowed_down == {0, 1}
    assert obs.max_interval_asked > 2.0
    assert all(page.interval > 2.0 for page in run.pages)
    assert obs.frames_sent < 2 * frames.frames_in(duration, 2.0), "fewer frames than at the exam's pace"
    assert "too_fast" not in obs.server_errors


@pytest.mark.services
@pytest.mark.slow
def test_it_reconnects_candidates_and_proctors_after_a_server_restart(transactional_db, tmp_path, pools):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    daphne = daphne_start(port=port, env=service_env(), log=tmp_path / "daphne-1.log")
    load = data.load_exam_create(candidates=2, interval=2.0, encoding=_encoding())
    run = _load_run(url, load, pools, proctors=1)

    async def scenario() -> runner.Observations:
        nonlocal daphne
        task = asyncio.create_task(run.run())
        await until(lambda: run.obs.connected == 2, within=BACK_WITHIN, what="both connected")
        await asyncio.to_thread(process_stop, daphne)
        daphne = await asyncio.to_thread(
            daphne_start, port=port, env=service_env(), log=tmp_path / "daphne-2.log"
        )
        await until(
            lambda: run.obs.reconnected == 2 and len(run.obs.proctor_opened) == 2,
            within=BACK_WITHIN,
            what="both candidates and the proctor came back",
        )
        run.stop_streaming.set()
        return await task

    try:
        obs = asyncio.run(scenario())
    finally:
        process_stop(daphne)

    assert obs.connected == 2 and obs.reconnected == 2
    assert sum(obs.reconnects.values()) >= 2 and sum(obs.proctor_failures.values()) >= 1
    # The same resume id takes the session straight back from the socket that died with the server.
    assert "duplicate_session" not in obs.server_errors and "taken_over" not in obs.server_errors
    assert [index for index, _ in obs.candidate_opened].count(0) == 2


def _busiest_half_second(jitter: float, monkeypatch) -> int:
    """The most frames 100 simulated pages send within half a second, a minute
    after the server slowed every page down and let them back (as
    exams.analysis.pacing does at 9:00), each page following the pace the
    way the exam page does: its next frame one jittered pace after the last."""
    monkeypatch.setattr(runner, "FRAME_JITTER", jitter)

    def pace(t: float) -> float:  # the server's asked interval at t seconds
        if 10 <= t < 16:
            return 2.0 * min(4.0, 1.25 ** (t - 10))
        if 16 <= t < 30:
            return 2.0 * max(1.0, 4.0 / 1.15 ** (t - 16))
        return 2.0

    due = [0.1 * page + 2.0 for page in range(100)]  # connected over 10 s, evenly
    sent = []
    while min(due) < 120:
        page = min(range(100), key=due.__getitem__)
        sent.append(due[page])
        due[page] += runner.frame_delay(pace(due[page]))
    late = sorted(t for t in sent if t > 60)
    return max(bisect.bisect_right(late, t + 0.5) - k for k, t in enumerate(late))


def test_pages_the_server_retimed_together_do_not_stay_in_step(monkeypatch):
    random.seed(1)
    # Evenly spread, 100 pages at 2 s put 25 frames in any half second.
    assert _busiest_half_second(runner.FRAME_JITTER, monkeypatch) < 45
    # Without the jitter, the pace changes line most pages up, for good.
    assert _busiest_half_second(0.0, monkeypatch) > 60


def test_it_spreads_candidates_over_several_daphne_processes_as_a_proxy_would():
    params = LoadParams(url="http://127.0.0.1:8741, http://127.0.0.1:8742/", candidates=4, duration=60.0)
    assert params.urls == ("http://127.0.0.1:8741", "http://127.0.0.1:8742") and params.ports == {8741, 8742}
    plan = runner.Plan(
        base_url=params.base_url,
        more_urls=params.urls[1:],
        load=None,
        walks=[],
        duration=60.0,
        interval=2.0,
        ramp=10.0,
        proctors=1,
        drain=0.0,
    )
    assert [plan.url_for(i) for i in range(4)] == [*params.urls, *params.urls]
    assert plan.ws_url(1) == "ws://127.0.0.1:8742"
    with pytest.raises(ValueError, match="this machine"):
        LoadParams(url="http://127.0.0.1:8741,http://example.org:8742", candidates=4, duration=60.0)


def test_the_settled_figures_start_once_every_stream_is_past_its_start():
    params = LoadParams(url="http://127.0.0.1:8000", candidates=100, duration=60.0, ramp=10.0)
    server = {1: "daphne", 2: "worker", 3: "worker"}
    at = settled_from(params, server)
    # The last candidate connects at 10 s; its last episode ends 28 s later, then two frames.
    assert at == 10.0 + frames.SCRIPT_END_SECONDS + 2 * 2.0
    assert frames.SCRIPT_END_SECONDS == max(s for s, _ in frames.EPISODE_SCRIPT) + frames.EPISODE_SECONDS
    short = LoadParams(url=params.url, candidates=100, duration=50.0, ramp=10.0)
    assert settled_from(short, server) is None
    assert settled_from(params, {1: "daphne"}) is None, "embedded mode: no worker to read"


def test_the_settled_sample_counts_cpu_and_frames_from_its_moment_on(transactional_db):
    """Read on its timer, from /proc and the database: this process stands for the worker."""
    load = data.load_exam_create(candidates=2, interval=2.0, encoding=_encoding())
    processes = {os.getpid(): "worker"}
    ExamSession.objects.filter(candidate__exam__code=load.code).update(frames_analysed=3)
    sample = _SettledSample(0.01, processes, load)
    sample.start()
    read_by = time.monotonic() + 10  # a bound for a loaded machine; it reads 0.01 s after start()
    while sample.cpu is None and time.monotonic() < read_by:
        time.sleep(0.01)
    assert sample.cpu is not None, "the timer read the sample"
    ExamSession.objects.filter(candidate__exam__code=load.code).update(frames_analysed=10)  # 2 x 7 more
    deadline = cpu.sample(processes)[os.getpid()].cpu_seconds + 0.2
    while cpu.sample(processes)[os.getpid()].cpu_seconds < deadline:
        sum(range(10_000))  # CPU the settled window must count
    settled = sample.until(cpu.sample(processes), data.load_frames_analysed(load))
    assert settled.from_s == 0.01 and settled.frames_analysed == 14
    assert settled.worker_seconds >= 0.15  # clock ticks: 0.2 s may read as 0.19
    data.load_data_remove(code=load.code)


def test_a_run_too_short_to_settle_reports_no_settled_figures():
    sample = _SettledSample(None, {os.getpid(): "worker"}, load=None)
    sample.start()
    assert sample.until(cpu.sample({os.getpid(): "worker"}), 10) is None


def test_its_table_sets_the_live_cost_beside_the_bench():
    result = {
        "candidates": 100,
        "handshake_failures": 0,
        "connect_ms": {"p95": 30.0},
        "latency_ms": {"p50": 245.0, "p95": 821.0, "p99": 1285.0},
        "analysed_share": 1.0,
        "episodes": 20,
        "episodes_alerted": 20,
        "slowed_down": 100,
        "cpu": {
            "worker_per_analysed_frame_s": 0.0264,
            "daphne_per_sent_frame_s": 0.0047,
            "live_vs_bench": 1.43,
            "settled": {"live_vs_bench": 1.21},
        },
        "bench": {"amortised_ms_per_frame": 18.5},
    }
    header, _, row = plot.markdown_table([result]).splitlines()

    cells = dict(zip(header.strip("|").split(" | "), row.strip("|").split(" | "), strict=True))
    assert cells["worker CPU ms per analysed frame"].strip() == "26.4"
    assert cells["bench ms amortised"].strip() == "18.5"
    assert cells["live / bench"].strip() == "1.43"
    assert cells["settled live / bench"].strip() == "1.21"


# ---------------------------------------------------------------- frame_cost


@pytest.mark.services
def test_frame_cost_charges_each_stage_of_the_worker_and_removes_its_candidate(transactional_db):
    result = json.loads(_run("frame_cost", "--frames", "6", "--json"))

    stages = result["stages_ms"]
    assert result["frames"] == 6
    for label in ("load the session", "decode the JPEG", "computer vision", "write (lock, state, events)"):
        assert stages[label] > 0, label
    assert {"push to the proctors", "queue hand-off", "picture for the grid"} <= set(stages)
    assert sum(stages.values()) + result["other_ms"] == pytest.approx(result["cpu_ms_per_frame"], abs=0.05)
    assert result["checks_run"]["camera"] == 6
    assert not Exam.objects.filter(title__startswith=data.TITLE_PREFIX).exists()
    # The wrappers are gone: the pipeline calls its own functions again.
    from exams.analysis import pipeline

    assert pipeline.analyse_stream.__module__ == "detection.core.analyse"
    assert "take" not in vars(frame_queue())


# ---------------------------------------------------------------- the walk-in


def test_it_walks_a_hall_in_through_the_pages_while_a_neighbour_guesses(
    transactional_db, celery_worker_process, tmp_path
):
    """Invited candidates from one address (this machine) open their links, consent,
    verify and start through the real pages and sockets with the default limits,
    while a neighbour at the same address sends made-up tokens far over
    TAKE_REFUSALS_PER_MINUTE (3 here, so it trips early): the neighbour is told
    to wait, the candidates never are."""
    port = free_port()
    daphne = daphne_start(
        port=port, env=service_env(TAKE_REFUSALS_PER_MINUTE="3"), log=tmp_path / "daphne.log"
    )
    try:
        out = _run(
            "loadtest",
            "--walk-in",
            "--url",
            f"http://127.0.0.1:{port}",
            "--candidates",
            "3",
            "--ramp",
            "1",
            "--duration",
            "120",
            "--neighbour",
            "120",
            "--json",
        )
    finally:
        process_stop(daphne, timeout=10)
    result = json.loads(out)

    assert result["mode"] == "walk_in" and result["arrived"] == 3
    assert result["states"] == {"in_progress": 3}
    assert result["reached"] == {stage: 3 for stage in report.STAGES}
    assert result["http_429"] == 0 and result["socket_4429"] == 0
    assert result["unexpected"] == {}, result["unexpected"]
    assert result["uploads"] >= 3 and result["status_polls"] > 0
    neighbour = result["neighbour"]
    assert neighbour.get("page 404", 0) + neighbour.get("socket 4403", 0) >= 3
    assert neighbour.get("page 429", 0) + neighbour.get("socket 4429", 0) > 0
    assert not Exam.objects.filter(code=result["parameters"]["exam"]).exists(), "removed after the run"
