"""``python -m detection``: analyse images from the command line.

Output is one JSON object per line on stdout; logs go to stderr.
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
        "head_pose": None if pose is None else {"yaw": round(pose["yaw"], 1), "pitch": round(pose["pitch"], 1)},
        "looking_away": data["looking_away"],
        "objects": data["objects"],
        "camera_blocked": data["camera"]["blocked"],
        "camera": data["camera"],
        "checks_run": data["checks_run"],
        "timings_ms": {"decode": round(decode_ms, 2), **data["timings_ms"]},
    }


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
            analysis = analyse_frame(image, references=references, config=config)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m detection", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    analyse = sub.add_parser("analyse", help="run every check on each image")
    analyse.add_argument("images", nargs="+", metavar="IMAGE")
    analyse.add_argument("--reference", action="append", metavar="IMG", help="reference photo (repeatable)")
    analyse.add_argument("--threshold", type=float, help="identity threshold (default: CheckConfig's)")
    analyse.add_argument("--json", action="store_true", help="one compact JSON object per line")
    analyse.set_defaults(func=cmd_analyse)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    return int(args.func(args))
