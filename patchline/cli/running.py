"""The commands of a running line: run, check, alarms, demo (argparse only; the work is in
patchline.app and patchline.pipeline.check)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from patchline.cli.plc import add_plc_arguments, plc_options
from patchline.cli.options import add_allow_plugin, add_banks, add_broker, add_line, add_quiet, broker_from
from patchline.cli.types import folder_to_use, integer, name, number, text_file


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """The `patchline run` arguments."""
    p.add_argument("pipeline", type=text_file, help="pipeline file (MindX SDK pipeline JSON), e.g. pipeline/folder_layer2.pipeline")
    p.add_argument("--source", action="append",
                   help="a folder of images (name order, each once) or an rtsp:// URL; replaces the file's source "
                        "(repeat it for a stream that merges several sources: one per source, in the file's order)")
    p.add_argument("--camera", type=name, help="camera name in the MQTT topics (default: the stream's name)")
    add_line(p, "product line (bank name); overrides the post-process's line prop")
    add_banks(p, overrides_file=True)
    add_allow_plugin(p)
    p.add_argument("--max-frames", type=integer(1), help="stop after this many results")
    p.add_argument("--loop", action="store_true",
                   help="go through a folder source again and again until stopped (a demonstration screen, a soak)")
    p.add_argument("--fps", type=number(0, 100_000, low_open=True), help="read a folder source at this many frames per second, as a camera "
                                             "delivers them (default: each file as soon as the stream takes it)")
    p.add_argument("--spool", type=folder_to_use, help="alarm spool folder (default $PATCHLINE_SPOOL or ./patchline-spool)")
    add_broker(p, "broker URL mqtt://host:port (mqtts:// for TLS); without it verdicts are printed")
    p.add_argument("--drift-window", type=integer(5, 10_000_000), help="frames per camera whose scores and alarm rate are compared with the "
                                                     "bank's calibration to flag drift (default 200)")
    p.add_argument("--threads", type=integer(1, 1024), help="onnxruntime intra-op threads per model call (default 1: each model runs frames side by side in as many threads as the cores shared among the file's models allow)")
    p.add_argument("--snapshots", metavar="DIR", type=folder_to_use, help="keep a JPEG of every defect frame here (heat map, region box, "
                                                       "score); the alarm names it")
    p.add_argument("--snapshot-quota-mb", type=number(0, 10_000_000, low_open=True), default=500.0,
                   help="the most the snapshot folder may hold; the oldest go first (default 500)")
    p.add_argument("--publish-snapshots", action="store_true",
                   help="also publish each snapshot on patchline/<line>/<camera>/snapshot (QoS 1, not retained)")
    p.add_argument("--host-api", action="store_true",
                   help="drive the stream through the MindX host API (StreamManagerApi: the SDK's where installed, so "
                        "an Ascend NPU decodes and runs the models) and search, judge and publish on the host; "
                        "one --source FOLDER (docs/ascend.md)")
    add_plc_arguments(p)
    add_quiet(p, "no summary")


def cmd_run(args) -> int:
    import logging

    from patchline.app.run import run_pipeline
    from patchline.app.run_settings import MqttSinkOptions, RunSettings, SnapshotSinkOptions

    mqtt = MqttSinkOptions(broker_from(args), args.spool) if args.mqtt else None
    snapshots = SnapshotSinkOptions(args.snapshots, args.snapshot_quota_mb) if args.snapshots else None
    settings = RunSettings(args.pipeline, tuple(args.source or ()), args.camera, args.line, args.banks,
                           tuple(args.allow_plugin), args.max_frames, args.loop, args.fps, ort_threads=args.threads,
                           drift_window=args.drift_window, mqtt=mqtt, snapshots=snapshots, plc=plc_options(args),
                           publish_snapshots=args.publish_snapshots, echo=not args.mqtt, quiet=args.quiet,
                           host_api=args.host_api).check()
    logging.basicConfig(level=logging.INFO if not args.quiet else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which SIMD build it found is noise here
    if settings.host_api:
        from patchline.app.host_run import run_host_api

        return run_host_api(settings)
    return run_pipeline(settings)


def cmd_check(args) -> int:
    from patchline.errors import ConfigErrors
    from patchline.pipeline.check import check_pipeline, report

    graph, problems = report(*check_pipeline(args.pipeline, args.line, args.banks, args.allow_plugin))
    print(graph)
    if problems:
        raise ConfigErrors(problems)
    print(f"{args.pipeline}: OK — every element builds, models and bank fit.")
    return 0


def cmd_alarms(args) -> int:
    import logging

    from patchline.app.alarms import run_alarms

    # stderr says "listening for alarms on TOPIC at HOST:PORT" once subscribed (what a script waits for)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    return run_alarms(broker_from(args), args.line, args.json, count=args.count, timeout=args.timeout)


def cmd_demo(args) -> int:
    from patchline.app.demo import run_demo

    return run_demo(Path(args.out), quick=args.quick)


def add_running_commands(sub) -> None:
    """run, check, alarms, demo."""
    p = sub.add_parser("run", help="run a pipeline file on a folder or camera; publish verdicts over MQTT")
    _run_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="check a pipeline file without running it: props, models, the line's bank; "
                                     "prints the stream graph with tensor shapes (exit 0 / 2)")
    p.add_argument("pipeline", type=text_file, help="pipeline file (MindX SDK pipeline JSON)")
    add_line(p, "product line (bank name); overrides the post-process's line prop")
    add_banks(p, overrides_file=True)
    add_allow_plugin(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("alarms", help="print defect alarms as they happen (one line each, or JSON lines)")
    add_broker(p, required=True)
    add_line(p, "only this product line")
    p.add_argument("--json", action="store_true", help="print each alarm's JSON payload on one line")
    p.add_argument("--count", type=integer(1), help="stop after this many alarms")
    p.add_argument("--timeout", type=number(0, 10**9, low_open=True), help="stop after this many seconds")
    p.set_defaults(func=cmd_alarms)

    p = sub.add_parser("demo", help="the whole loop on bundled real data (ELPV solar cells, EfficientNet-Lite0)")
    p.add_argument("--out", type=folder_to_use, default="demo-output")
    p.add_argument("--quick", action="store_true", help="fewer images, for a fast look")
    p.set_defaults(func=cmd_demo)
