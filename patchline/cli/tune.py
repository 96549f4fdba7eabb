"""The `patchline tune` sub-command's arguments and entry (argparse only; the work is app/tune.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from patchline.errors import ConfigError
from patchline.cli.types import existing_folder, file_to_write, integer, listing, name, number, regular_file, text_file

DEFAULT_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2")
MAX_DEFECTS = 200


def _geometry(text: str) -> str:
    if text not in ("line", "whole"):
        raise argparse.ArgumentTypeError(f"{text!r} is not line (the base line's resize / crop) or whole (no crop)")
    return text


def _layer_set(text: str) -> tuple[str, ...]:
    parts = tuple(text.split("+"))
    if any(p not in ("layer2", "layer3") for p in parts) or len(set(parts)) != len(parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not layer2, layer3 or layer2+layer3")
    return parts


def cmd_tune(args) -> int:
    from patchline.app.resolve import line_base
    from patchline.app.tune import TuneGrid, TuneImages, run_tune
    from patchline.data.datasets import good_images
    from patchline.settings import check_layers

    base = line_base(args.line, args.config)
    layer_sets = [check_layers(list(s), "--grid-layers: ") for s in args.grid_layers]
    out = args.out or Path(f"{args.line}.tuned.yaml")
    if out.is_dir():
        raise ConfigError(f"{out} is a folder; pass --out FILE for the line config to write.")
    grid = TuneGrid(args.grid_backbones, args.grid_sizes, layer_sets, args.grid_coreset, args.grid_patchsize,
                    args.grid_geometry, args.keep, args.sample, args.grid_two_sided)
    defects = good_images(args.defects) if args.defects else []
    if len(defects) > MAX_DEFECTS:
        raise ConfigError(f"--defects {args.defects} holds {len(defects)} images; tune scores at most {MAX_DEFECTS} "
                          f"known-bad images (a handful is enough).")
    images = TuneImages(good_images(args.images), str(args.images), defects, str(args.defects) if args.defects else None)
    return run_tune(base, images, out, grid, args.budget_fps, args.weights, not args.quiet)


def add_tune_command(sub) -> None:
    """Register `patchline tune` on the sub-command parser."""
    p = sub.add_parser("tune", help="find a line's settings from its good images under a frames/s budget; writes a "
                                    "line config for train --config")
    p.add_argument("--line", type=name, required=True, help="the product line")
    p.add_argument("--images", type=existing_folder, required=True, help="folder of good images of the line (nothing else is read)")
    p.add_argument("--config", type=text_file, help="settings file whose entry for the line is the base (resize / imagesize "
                                               "ratio, calibration, false-alarm rate …)")
    p.add_argument("--budget-fps", type=number(0, 1_000_000, low_open=True), help="frames/s the line must reach on this machine")
    p.add_argument("--grid-backbones", type=listing(name, "backbone names"), default=list(DEFAULT_BACKBONES),
                   help=f"comma-separated (default {','.join(DEFAULT_BACKBONES)}: the backbones with packaged "
                        f"ImageNet weights)")
    p.add_argument("--grid-sizes", type=listing(integer(32, 4096), "image sizes"), default=[224, 320],
                   help="image sizes, comma-separated (default 224,320)")
    p.add_argument("--grid-layers", type=listing(_layer_set, "layer sets"), default=[("layer2",), ("layer2", "layer3")],
                   help="layer sets, comma-separated, layers joined by + (default layer2,layer2+layer3)")
    p.add_argument("--grid-patchsize", type=listing(integer(1, 31), "patch sizes"),
                   help="patch sizes (the embedding's neighbourhood, odd), comma-separated (default: the base "
                        "line's, 3 unless --config says otherwise), e.g. 3,5")
    p.add_argument("--grid-coreset", type=listing(number(0, 1, low_open=True), "coreset ratios"), default=[0.01, 0.1],
                   help="coreset ratios, comma-separated (default 0.01,0.1)")
    p.add_argument("--grid-geometry", type=listing(_geometry, "geometries"), default=["line"],
                   help="line (the base line's resize / imagesize ratio: a center crop when above 1) and / or whole "
                        "(the whole frame resized to the image size, no crop), comma-separated (default line)")
    p.add_argument("--grid-two-sided", action="store_true",
                   help="also try the two-sided statistic: flags a part whose patches are unusually close to the "
                        "bank as a whole (a missing print or coating), not only one with patches far from it; "
                        "synthetic defects rarely show that, so give --defects of the kind")
    p.add_argument("--defects", type=existing_folder,
                   help="folder of a handful of known-bad images of the line: scored beside the synthetic defects "
                        "to rank settings, never put in a bank or used for the threshold")
    p.add_argument("--keep", type=integer(1, 1000), default=4,
                   help="successive halving: every setting is tried on a sample of the good images, then this "
                        "many of the best on all of them (default 4)")
    p.add_argument("--sample", type=integer(12, 100_000), default=144,
                   help="good images every setting is first tried on (two thirds bank, one third scored; default 144)")
    p.add_argument("--weights", type=regular_file, help="backbone weights (wide_resnet backbones need them)")
    p.add_argument("--out", type=file_to_write, help="the line config to write (default <line>.tuned.yaml)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_tune)
