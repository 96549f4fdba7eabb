"""The commands that build and judge banks and models: train, train-all, evaluate, convert-weights,
export (argparse only; the work is in patchline.app)."""

from __future__ import annotations

import argparse
from pathlib import Path

from patchline.cli.options import add_banks, add_line, add_quiet, add_weights
from patchline.cli.types import existing_folder, file_to_write, folder_to_use, integer, listing, name, number, regular_file, text_file
from patchline.errors import ConfigError
from patchline.paths import models_dir, project_file


def _layers(text: str) -> tuple[str, ...]:
    from patchline.settings import check_layers

    try:
        return check_layers(tuple(p for p in text.replace("+", ",").split(",") if p))
    except ConfigError:
        raise argparse.ArgumentTypeError(f"'{text}' is not layer2, layer3 or layer2,layer3") from None


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    """The reference project's per-line flags; each overrides the YAML / default value when given."""
    g = parser.add_argument_group("line settings (override the settings file)")
    g.add_argument("--backbone", help="wide_resnet101_2 (default), wide_resnet50_2, efficientnet_lite0, efficientnet_lite1, "
                                      "efficientnet_lite2, mobilenet_v2")
    add_weights(g, random="allow random backbone weights (speed tests only)")
    g.add_argument("--layer", dest="layers", type=_layers, help="layer2, layer3 or layer2,layer3")
    g.add_argument("--resize", type=integer(1, 8192), help="shorter side after resizing, pixels (both sides with --resize-type stretch)")
    g.add_argument("--resize-type", choices=("short_side", "stretch"),
                   help="short_side (default: aspect kept, MindX Resizer_KeepAspectRatio_Short) or stretch "
                        "(resize × resize, MindX Resizer_Stretch)")
    g.add_argument("--imagesize", type=integer(1, 8192), help="center-crop size, pixels")
    g.add_argument("--patchsize", type=integer(1, 31), help="local neighbourhood of each patch (default 3)")
    g.add_argument("--coreset", dest="coreset_ratio", type=number(0, 1, low_open=True), help="coreset ratio, e.g. 0.01")
    g.add_argument("--target-dim", type=integer(1, 100_000), help="reduce embeddings to this many channels")
    g.add_argument("--aggregation", help="auto (default: chosen from normal images), max, mean, var, topk<N>, two-sided")
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


def cmd_train(args) -> int:
    from patchline.app.resolve import training_set

    if args.add is not None:
        from patchline.cli.banks import grow
        from patchline.data.datasets import good_images

        return grow(args, good_images(args.add), f"added good images from {args.add}")
    settings, items = training_set(args.category, args.dataset, args.config, args.line, args.images, _overrides(args))
    return _train_one(settings, items, args)


def _train_one(settings, items, args, extractor_cache: dict | None = None) -> int:
    from patchline.app.jobs import train_line, trained_summary

    result = train_line(settings, items, args.banks, args.random_weights, not args.quiet, extractor_cache)
    print(trained_summary(result))
    return 0


def cmd_train_all(args) -> int:
    from patchline.app.resolve import dataset_lines

    cache: dict = {}
    for settings, items in dataset_lines(args.dataset, args.config, args.category, _overrides(args)):
        _train_one(settings, items, args, cache)
    return 0


def cmd_evaluate(args) -> int:
    from patchline.app.jobs import Weights, evaluate_lines
    from patchline.app.resolve import evaluation_categories
    from patchline.evaluation.evaluate import summary_table
    from patchline.evaluation.reference_layout import (load_reference_results, reference_layout_table,
                                                       write_reference_layout)

    reference = load_reference_results(args.config)  # a bad settings file is refused before any scoring
    names = evaluation_categories(args.dataset, args.category)
    rows, csv_path, md_path = evaluate_lines(args.dataset, names, args.banks, args.out, args.line,
                                             Weights(args.weights, args.random_weights), args.overlays, not args.quiet)
    layout_path = write_reference_layout(rows, reference, args.out)
    print(reference_layout_table(rows, reference) if args.reference_layout else summary_table(rows))
    print(f"wrote {csv_path}, {md_path}, {layout_path} and overlays under {args.out}/<category>/overlays")
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


def add_training_commands(sub) -> None:
    """train, train-all, evaluate, convert-weights, export."""
    from patchline.models.convert import DOWNLOAD_HELP

    p = sub.add_parser("train", help="build a line's bank from good images (one MVTec category or a folder)")
    p.add_argument("category", nargs="?", type=name, help="MVTec AD category (with --dataset)")
    p.add_argument("--dataset", type=existing_folder, help="MVTec AD root folder")
    p.add_argument("--config", type=text_file, help="settings file: per category (default configs/mvtec.yaml), or with "
                                               "--line and --images the line's own entry (e.g. written by tune)")
    add_line(p, "product line name (bank name); defaults to the category")
    p.add_argument("--images", type=existing_folder, help="folder of good images of the line")
    p.add_argument("--add", type=existing_folder, metavar="FOLDER",
                   help="grow the live bank of --line with these new good images (no re-extraction of the old ones; "
                        "threshold kept) and make it live")
    add_banks(p)
    add_quiet(p)
    _settings_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-all", help="build a bank for every category of an MVTec-layout dataset")
    p.add_argument("--dataset", type=existing_folder, required=True)
    p.add_argument("--config", type=text_file, default=project_file("configs/mvtec.yaml"))
    p.add_argument("--category", action="append", type=name, help="only these categories (repeatable)")
    add_banks(p)
    add_quiet(p)
    _settings_flags(p)
    p.set_defaults(func=cmd_train_all, line=None)

    p = sub.add_parser("evaluate", help="score MVTec-layout test sets against their banks; CSV + Markdown + overlays")
    p.add_argument("--dataset", type=existing_folder, required=True)
    p.add_argument("--category", action="append", type=name, help="only these categories (repeatable)")
    add_line(p, "bank name when it differs from the category")
    add_weights(p, "backbone weights the banks were built with", random="allow random backbone weights (speed tests only)")
    p.add_argument("--out", type=folder_to_use, default=Path("results"), help="report folder (default ./results)")
    p.add_argument("--overlays", type=integer(0, 10_000), default=6, help="heat-map overlays per category")
    p.add_argument("--config", type=text_file, default=project_file("configs/mvtec.yaml"),
                   help="settings file whose reference_image_auroc rows (the reference project's figures) are "
                        "printed beside patchline's (default configs/mvtec.yaml)")
    p.add_argument("--reference-layout", "--seed-layout", dest="reference_layout", action="store_true",
                   help="print the table in the reference project's layout (instance_auroc_max … _best), "
                        "its row above each of patchline's (--seed-layout: the same flag's old name)")
    add_banks(p)
    add_quiet(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("convert-weights", help="torchvision .pth → MindSpore .ckpt (the reference project's pthtockpt)",
                       description="Convert PyTorch weights to a MindSpore checkpoint, strictly.",
                       epilog=DOWNLOAD_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=regular_file, help=".pth file")
    p.add_argument("output", type=file_to_write, help=".ckpt file to write")
    p.add_argument("--backbone", required=True)
    p.set_defaults(func=cmd_convert_weights)

    p = sub.add_parser("export", help="export the split layer2 / layer3 models (ONNX + MINDIR)")
    p.add_argument("--backbone", required=True)
    p.add_argument("--imagesize", type=integer(32, 8192), required=True)
    add_weights(p, random="allow random backbone weights (speed tests only)")
    p.add_argument("--out", type=folder_to_use, default=models_dir(), help="model folder (default $PATCHLINE_MODELS or ./models)")
    p.set_defaults(func=cmd_export)
