"""`patchline capture`: collect good images for training from a camera or a folder (argparse only;
the work is in patchline.app.capture)."""

from __future__ import annotations

import argparse
import sys

from patchline.cli.options import add_broker, add_quiet, broker_from
from patchline.cli.types import folder_to_use, integer, listing, name, number


def _capture_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="an rtsp:// camera URL or a folder of images (name order, each once)")
    p.add_argument("--out", type=folder_to_use, required=True,
                   help="folder to fill with good images: what `patchline train --images` and `tune --images` read "
                        "(images already there count towards --count and --quota-mb)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--every", type=integer(1, 10**9), help="take every Nth frame (default: every frame)")
    how.add_argument("--interval", type=number(0, 10**7, low_open=True), metavar="SECONDS",
                     help="take a frame every this many seconds (a camera's grab time; a file's modification time)")
    how.add_argument("--trigger", action="store_true",
                     help="take the first frame after each MQTT message on patchline/<camera>/capture (needs --mqtt "
                          "and --camera; the reply on …/capture/reply says what was kept or why not)")
    p.add_argument("--count", type=integer(1, 10**9), help="stop when the folder holds this many images")
    p.add_argument("--quota-mb", type=number(0, 10**9, low_open=True), default=1000.0,
                   help="the most megabytes of images the folder may hold (default 1000)")
    p.add_argument("--duration", type=number(0, 10**9, low_open=True), metavar="SECONDS", help="stop after this long")
    p.add_argument("--camera", type=name, help="camera name: the start of each file name and the trigger topic")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="file format (default png, lossless)")
    g = p.add_argument_group("quality checks (each skipped frame is counted and its reason logged)")
    g.add_argument("--min-change", type=number(0, 255), default=2.0,
                   help="near-duplicate below this mean gray-level difference of 32×32 thumbnails from each of the "
                        "last 64 kept frames (default 2; 0: keep duplicates)")
    g.add_argument("--blur-ratio", type=number(0, 0.999), default=0.4,
                   help="blurred below this fraction of the camera's usual sharpness (median of the last 50 "
                        "candidates; default 0.4; 0: off)")
    g.add_argument("--min-sharpness", type=number(0, 10**9), default=0.0,
                   help="blurred below this variance of the Laplacian at 512 px, whatever the usual (default 0: off)")
    g.add_argument("--exposure", type=listing(number(0, 255), "gray levels"), default=[25.0, 230.0], metavar="LOW,HIGH",
                   help="under- / over-exposed when the mean gray level is outside LOW..HIGH (default 25,230)")
    g.add_argument("--max-clipped", type=number(0, 1, low_open=True), default=0.5,
                   help="under- / over-exposed when more than this fraction of pixels is black (<=5) or white "
                        "(>=250) (default 0.5)")
    add_broker(p, "broker URL mqtt://host:port for --trigger")
    add_quiet(p, "warnings only in the log")


def cmd_capture(args) -> int:
    import logging

    from patchline.app.capture import run_capture
    from patchline.capture.quality import QualityRules
    from patchline.capture.settings import CaptureSettings
    from patchline.errors import ConfigError

    if len(args.exposure) != 2:
        raise ConfigError(f"--exposure takes LOW,HIGH: two gray levels, got {len(args.exposure)}.")
    rules = QualityRules(args.min_change, args.blur_ratio, args.min_sharpness, tuple(args.exposure), args.max_clipped)
    settings = CaptureSettings(args.source, args.out, args.every, args.interval, args.trigger, args.count,
                               args.quota_mb, args.duration, args.camera, broker_from(args) if args.mqtt else None,
                               args.format, rules).check()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return run_capture(settings)


def add_capture_command(sub) -> None:
    """capture."""
    p = sub.add_parser("capture", help="collect good images for training from a camera or a folder, skipping "
                                       "near-duplicates, blurred and badly exposed frames")
    _capture_arguments(p)
    p.set_defaults(func=cmd_capture)
