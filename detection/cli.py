"""``python -m detection``: analyse, bench, evaluate, make-evalset.

    python -m detection analyse IMAGE... [--reference IMG]... [--threshold T] [--json]
                                [--dim MEAN] [--bars] [--no-lift]
    python -m detection bench --photos DIR [--duration S] [--repeat N] [--full] [--json]
    python -m detection make-evalset --photos DIR OUTDIR
    python -m detection evaluate [--json] DIR
    python -m detection evaluate --real [--dim MEAN] [--json] DIR
    python -m detection build-realset --mirrors DIR --photos DIR DIR

``bench`` and ``make-evalset`` compose their pictures from a folder of photos
that must be given: the repository's own are in tests/data/photos (the
Makefile's ``bench`` and ``evaluate`` targets pass it). Results go to stdout
(JSON with --json); logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("detection.cli")


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def analysis_record(path: str, analysis: Any, decode_ms: float) -> dict[str, Any]:
    data = analysis.to_json()
    pose = data["head_pose"]
    return {
        "image": path,
        "faces": data["faces"],
        "boxes": data["boxes"],
        "identity": data["identity"],
        "head_pose": None
        if pose is None
        else {"yaw": round(pose["yaw"], 1), "pitch": round(pose["pitch"], 1)},
        "looking_away": data["looking_away"],
        "objects": data["objects"],
        "camera_blocked": data["camera"]["blocked"],
        "camera": data["camera"],
        "checks_run": data["checks_run"],
        "timings_ms": {"decode": round(decode_ms, 2), **data["timings_ms"]},
    }


def _variant(image: Any, args: argparse.Namespace) -> Any:
    """The picture as ``--bars`` and ``--dim`` ask: framed 640x480, bars, then dimmed."""
    if args.dim is None and not args.bars:
        return image
    from detection.core import crop_to
    from detection.core.image import dim_to, letterbox, prepare_image

    image = crop_to(prepare_image(image), (640, 480), 0.3)
    if args.bars:
        image = letterbox(image)
    return dim_to(image, args.dim) if args.dim is not None else image


def cmd_analyse(args: argparse.Namespace) -> int:
    from detection.core import CheckConfig, DetectionError, analyse_frame, decode_image, encode_reference

    references = []
    for ref in args.reference or []:
        try:
            references.append(encode_reference(decode_image(_read(ref))))
        except (OSError, DetectionError) as exc:
            logger.error("reference %s: %s", ref, exc)
            return 2
    config = CheckConfig(identity_threshold=args.threshold) if args.threshold is not None else CheckConfig()
    status = 0
    for path in args.images:
        try:
            start = time.perf_counter()
            image = decode_image(_read(path))
            decode_ms = (time.perf_counter() - start) * 1000
            image = _variant(image, args)
            analysis = analyse_frame(image, references=references, config=config, lift=not args.no_lift)
        except (OSError, DetectionError) as exc:
            logger.error("%s: %s", path, exc)
            sys.stdout.write(json.dumps({"image": path, "error": str(exc)}) + "\n")
            status = 1
            continue
        record = analysis_record(path, analysis, decode_ms)
        if args.json:
            sys.stdout.write(json.dumps(record) + "\n")
        else:
            sys.stdout.write(json.dumps(record, indent=2) + "\n")
    return status


def pin_to_one_core() -> str:
    """Run on one CPU and one thread, so figures are per core."""
    import os

    import cv2

    cv2.setNumThreads(1)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "not pinned (no sched_setaffinity)"


def _median_ms(fn: Any, repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return round(times[len(times) // 2], 2)


def cmd_bench(args: argparse.Namespace) -> int:
    pinned = pin_to_one_core()
    import platform

    import cv2

    from detection.core import decode_image, encode_reference
    from detection.core.analyse import scene_change, scene_signature
    from detection.core.camera import camera_state, gray_thumbnail
    from detection.core.faces import detect_faces, encode_face
    from detection.core.objects import object_detector
    from detection.core.pose import head_pose
    from detection.tools.replay import DURATION, replay_cost, scenes

    photos = args.photos
    start = time.perf_counter()
    reference = encode_reference(decode_image((photos / "obama.jpg").read_bytes()))
    load_ms = (time.perf_counter() - start) * 1000
    object_detector()
    frame = scenes(photos)["still"]
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    data = jpeg.tobytes()
    face = detect_faces(frame)[0]
    half = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
    thumb = gray_thumbnail(frame)
    sig = scene_signature(thumb)
    repeat = args.repeat
    stages = {
        "jpeg_decode_640x480": _median_ms(lambda: decode_image(data), repeat * 4),
        "camera_checks": _median_ms(lambda: camera_state(frame), repeat * 4),
        "scene_change": _median_ms(lambda: scene_change(sig, sig), repeat * 4),
        "hog_640_upsample0": _median_ms(lambda: detect_faces(frame, upsample=0), repeat),
        "hog_640_upsample1": _median_ms(lambda: detect_faces(frame, upsample=1), max(3, repeat // 3)),
        "hog_320_upsample0": _median_ms(lambda: detect_faces(half, max_side=320, upsample=0), repeat),
        "encoding": _median_ms(lambda: encode_face(frame, face.box), repeat),
        "landmarks_pose": _median_ms(lambda: head_pose(frame, face.box), repeat),
        "objects_ssd": _median_ms(lambda: object_detector().detect(frame), repeat),
    }
    stream = replay_cost(photos, reference=reference, duration=args.duration)
    full = replay_cost(photos, reference=reference, duration=args.duration, full=True) if args.full else None
    result = {
        "pinned": pinned,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "model_load_and_first_reference_ms": round(load_ms, 1),
        "stages_ms": stages,
        "stream": {
            "frames": stream.frames,
            "seconds": args.duration,
            "interval_s": 2.0,
            "script": "detection/tools/replay.py EPISODES"
            if args.duration == DURATION
            else "EPISODES, truncated",
            "amortised_ms_per_frame": round(stream.wall_ms, 2),
            "amortised_cpu_ms_per_frame": round(stream.cpu_ms, 2),
            "frames_per_s_per_core": round(1000 / stream.wall_ms, 1),
            "streams_per_core_at_0.5_fps": round(1000 / stream.wall_ms / 0.5, 1),
            "checks_run": stream.checks_run,
            "every_check_every_frame_ms": None if full is None else round(full.wall_ms, 2),
        },
    }
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_make_evalset(args: argparse.Namespace) -> int:
    from detection.tools.evalset import make_evalset

    count = make_evalset(args.photos, Path(args.outdir))
    logger.info("wrote %d images and labels.csv to %s", count, args.outdir)
    return 0


def _table(report: dict[str, Any]) -> str:
    lines = ["| check | tp | fp | fn | precision | recall |", "|---|---|---|---|---|---|"]
    for name, row in report["checks"].items():
        lines.append(
            f"| {name} | {row['tp']} | {row['fp']} | {row['fn']} | {row['precision']} | {row['recall']} |"
        )
    lines += ["", "| faces truth->found | images |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["face_count_confusion"].items()]
    ident = report["identity"]
    lines += [
        "",
        f"identity: {ident['genuine_pairs']} genuine and {ident['impostor_pairs']} impostor pairs; "
        f"largest genuine distance {ident['genuine_distance_max']}, smallest impostor distance "
        f"{ident['impostor_distance_min']}; "
        f"{ident['faces_not_found_for_identity']} images without a found face",
        "",
        "| threshold | FAR | FRR |",
        "|---|---|---|",
    ]
    lines += [f"| {r['threshold']} | {r['far']} | {r['frr']} |" for r in ident["sweep"]]
    return "\n".join(lines) + "\n"


def cmd_evaluate(args: argparse.Namespace) -> int:
    pin_to_one_core()
    directory = Path(args.dir)
    if args.real:
        return _evaluate_real(directory, as_json=args.json, dim=args.dim)
    from detection.tools.evalset import evaluate

    if not (directory / "labels.csv").is_file():
        logger.error(
            "%s has no labels.csv (make one with: python -m detection make-evalset --photos PHOTOS %s)",
            directory,
            directory,
        )
        return 2
    report = evaluate(directory)
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        sys.stdout.write(_table(report))
    return 0


def _evaluate_real(directory: Path, *, as_json: bool, dim: float | None) -> int:
    from detection.tools.realset import dimmed_table, evaluate_dimmed, evaluate_real, table

    if not (directory / "labels.csv").is_file():
        logger.error("%s has no labels.csv (the real set is tests/data/real)", directory)
        return 2
    if dim is not None:
        report = evaluate_dimmed(directory, mean=dim)
        sys.stdout.write(json.dumps(report) + "\n" if as_json else dimmed_table(report))
        return 0
    report = evaluate_real(directory)
    sys.stdout.write(json.dumps(report) + "\n" if as_json else table(report))
    return 0


def cmd_build_realset(args: argparse.Namespace) -> int:
    from detection.tools.realset import build

    count = build(Path(args.dir), args.mirrors, args.photos)
    logger.info("wrote %d photos to %s", count, args.dir)
    return 0


def _folder(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is not a folder")
    return path


def _add_photos(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--photos",
        required=True,
        type=_folder,
        metavar="DIR",
        help="the photos to compose the pictures from (the repository's are in tests/data/photos)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detection", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    analyse = sub.add_parser("analyse", help="run every check on each image")
    analyse.add_argument("images", nargs="+", metavar="IMAGE")
    analyse.add_argument("--reference", action="append", metavar="IMG", help="reference photo (repeatable)")
    analyse.add_argument("--threshold", type=float, help="identity threshold (default: CheckConfig's)")
    analyse.add_argument(
        "--dim",
        type=float,
        metavar="MEAN",
        help="frame each image 640x480 and scale its light to this mean grey (0-255): a dim room",
    )
    analyse.add_argument(
        "--bars", action="store_true", help="frame each image 640x480 and shrink it inside black bars"
    )
    analyse.add_argument(
        "--no-lift", action="store_true", help="do not brighten a dark picture for the face checks"
    )
    analyse.add_argument("--json", action="store_true", help="one compact JSON object per line")
    analyse.set_defaults(func=cmd_analyse)

    bench = sub.add_parser(
        "bench", help="per-stage cost and the amortised cost of a replayed stream, on one core"
    )
    _add_photos(bench)
    bench.add_argument("--repeat", type=int, default=15, help="timed runs per stage (median reported)")
    bench.add_argument(
        "--duration", type=float, default=600.0, help="seconds of stream to replay (2 s per frame)"
    )
    bench.add_argument("--full", action="store_true", help="also replay with every check on every frame")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=cmd_bench)

    evaluate = sub.add_parser(
        "evaluate", help="precision/recall, face-count confusion, identity FAR/FRR sweep"
    )
    evaluate.add_argument(
        "dir",
        metavar="DIR",
        help="images + labels.csv + references/ (see make-evalset); with --real, tests/data/real",
    )
    evaluate.add_argument(
        "--real", action="store_true", help="DIR is a hand-labelled set of real photos (tests/data/real)"
    )
    evaluate.add_argument(
        "--dim",
        type=float,
        metavar="MEAN",
        help="with --real: the camera and face checks on its faces dimmed to this mean grey level",
    )
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    realset = sub.add_parser(
        "build-realset", help="copy and shrink the real set's photos from their source repositories"
    )
    realset.add_argument("dir", metavar="DIR", help="the folder holding labels.csv (tests/data/real)")
    realset.add_argument(
        "--mirrors",
        required=True,
        type=_folder,
        metavar="DIR",
        help="clones of the source repositories, as DIR/owner+name or DIR/owner/name",
    )
    realset.add_argument(
        "--photos",
        required=True,
        type=_folder,
        metavar="DIR",
        help="where rows without a commit are read from, by file name (tests/data/photos)",
    )
    realset.set_defaults(func=cmd_build_realset)

    make = sub.add_parser("make-evalset", help="generate the evaluation set from the test photos")
    make.add_argument("outdir", metavar="OUTDIR")
    _add_photos(make)
    make.set_defaults(func=cmd_make_evalset)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    return int(args.func(args))
