"""The `patchline` command: one sub-command per job (docs/design.md).

Heavy imports (MindSpore, faiss) happen inside the commands, so `--help` and input errors are
instant and the runtime commands never load MindSpore. Any PatchlineError ends the program with
one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from patchline import __version__
from patchline.errors import ConfigError, PatchlineError
from patchline.cli_banks import add_bank_commands
from patchline.cli_dashboard import add_dashboard_command
from patchline.cli_types import (OneLineParser, existing_folder, file_to_write, folder_to_use, integer, listing, name,
                                 number, regular_file, text_file)
from patchline.cli_tune import add_tune_command
from patchline.paths import banks_root, models_dir, project_file


def _layers(text: str) -> tuple[str, ...]:
    from patchline.settings import check_layers

    try:
        return check_layers(tuple(p for p in text.replace("+", ",").split(",") if p))
    except ConfigError:
        raise argparse.ArgumentTypeError(f"'{text}' is not layer2, layer3 or layer2,layer3") from None


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    """The seed's per-line flags; each overrides the YAML / default value when given."""
    g = parser.add_argument_group("line settings (override the settings file)")
    g.add_argument("--backbone", help="wide_resnet101_2 (default), wide_resnet50_2, efficientnet_lite0, efficientnet_lite1, "
                                      "efficientnet_lite2, mobilenet_v2")
    g.add_argument("--weights", type=regular_file, help="backbone weights: MindSpore .ckpt or torchvision .pth")
    g.add_argument("--random-weights", action="store_true", help="allow random backbone weights (speed tests only)")
    g.add_argument("--layer", dest="layers", type=_layers, help="layer2, layer3 or layer2,layer3")
    g.add_argument("--resize", type=integer(1, 8192), help="shorter side after resizing, pixels (both sides with --resize-type stretch)")
    g.add_argument("--resize-type", choices=("short_side", "stretch"),
                   help="short_side (default: aspect kept, MindX Resizer_KeepAspectRatio_Short) or stretch "
                        "(resize × resize, MindX Resizer_Stretch)")
    g.add_argument("--imagesize", type=integer(1, 8192), help="center-crop size, pixels")
    g.add_argument("--patchsize", type=integer(1, 31), help="local neighbourhood of each patch (default 3)")
    g.add_argument("--coreset", dest="coreset_ratio", type=number(0, 1, low_open=True), help="coreset ratio, e.g. 0.01")
    g.add_argument("--target-dim", type=integer(1, 100_000), help="reduce embeddings to this many channels")
    g.add_argument("--aggregation", help="auto (default: chosen from normal images), max, mean, var, topk<N>")
    g.add_argument("--false-alarm-rate", type=number(0, 1, low_open=True), help="target false-alarm rate of the threshold (default 0.01)")
    g.add_argument("--calibration", choices=("leave_one_out", "crossfit", "holdout"),
                   help="leave_one_out (default: every image in the bank; each scored for calibration against it "
                        "without its own patches), crossfit (each scored against a bank of the other --folds) or "
                        "holdout (20 %% of the images calibrate, the rest make the bank)")
    g.add_argument("--folds", type=integer(2, 1000), help="crossfit folds (default 5)")
    g.add_argument("--batch-size", type=integer(1, 4096), help="images per feature-extraction batch")
    g.add_argument("--search", choices=("auto", "exact", "hnsw"),
                   help="bank search: exact, hnsw (graph index; image scores still exact for max / topk), "
                        "auto (default: hnsw for banks of 200,000 patches × dims or more, e.g. 1,316 × 152)")
    g.add_argument("--ef-search", type=integer(1, 100_000), help="graph candidates visited per patch (hnsw, default 8)")
    g.add_argument("--seed", type=integer(0, 2**32 - 1), help="random seed, 0 to 2^32-1")
    g.add_argument("--symmetries", type=listing(_symmetry, "symmetries"),
                   help="flips / turns of a good image that are good too, e.g. hflip,vflip,rot180: the bank chooses "
                        "its patches (as many as without) among the images and these copies")


def _symmetry(text: str) -> str:
    from patchline.core.symmetry import SYMMETRIES

    if text not in SYMMETRIES:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(SYMMETRIES)}")
    return text


def _overrides(args) -> dict:
    names = ("backbone", "layers", "resize_type", "resize", "imagesize", "patchsize", "coreset_ratio", "target_dim",
             "aggregation", "false_alarm_rate", "batch_size", "seed", "search", "ef_search", "calibration", "folds",
             "symmetries")
    out = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if args.weights is not None:
        out["weights"] = str(args.weights)
    return out


