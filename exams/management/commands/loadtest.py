import json

from django.core.management.base import BaseCommand, CommandError

from exams.loadtest.data import load_data_remove
from exams.loadtest.harness import DEFAULT_PHOTOS, EPISODE_SHARE, LoadParams, run_load_test, run_walk_in
from exams.loadtest.report import summary_text, walk_in_summary_text


def _pids(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in value.split(",") if p.strip())
    except ValueError:
        raise CommandError(f"--server-pids takes comma-separated process ids, not {value!r}") from None


class Command(BaseCommand):
    help = (
        "Load a running server (same DATABASE_URL) with simulated candidates streaming webcam frames "
        "and proctor sockets listening; print connect times, latency, analysed share, alerts and "
        "server CPU per frame. --walk-in instead walks invited candidates through the real pages "
        "(link, consent, verification picture, start, socket) from this one address, as an exam hall. "
        "--cleanup removes every load-test exam and user."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--url",
            help="the server, e.g. http://127.0.0.1:8000 (this machine only); several daphne processes "
            "of one server comma-separated, dialled in turn as a proxy would",
        )
        parser.add_argument("--candidates", type=int, default=10)
        parser.add_argument("--duration", type=float, default=60.0, help="seconds from the first connect")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between frames")
        parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which candidates connect")
        parser.add_argument("--proctors", type=int, default=1, help="proctor sockets listening")
        parser.add_argument(
            "--photos", default=str(DEFAULT_PHOTOS), help="folder with obama.jpg and biden.jpg (the scenes)"
        )
        parser.add_argument(
            "--episode-share",
            type=float,
            default=EPISODE_SHARE,
            help="share of candidates with a second person and an empty seat (at least one if above 0)",
        )
        parser.add_argument(
            "--drain", type=float, default=20.0, help="seconds to wait for analysis to finish"
        )
        parser.add_argument("--seed", type=int, default=0, help="seed of the frame noise")
        parser.add_argument("--server-pids", default="", help="count these pids (and children) as the server")
        parser.add_argument(
            "--no-bench",
            action="store_true",
            help="skip the detection bench after the load (no live_vs_bench figure)",
        )
        parser.add_argument(
            "--walk-in",
            action="store_true",
            help="invited candidates open their links, consent, verify and start through the pages, "
            "arriving over --ramp seconds, stopped at --duration",
        )
        parser.add_argument(
            "--neighbour",
            type=float,
            default=0.0,
            metavar="PER_MINUTE",
            help="with --walk-in: also send this many made-up tokens a minute (pages and sockets in turn) "
            "from the same address",
        )
        parser.add_argument("--keep", action="store_true", help="leave the load exam in place afterwards")
        parser.add_argument("--cleanup", action="store_true", help="remove all load-test data, then exit")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        if o["cleanup"]:
            removed = load_data_remove()
            self.stdout.write(json.dumps(removed) if o["json"] else f"removed {removed}")
            return
        if not o["url"]:
            raise CommandError("--url is required (or --cleanup)")
        try:
            params = LoadParams(
                url=o["url"],
                candidates=o["candidates"],
                duration=o["duration"],
                interval=o["interval"],
                ramp=o["ramp"],
                proctors=o["proctors"],
                photos=o["photos"],
                episode_share=o["episode_share"],
                drain=o["drain"],
                seed=o["seed"],
                server_pids=_pids(o["server_pids"]),
                bench=not o["no_bench"],
                walk_in=o["walk_in"],
                neighbour_per_minute=o["neighbour"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if o["walk_in"]:
            result = run_walk_in(
                params, progress=lambda line: self.stderr.write(f"loadtest: {line}"), keep=o["keep"]
            )
            self.stdout.write(json.dumps(result, indent=2) if o["json"] else walk_in_summary_text(result))
            return
        result = run_load_test(
            params, progress=lambda line: self.stderr.write(f"loadtest: {line}"), keep=o["keep"]
        )
        self.stdout.write(json.dumps(result, indent=2) if o["json"] else summary_text(result))