def _check_folder(path: Path | None, what: str) -> None:
    if path is not None and not Path(path).is_dir():
        raise PatchlineError(f"{what} {path} does not exist or is not a folder.")


def cmd_train(args) -> int:
    from patchline.data.datasets import MvtecCategory, good_images
    from patchline.settings import LineSettings, load_category_table, validate

    if args.add is not None:
        from patchline.cli_banks import grow

        return grow(args, good_images(args.add), f"added good images from {args.add}")
    if (args.category is None) == (args.images is None):
        raise PatchlineError("give either a CATEGORY with --dataset, or --line NAME with --images FOLDER.")
    if args.category is not None:
        if args.dataset is None:
            raise PatchlineError(f"training category '{args.category}' needs --dataset (the MVTec AD root folder).")
        _check_folder(args.dataset, "dataset folder")
        base = load_category_table(args.config or project_file("configs/mvtec.yaml")).get(args.category)
        category = MvtecCategory(args.dataset, args.category).check()
        items = category.train_images()
        settings = base.replace(**_overrides(args), line=args.line or args.category)
    else:
        if not args.line:
            raise PatchlineError("training from --images needs --line NAME (the product line's bank name).")
        items = good_images(args.images)
        base = (load_category_table(args.config).get(args.line) if args.config is not None  # e.g. `patchline tune`'s
                else validate(LineSettings(line=args.line)))
        settings = base.replace(**_overrides(args))
    return _train_one(settings, items, args)


def _train_one(settings, items, args, extractor_cache: dict | None = None) -> int:
    from patchline.app.jobs import train_line, trained_summary

    result = train_line(settings, items, args.banks, args.random_weights, not args.quiet, extractor_cache)
    print(trained_summary(result))
    return 0


def cmd_train_all(args) -> int:
    from patchline.data.datasets import MvtecCategory, mvtec_categories
    from patchline.settings import load_category_table

    table = load_category_table(args.config)
    present = mvtec_categories(args.dataset)
    names = args.category or [c for c in present if c in table.categories]
    if not names:
        raise PatchlineError(f"no category of {args.config} is present in {args.dataset}.")
    cache: dict = {}
    for name in names:
        settings = table.get(name).replace(**_overrides(args))
        items = MvtecCategory(args.dataset, name).check().train_images()
        _train_one(settings, items, args, cache)
    return 0


def cmd_evaluate(args) -> int:
    from patchline.app.jobs import evaluate_lines
    from patchline.data.datasets import mvtec_categories
    from patchline.evaluation.evaluate import summary_table
    from patchline.evaluation.seed_layout import load_seed_results, seed_layout_table, write_seed_layout

    seed = load_seed_results(args.config)  # a bad settings file is refused before any scoring
    names = args.category or mvtec_categories(args.dataset)
    rows, csv_path, md_path = evaluate_lines(args.dataset, names, args.banks, args.out, args.line, args.weights,
                                             args.random_weights, args.overlays, not args.quiet)
    seed_path = write_seed_layout(rows, seed, args.out)
    print(seed_layout_table(rows, seed) if args.seed_layout else summary_table(rows))
    print(f"wrote {csv_path}, {md_path}, {seed_path} and overlays under {args.out}/<category>/overlays")
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0


def cmd_convert_weights(args) -> int:
    from patchline.models.convert import convert_weights

    summary = convert_weights(args.source, args.output, args.backbone)
    print(f"converted {summary.get('tensors', '?')} tensors of {args.backbone} into {args.output}")
    return 0


def cmd_export(args) -> int:
    from patchline.app.jobs import export_backbone

    paths = export_backbone(args.backbone, args.imagesize, args.out, args.weights, args.random_weights)
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    return 0


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """The `patchline run` arguments."""
    from patchline.mqtt.broker import add_broker_arguments

    p.add_argument("pipeline", type=text_file, help="pipeline file (MindX SDK pipeline JSON), e.g. pipeline/folder_layer2.pipeline")
    p.add_argument("--source", action="append",
                   help="a folder of images (name order, each once) or an rtsp:// URL; replaces the file's source "
                        "(repeat it for a stream that merges several sources: one per source, in the file's order)")
    p.add_argument("--mqtt", help="broker URL mqtt://host:port (mqtts:// for TLS); without it verdicts are printed")
    p.add_argument("--camera", type=name, help="camera name in the MQTT topics (default: the stream's name)")
    p.add_argument("--line", type=name, help="product line (bank name); overrides the post-process's line prop")
    p.add_argument("--banks", type=folder_to_use, help="banks root; overrides the post-process's banks prop "
                                              "(default $PATCHLINE_BANKS or ./faiss-index-precision)")
    p.add_argument("--allow-plugin", action="append", default=[], metavar="MODULE",
                   help="let the file load this post-process module from outside patchline.plugins (repeatable)")
    p.add_argument("--max-frames", type=integer(1), help="stop after this many results")
    p.add_argument("--loop", action="store_true",
                   help="go through a folder source again and again until stopped (a demonstration screen, a soak)")
    p.add_argument("--fps", type=number(0, 100_000, low_open=True), help="read a folder source at this many frames per second, as a camera "
                                             "delivers them (default: each file as soon as the stream takes it)")
    p.add_argument("--spool", type=folder_to_use, help="alarm spool folder (default $PATCHLINE_SPOOL or ./patchline-spool)")
    add_broker_arguments(p)
    p.add_argument("--drift-window", type=integer(5, 10_000_000), help="frames per camera whose scores and alarm rate are compared with the "
                                                     "bank's calibration to flag drift (default 200)")
    p.add_argument("--threads", type=integer(1, 1024), help="onnxruntime intra-op threads per model call (default 1: each model runs frames side by side in as many threads as the cores shared among the file's models allow)")
    p.add_argument("--snapshots", metavar="DIR", type=folder_to_use, help="keep a JPEG of every defect frame here (heat map, region box, "
                                                       "score); the alarm names it")
    p.add_argument("--snapshot-quota-mb", type=number(0, 10_000_000, low_open=True), default=500.0,
                   help="the most the snapshot folder may hold; the oldest go first (default 500)")
    p.add_argument("--publish-snapshots", action="store_true",
                   help="also publish each snapshot on patchline/<line>/<camera>/snapshot (QoS 1, not retained)")
    p.add_argument("--quiet", action="store_true", help="no summary")


def cmd_run(args) -> int:
    import logging

    from patchline.app.run import run_pipeline
    from patchline.app.run_settings import MqttSinkOptions, RunSettings, SnapshotSinkOptions
    from patchline.mqtt.broker import settings_from_args

    mqtt = MqttSinkOptions(settings_from_args(args), args.spool) if args.mqtt else None
    snapshots = SnapshotSinkOptions(args.snapshots, args.snapshot_quota_mb) if args.snapshots else None
    settings = RunSettings(args.pipeline, tuple(args.source or ()), args.camera, args.line, args.banks,
                           tuple(args.allow_plugin), args.max_frames, args.loop, args.fps, ort_threads=args.threads,
                           drift_window=args.drift_window, mqtt=mqtt, snapshots=snapshots,
                           publish_snapshots=args.publish_snapshots, echo=not args.mqtt,
                           quiet=args.quiet).check()
    logging.basicConfig(level=logging.INFO if not args.quiet else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which SIMD build it found is noise here
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
    from patchline.app.alarms import run_alarms

    return run_alarms(args.mqtt, args.line, args.json, username=args.mqtt_username, password=args.mqtt_password,
                      tls_ca=args.mqtt_ca, tls_cert=args.mqtt_cert, tls_key=args.mqtt_key,
                      tls_insecure=args.mqtt_insecure, count=args.count, timeout=args.timeout)


def cmd_demo(args) -> int:
    from patchline.app.demo import run_demo

    return run_demo(Path(args.out), quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every sub-command."""
    from patchline.models.convert import DOWNLOAD_HELP

    parser = OneLineParser(prog="patchline", description="PatchCore defect detection for production lines.")
    parser.add_argument("--version", action="version", version=f"patchline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p):
        p.add_argument("--banks", type=folder_to_use, default=banks_root(),
                       help="banks root (default ./faiss-index-precision)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("train", help="build a line's bank from good images (one MVTec category or a folder)")
    p.add_argument("category", nargs="?", type=name, help="MVTec AD category (with --dataset)")
    p.add_argument("--dataset", type=existing_folder, help="MVTec AD root folder")
    p.add_argument("--config", type=text_file, help="settings file: per category (default configs/mvtec.yaml), or with "
                                               "--line and --images the line's own entry (e.g. written by tune)")
    p.add_argument("--line", type=name, help="product line name (bank name); defaults to the category")
    p.add_argument("--images", type=existing_folder, help="folder of good images of the line")
    p.add_argument("--add", type=existing_folder, metavar="FOLDER",
                   help="grow the live bank of --line with these new good images (no re-extraction of the old ones; "
                        "threshold kept) and make it live")
    common(p)
    _settings_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-all", help="build a bank for every category of an MVTec-layout dataset")
    p.add_argument("--dataset", type=existing_folder, required=True)
    p.add_argument("--config", type=text_file, default=project_file("configs/mvtec.yaml"))
    p.add_argument("--category", action="append", type=name, help="only these categories (repeatable)")
    common(p)
    _settings_flags(p)
    p.set_defaults(func=cmd_train_all, line=None)

    p = sub.add_parser("evaluate", help="score MVTec-layout test sets against their banks; CSV + Markdown + overlays")
    p.add_argument("--dataset", type=existing_folder, required=True)
    p.add_argument("--category", action="append", type=name, help="only these categories (repeatable)")
    p.add_argument("--line", type=name, help="bank name when it differs from the category")
    p.add_argument("--weights", type=regular_file, help="backbone weights the banks were built with")
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--out", type=folder_to_use, default=Path("results"), help="report folder (default ./results)")
    p.add_argument("--overlays", type=integer(0, 10_000), default=6, help="heat-map overlays per category")
    p.add_argument("--config", type=text_file, default=project_file("configs/mvtec.yaml"),
                   help="settings file whose seed_image_auroc rows are printed beside patchline's (default configs/mvtec.yaml)")
    p.add_argument("--seed-layout", action="store_true",
                   help="print the table in the reference project's layout (instance_auroc_max … _best), "
                        "the seed's row above each of patchline's")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("convert-weights", help="torchvision .pth → MindSpore .ckpt (the seed's pthtockpt)",
                       description="Convert PyTorch weights to a MindSpore checkpoint, strictly.",
                       epilog=DOWNLOAD_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=regular_file, help=".pth file")
    p.add_argument("output", type=file_to_write, help=".ckpt file to write")
    p.add_argument("--backbone", required=True)
    p.set_defaults(func=cmd_convert_weights)

    p = sub.add_parser("export", help="export the split layer2 / layer3 models (ONNX + MINDIR)")
    p.add_argument("--backbone", required=True)
    p.add_argument("--imagesize", type=integer(32, 8192), required=True)
    p.add_argument("--weights", type=regular_file)
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--out", type=folder_to_use, default=models_dir(), help="model folder (default $PATCHLINE_MODELS or ./models)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("run", help="run a pipeline file on a folder or camera; publish verdicts over MQTT")
    _run_arguments(p)
    p.set_defaults(func=cmd_run)

    add_bank_commands(sub, common)
    add_tune_command(sub)

    p = sub.add_parser("check", help="check a pipeline file without running it: props, models, the line's bank; "
                                     "prints the stream graph with tensor shapes (exit 0 / 2)")
    p.add_argument("pipeline", type=text_file, help="pipeline file (MindX SDK pipeline JSON)")
    p.add_argument("--line", type=name, help="product line (bank name); overrides the post-process's line prop")
    p.add_argument("--banks", type=folder_to_use, help="banks root; overrides the post-process's banks prop")
    p.add_argument("--allow-plugin", action="append", default=[], metavar="MODULE",
                   help="a post-process module outside patchline.plugins the file may load")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("alarms", help="print defect alarms as they happen (one line each, or JSON lines)")
    p.add_argument("--mqtt", required=True, help="broker URL mqtt://host:port (mqtts:// for TLS)")
    p.add_argument("--line", type=name, help="only this product line")
    p.add_argument("--json", action="store_true", help="print each alarm's JSON payload on one line")
    p.add_argument("--count", type=integer(1), help="stop after this many alarms")
    p.add_argument("--timeout", type=number(0, 10**9, low_open=True), help="stop after this many seconds")
    from patchline.mqtt.broker import add_broker_arguments

    add_broker_arguments(p)
    p.set_defaults(func=cmd_alarms)

    add_dashboard_command(sub)

    p = sub.add_parser("demo", help="the whole loop on bundled real data (ELPV solar cells, EfficientNet-Lite0)")
    p.add_argument("--out", type=folder_to_use, default="demo-output")
    p.add_argument("--quick", action="store_true", help="fewer images, for a fast look")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, turn user errors into one sentence and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for name in ("dataset", "images", "add"):
            if getattr(args, name, None) is not None:
                _check_folder(getattr(args, name), "folder" if name == "images" else "dataset folder")
        return args.func(args)
    except PatchlineError as exc:
        print(f"patchline {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a vanished folder: the system's own words, in one sentence
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"patchline {args.command}: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"patchline {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
